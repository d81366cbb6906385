{{
    config(
        materialized='incremental',
        incremental_strategy='delete+insert',
        unique_key='business_date',
        on_schema_change='fail',
    )
}}

{%- set sources = ['meituan', 'eleme', 'sf', 'shansong', 'union_members', 'union_orgs', 'stations'] -%}

with

orders as (

    select
        orders.business_date,
        orders.rider_key,
        orders.is_delivered,
        orders.last100_min,
        orders.last100_plausible,
        orders.gate_at is not null as has_gate_time,
        orders.unit_id is not null as is_matched,
        coalesce(units.friendly_since <= orders.business_date, false) as to_friendly_unit
    from {{ ref('int_orders_matched') }} as orders
    left join {{ ref('units') }} as units on orders.unit_id = units.unit_id
    {%- if is_incremental() %}
        -- the months the run rebuilds (macros/incremental_window.sql), delete+insert by business_date
        where orders.business_date >= {{ reprocess_month_from() }}
    {%- endif %}

),

-- the date's figures over its orders: counts and medians
order_days as (

    select
        business_date,
        count(*) filter (where is_delivered) as deliveries,
        count(*) filter (where is_delivered and to_friendly_unit) as deliveries_to_friendly_units,
        median(last100_min) filter (where last100_plausible and to_friendly_unit) as median_last100_min_friendly,
        median(last100_min) filter (
            where last100_plausible and is_matched and not to_friendly_unit
        ) as median_last100_min_non_friendly,
        -- data health, deliveries to units only (a gate time exists only there: a delivery outside any
        -- unit has none by nature): no gate time, or a last-100 value missing or outside (0, 120] minutes
        count(*) filter (where is_delivered and is_matched and not has_gate_time) as unit_deliveries_no_gate_time,
        count(*) filter (
            where is_delivered and is_matched and has_gate_time and not last100_plausible
        ) as unit_deliveries_last100_out_of_range
    from orders
    group by business_date

),

-- One row per date and rider (the orders without a rider in one row of their own): which figures the
-- rider is behind, so that the riders are counted with plain counts, not count(distinct) over every order
-- of the rebuilt months (as unit_access_daily does).
rider_days as (

    select
        business_date,
        rider_key,
        bool_or(is_delivered) as delivered,
        bool_or(is_delivered and to_friendly_unit) as delivered_friendly,
        bool_or(last100_plausible and to_friendly_unit) as timed_friendly,
        bool_or(last100_plausible and is_matched and not to_friendly_unit) as timed_non_friendly
    from orders
    group by business_date, rider_key

),

rider_counts as (

    select
        business_date,
        count(rider_key) filter (where delivered) as delivering_riders,
        count(rider_key) filter (where delivered_friendly) as friendly_delivering_riders,
        count(rider_key) filter (where timed_friendly) as timed_riders_friendly,
        count(rider_key) filter (where timed_non_friendly) as timed_riders_non_friendly
    from rider_days
    group by business_date

),

delivery_days as (

    select
        order_days.*,
        rider_counts.delivering_riders,
        rider_counts.friendly_delivering_riders,
        rider_counts.timed_riders_friendly,
        rider_counts.timed_riders_non_friendly
    from order_days
    inner join rider_counts on order_days.business_date = rider_counts.business_date

),

station_days as (

    select
        event_date as business_date,
        cast(coalesce(sum(points) filter (where event_type = 'points_earn'), 0) as bigint) as points_earned,
        cast(coalesce(sum(points) filter (where event_type = 'points_redeem'), 0) as bigint) as points_redeemed,
        count(*) filter (where event_type = 'check_in') as station_visits,
        count(distinct rider_key) filter (where event_type = 'check_in') as visiting_riders,
        count(distinct rider_key) filter (where event_type = 'points_earn') as earning_riders,
        count(distinct rider_key) filter (where event_type = 'points_redeem') as redeeming_riders
    from {{ ref('stg_stations__events') }}
    {%- if is_incremental() %}
        where event_date >= {{ reprocess_month_from() }}
    {%- endif %}
    group by event_date

),

-- each (source, date) as its latest load left it: loading replaces the partition, so earlier fetches of
-- the same date no longer describe what is in the warehouse (pipeline_runs keeps every run)
latest_loads as (

    select
        source,
        business_date,
        fetched,
        loaded,
        quarantined,
        duplicates_removed
    from {{ source('raw', 'load_audit') }}
    {%- if is_incremental() %}
        where business_date >= {{ reprocess_month_from() }}
    {%- endif %}
    qualify row_number() over (partition by source, business_date order by loaded_at desc, fetch_id desc) = 1

),

