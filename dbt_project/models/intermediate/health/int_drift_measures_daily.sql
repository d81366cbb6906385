{#- Each measure of a day beside the trailing 7-day median of the same measure, and whether the day is
    flagged for it (definition in _intermediate__models.yml; tolerances are vars of dbt_project.yml). -#}
{%- set share_tolerance = var('drift_share_tolerance') -%}
{%- set deliveries_band = var('drift_deliveries_band') -%}
{%- set count_reasons = {
    'unknown_field_records': 'records with fields the staging model does not know',
    'missing_optional_field_records': 'records missing optional contract fields',
    'unknown_station_records': 'events at station ids the stations seed does not know',
    'unknown_team_records': 'events for team ids the volunteer_teams seed does not know',
} -%}

with

orders as (

    select
        business_date,
        platform as source,  -- noqa: RF04
        count(*) as orders,
        count(*) filter (where match_method = 'aoi') as aoi_matched_orders,
        count(unit_id) as unit_matched_orders,
        count(*) filter (where is_delivered) as deliveries,
        count(*) filter (where is_delivered and unit_id is not null) as unit_deliveries,
        count(*) filter (where is_delivered and unit_id is not null and gate_at is null) as ungated_unit_deliveries
    from {{ ref('int_orders_matched') }}
    group by business_date, platform

),

-- each (source, date) as its latest load left it (loading replaces the partition)
latest_loads as (

    select
        source,
        business_date,
        fetched,
        quarantined
    from {{ source('raw', 'load_audit') }}
    qualify row_number() over (partition by source, business_date order by loaded_at desc, fetch_id desc) = 1

),

field_drift as (

    select
        source,
        business_date,
        sum(unknown_field_records) as unknown_field_records,
        string_agg(unknown_field_names, ', ') as unknown_field_records_detail,
        sum(missing_optional_field_records) as missing_optional_field_records,
        string_agg(missing_optional_field_names, ', ') as missing_optional_field_records_detail,
        sum(unknown_station_records) as unknown_station_records,
        string_agg(unknown_station_ids, ', ') as unknown_station_records_detail,
        sum(unknown_team_records) as unknown_team_records,
        string_agg(unknown_team_ids, ', ') as unknown_team_records_detail
    from {{ ref('int_source_field_drift') }}
    group by source, business_date

),

measures as (

    select
        business_date,
        source,
        'aoi_match_rate' as measure,
        {{ ratio('aoi_matched_orders', 'orders') }} as observed_value,
        cast(null as varchar) as detail
    from orders
    union all
    select
        business_date,
        source,
        'unit_match_rate' as measure,
        {{ ratio('unit_matched_orders', 'orders') }} as observed_value,
        null as detail
    from orders
    union all
    select
        business_date,
        source,
        'gate_time_missing_rate' as measure,
        {{ ratio('ungated_unit_deliveries', 'unit_deliveries') }} as observed_value,
        null as detail
    from orders
    union all
    select
        business_date,
        source,
        'deliveries' as measure,
        cast(deliveries as double) as observed_value,
        null as detail
    from orders
    union all
    select
        business_date,
        source,
        'quarantine_rate' as measure,
        {{ ratio('quarantined', 'fetched') }} as observed_value,
        null as detail
    from latest_loads
    {%- for measure in count_reasons %}
        union all
        select
            business_date,
            source,
            '{{ measure }}' as measure,
            cast({{ measure }} as double) as observed_value,
            {{ measure }}_detail as detail
        from field_drift
        where {{ measure }} is not null
    {%- endfor %}

),

-- the median of the same measure over the 7 dates before (dates without it do not count)
history as (

    select
        *,
        median(observed_value) over (
            partition by source, measure
            order by business_date
            range between interval 7 day preceding and interval 1 day preceding
        ) as history_median
    from measures

),

bounded as (

    select
        business_date,
        source,
        measure,
        observed_value,
        detail,
        case measure
            {%- for measure in share_tolerance.keys() | list + ['deliveries'] %}
                when '{{ measure }}' then history_median
            {%- endfor %}
        end as trailing_median,
        case measure
            {%- for measure, tolerance in share_tolerance.items() %}
                when '{{ measure }}' then greatest(0, history_median - {{ tolerance }})
            {%- endfor %}
            when 'deliveries' then history_median * {{ deliveries_band[0] }}
        end as lower_bound,
        case measure
            {%- for measure, tolerance in share_tolerance.items() %}
                when '{{ measure }}' then least(1, history_median + {{ tolerance }})
            {%- endfor %}
            when 'deliveries' then history_median * {{ deliveries_band[1] }}
            -- a record outside the contract or the registries is a flag by itself
            else 0
        end as upper_bound
    from history

),

flagged as (

    select
        *,
        coalesce(observed_value < lower_bound or observed_value > upper_bound, false) as is_flagged
    from bounded

),

final as (

    select
        business_date,
        source,
        measure,
        observed_value,
        trailing_median,
        lower_bound,
        upper_bound,
        is_flagged,
        case
            when not is_flagged then null
            {%- for measure, reason in count_reasons.items() %}
                when measure = '{{ measure }}'
                    then printf(
                            '%s: %d {{ reason }} (%s)', source, cast(observed_value as bigint), coalesce(detail, '?')
                        )
            {%- endfor %}
            when measure = 'deliveries'
                then printf(
                        '%s deliveries %d outside [%.0f, %.0f] (trailing 7-day median %.0f)',
                        source, cast(observed_value as bigint), lower_bound, upper_bound, trailing_median
                    )
            else printf(
                    '%s %s %.3f outside [%.3f, %.3f] (trailing 7-day median %.3f)',
                    source, measure, observed_value, lower_bound, upper_bound, trailing_median
                )
        end as flag_reason
    from flagged

)

select * from final
