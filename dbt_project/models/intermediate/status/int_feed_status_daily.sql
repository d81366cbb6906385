{#- The status of each daily figure's sources, one row per date (definition in _intermediate__models.yml):
    the marts take a row's status from here. -#}
{%- set platforms = ['meituan', 'eleme', 'sf', 'shansong'] -%}

with

sources as (

    select * from {{ ref('int_source_date_status') }}

),

-- every date from the first to the last one any platform or station file was loaded for: a date inside
-- the span that a source never loaded gets its row here, 'partial'
span as (

    select
        min(business_date) as first_date,
        max(business_date) as last_date
    from sources
    where source in ('meituan', 'eleme', 'sf', 'shansong', 'stations')

),

dates as (

    select cast(unnest(generate_series(first_date, last_date, interval 1 day)) as date) as business_date
    from span

),

by_date as (

    select
        dates.business_date,
        {%- for platform in platforms %}
            any_value(sources.status) filter (where sources.source = '{{ platform }}') as {{ platform }}_status,
        {%- endfor %}
        any_value(sources.status) filter (where sources.source = 'stations') as stations_status
    from dates
    left join sources on dates.business_date = sources.business_date
    group by dates.business_date

),

final as (

    select
        business_date,
        {{ least_final(['meituan_status', 'eleme_status', 'sf_status', 'shansong_status']) }} as platforms_status,
        {{ least_final(['stations_status']) }} as stations_status,
        -- the 30 days ending on the date (D-29 .. D): a day before the first loaded file counts as never
        -- fetched, so a window is 'partial' until 30 days of station files are in
        case
            when count(*) over last_30_days < 30 then 'partial'
            else {{ status_of_rank('min(' ~ status_rank('stations_status') ~ ') over last_30_days') }}
        end as stations_30d_status
    from by_date
    window last_30_days as (order by business_date rows between 29 preceding and current row)

)

select * from final