load_days as (

    select
        {% for src in sources %}
            cast(sum(fetched) filter (where source = '{{ src }}') as bigint) as {{ src }}_fetched,
            cast(sum(loaded) filter (where source = '{{ src }}') as bigint) as {{ src }}_loaded,
            cast(sum(quarantined) filter (where source = '{{ src }}') as bigint) as {{ src }}_quarantined,
            cast(sum(duplicates_removed) filter (where source = '{{ src }}') as bigint)
                as {{ src }}_duplicates_removed,
        {% endfor %}
        business_date
    from latest_loads
    group by business_date

),

-- district-wide union coverage of the date's calendar month (as the warehouse knows the month today)
coverage as (

    select
        month,
        coverage_rate
    from {{ ref('union_coverage_monthly') }}
    where org_level = 'district'

),

-- the friendly-unit effect is estimated for the run's reporting date; older dates carry no estimate
effect as (

    select
        reporting_date,
        rider_hours_saved_per_month
    from {{ ref('friendly_effect') }}
    where unit_type = 'all'

),

dates as (

    select business_date from delivery_days
    union
    select business_date from load_days

),

final as (

    select
        dates.business_date,
        {{ k_anonymise({
            'deliveries': ['delivery_days.deliveries', 'coalesce(delivery_days.delivering_riders, 0)'],
            'share_to_friendly_units': [
                'cast(delivery_days.deliveries_to_friendly_units as double) / delivery_days.deliveries',
                share_people('delivery_days.friendly_delivering_riders', 'delivery_days.delivering_riders')],
            'median_last100_min_friendly': [
                'delivery_days.median_last100_min_friendly', 'coalesce(delivery_days.timed_riders_friendly, 0)'],
            'median_last100_min_non_friendly': [
                'delivery_days.median_last100_min_non_friendly',
                'coalesce(delivery_days.timed_riders_non_friendly, 0)'],
            'station_visits': ['station_days.station_visits', 'coalesce(station_days.visiting_riders, 0)'],
            'points_earned': ['station_days.points_earned', 'coalesce(station_days.earning_riders, 0)'],
            'points_redeemed': ['station_days.points_redeemed', 'coalesce(station_days.redeeming_riders, 0)'],
        }) }},
        effect.rider_hours_saved_per_month,
        coverage.month as union_coverage_month,
        coverage.coverage_rate as union_coverage_rate,
        {% for src in sources %}
            load_days.{{ src }}_fetched,
            load_days.{{ src }}_loaded,
            load_days.{{ src }}_quarantined,
            load_days.{{ src }}_duplicates_removed,
        {% endfor %}
        coalesce(delivery_days.unit_deliveries_no_gate_time, 0) as unit_deliveries_no_gate_time,
        coalesce(delivery_days.unit_deliveries_last100_out_of_range, 0) as unit_deliveries_last100_out_of_range
    from dates
    left join delivery_days on dates.business_date = delivery_days.business_date
    left join station_days on dates.business_date = station_days.business_date
    left join load_days on dates.business_date = load_days.business_date
    left join coverage on cast(date_trunc('month', dates.business_date) as date) = coverage.month
    left join effect on dates.business_date = effect.reporting_date

),

-- how final the row is: its daily figures come from the four platforms' feeds and the station log of the
-- date (the load counts describe loads, the union coverage its month, and stay as they are)
with_status as (

    select
        final.*,
        coalesce(feed.platforms_status, 'partial') as delivery_status,
        coalesce(feed.stations_status, 'partial') as station_status,
        {{ least_final(['feed.platforms_status', 'feed.stations_status']) }} as status
    from final
    left join {{ ref('int_feed_status_daily') }} as feed on final.business_date = feed.business_date

)

-- a figure whose source was never fetched for the date is NULL, never a number that looks like a collapse
select
    business_date,
    status,
    * exclude (business_date, status, delivery_status, station_status) replace (
        {%- for column in ['deliveries', 'share_to_friendly_units', 'median_last100_min_friendly',
                           'median_last100_min_non_friendly', 'unit_deliveries_no_gate_time',
                           'unit_deliveries_last100_out_of_range'] %}
            case when delivery_status <> 'partial' then {{ column }} end as {{ column }},
        {%- endfor %}
        {%- for column in ['station_visits', 'points_earned', 'points_redeemed'] %}
            case when station_status <> 'partial' then {{ column }} end as {{ column }}{{ ',' if not loop.last }}
        {%- endfor %}
    )
from with_status
