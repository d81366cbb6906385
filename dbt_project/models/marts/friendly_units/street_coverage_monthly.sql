{{
    config(
        materialized='incremental',
        incremental_strategy='delete+insert',
        unique_key='month',
        on_schema_change='fail',
    )
}}

{%- set unit_types = [
    'residential_compound', 'office_building', 'scenic_area', 'hospital', 'university', 'construction_site',
] -%}
{#- The district's target: every residential compound and office building on a delivery guideline. -#}
{%- set target_types = ['residential_compound', 'office_building'] -%}

with

units as (

    select * from {{ ref('units') }}

),

deliveries as (

    select
        orders.business_date,
        orders.rider_key,
        units.street_id,
        coalesce(units.friendly_since <= orders.business_date, false) as to_friendly_unit
    from {{ ref('int_orders_matched') }} as orders
    inner join units on orders.unit_id = units.unit_id
    where orders.is_delivered
    {%- if is_incremental() %}
        -- the months the run rebuilds (macros/incremental_window.sql), delete+insert by month
        and orders.business_date >= {{ reprocess_month_from() }}
    {%- endif %}

),

months as (

    -- A month's unit counts are as of its last day, or the reporting date while the month is running.
    select
        month_start,
        least(cast(month_start + interval 1 month as date) - 1, {{ business_date() }}) as as_of_date
    from (
        select distinct cast(date_trunc('month', business_date) as date) as month_start
        from deliveries
        where business_date <= {{ business_date() }}
    ) as delivery_months

),

street_units as (

    select
        months.month_start,
        months.as_of_date,
        streets.street_id,
        units.unit_type,
        coalesce(units.friendly_since <= months.as_of_date, false) as is_friendly
    from months
    cross join {{ ref('streets') }} as streets
    left join units on streets.street_id = units.street_id

),

unit_counts as (

    select
        month_start,
        street_id,
        {%- for unit_type in unit_types %}
            count(*) filter (where unit_type = '{{ unit_type }}') as units_{{ unit_type }},
            count(*) filter (where unit_type = '{{ unit_type }}' and is_friendly) as friendly_units_{{ unit_type }},
        {%- endfor %}
        count(unit_type) as units_total,
        count(*) filter (where is_friendly) as friendly_units_total,
        count(*) filter (
            where unit_type in (
                '{{ target_types | join("', '") }}'
            )
        ) as target_units,
        count(*) filter (
            where unit_type in (
                '{{ target_types | join("', '") }}'
            )
            and is_friendly
        ) as target_units_friendly
    from street_units
    group by month_start, street_id

),

delivery_counts as (

    select
        cast(date_trunc('month', business_date) as date) as month_start,
        street_id,
        count(*) as deliveries,
        count(*) filter (where to_friendly_unit) as deliveries_to_friendly_units,
        count(distinct rider_key) as delivering_riders,
        count(distinct rider_key) filter (where to_friendly_unit) as friendly_delivering_riders
    from deliveries
    group by cast(date_trunc('month', business_date) as date), street_id

),

final as (

    select
        unit_counts.month_start as month,
        unit_counts.street_id,
        {%- for unit_type in unit_types %}
            unit_counts.units_{{ unit_type }},
            unit_counts.friendly_units_{{ unit_type }},
        {%- endfor %}
        unit_counts.units_total,
        unit_counts.friendly_units_total,
        {{ ratio('unit_counts.friendly_units_total', 'unit_counts.units_total') }} as friendly_unit_share,
        unit_counts.target_units,
        unit_counts.target_units_friendly,
        {{ ratio('unit_counts.target_units_friendly', 'unit_counts.target_units') }} as target_progress,
        {{ k_anonymise({
            'deliveries': ['coalesce(delivery_counts.deliveries, 0)', 'coalesce(delivery_counts.delivering_riders, 0)'],
            'share_deliveries_to_friendly_units': [
                ratio('delivery_counts.deliveries_to_friendly_units', 'delivery_counts.deliveries'),
                share_people('delivery_counts.friendly_delivering_riders', 'delivery_counts.delivering_riders'),
            ],
        }) }}
    from unit_counts
    left join delivery_counts
        on
            unit_counts.month_start = delivery_counts.month_start
            and unit_counts.street_id = delivery_counts.street_id

)

select * from final
