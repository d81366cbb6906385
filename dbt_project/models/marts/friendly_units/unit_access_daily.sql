{{
    config(
        materialized='incremental',
        incremental_strategy='delete+insert',
        unique_key='business_date',
        on_schema_change='fail',
    )
}}

with

-- Not materialized: read from the table by each of the two CTEs below. Materialized (DuckDB's default for a
-- CTE read twice), a month of orders is held in memory whole: late in a month at scale 1 the model's SQL
-- failed under a 1GB limit (out of memory); inlined it runs in 4.1 s under 1GB, spilling 1.6 GB.
orders as not materialized (

    select * from {{ ref('int_orders_matched') }}
    where unit_id is not null
    {%- if is_incremental() %}
        -- the months the run rebuilds (macros/incremental_window.sql), delete+insert by business_date
        and business_date >= {{ reprocess_month_from() }}
    {%- endif %}

),

units as (

    select * from {{ ref('units') }}

),

-- One row per unit, date and rider first: the riders behind each figure are then counted with plain
-- counts. Nine count(distinct rider_key) over the orders kept a hash set per figure and unit-day: at scale 1
-- with a month rebuilt (12M orders) under dbt's 3GB limit that took 56-60 s, against ~4 s this way.
-- A NULL rider_key is one row here, and count(rider_key) skips it, as count(distinct rider_key) did.
rider_days as (

    select
        unit_id,
        business_date,
        rider_key,
        count(*) filter (where is_delivered) as deliveries,
        count(*) filter (where status = 'cancelled') as cancellations,
        bool_or(last100_plausible) as timed,
        count(*) filter (where is_delivered and entry_method is not null) as entries,
        count(*) filter (where is_delivered and entry_method in ('code_scan', 'nfc_tap')) as entries_code_or_nfc,
        count(*) filter (where is_delivered and entry_method = 'order_show') as entries_order_show,
        count(*) filter (where is_delivered and entry_method = 'registration') as entries_registration,
        count(*) filter (where is_delivered and parking = 'rider_bay') as parked_rider_bay,
        count(*) filter (where is_delivered and parking = 'roadside') as parked_roadside,
        count(*) filter (where is_delivered and locker_used) as lockers,
        count(*) filter (where is_delivered and elderly_meal) as elderly_meals
    from orders
    group by unit_id, business_date, rider_key

),

-- the minutes' quantiles are over deliveries, not riders
unit_minutes as (

    select
        unit_id,
        business_date,
        median(last100_min) as median_last100_min,
        quantile_cont(last100_min, 0.9) as p90_last100_min
    from orders
    where last100_plausible
    group by unit_id, business_date

),

unit_days as (

    select
        rider_days.unit_id,
        rider_days.business_date,

        cast(sum(rider_days.deliveries) as bigint) as deliveries,
        count(rider_days.rider_key) filter (where rider_days.deliveries > 0) as delivering_riders,

        cast(sum(rider_days.cancellations) as bigint) as cancellations,
        count(rider_days.rider_key) filter (where rider_days.cancellations > 0) as cancelling_riders,

        count(rider_days.rider_key) filter (where rider_days.timed) as timed_riders,

        -- Entry shares are over the deliveries where the rider had to enter (an entry method recorded).
        {{ ratio("sum(rider_days.entries_code_or_nfc)", "sum(rider_days.entries)") }} as share_entry_code_or_nfc,
        {{ ratio("sum(rider_days.entries_order_show)", "sum(rider_days.entries)") }} as share_entry_order_show,
        {{ ratio("sum(rider_days.entries_registration)", "sum(rider_days.entries)") }} as share_entry_registration,
        count(rider_days.rider_key) filter (where rider_days.entries > 0) as entering_riders,

        -- Parking and locker shares are over all deliveries.
        {{ ratio("sum(rider_days.parked_rider_bay)", "sum(rider_days.deliveries)") }} as share_parked_rider_bay,
        {{ ratio("sum(rider_days.parked_roadside)", "sum(rider_days.deliveries)") }} as share_parked_roadside,
        {{ ratio("sum(rider_days.lockers)", "sum(rider_days.deliveries)") }} as share_locker,
        count(rider_days.rider_key) filter (where rider_days.parked_rider_bay > 0) as rider_bay_riders,
        count(rider_days.rider_key) filter (where rider_days.parked_roadside > 0) as roadside_riders,
        count(rider_days.rider_key) filter (where rider_days.lockers > 0) as locker_riders,

        cast(sum(rider_days.elderly_meals) as bigint) as elderly_meal_deliveries,
        count(rider_days.rider_key) filter (where rider_days.elderly_meals > 0) as elderly_meal_riders

    from rider_days
    group by rider_days.unit_id, rider_days.business_date

),

final as (

    select
        unit_days.unit_id,
        unit_days.business_date,
        units.unit_type,
        units.street_id,
        coalesce(units.friendly_since <= unit_days.business_date, false) as is_friendly,
        {{ k_anonymise({
            'deliveries': ['unit_days.deliveries', 'unit_days.delivering_riders'],
            'cancellations': ['unit_days.cancellations', 'unit_days.cancelling_riders'],
            'median_last100_min': ['unit_minutes.median_last100_min', 'unit_days.timed_riders'],
            'p90_last100_min': ['unit_minutes.p90_last100_min', 'unit_days.timed_riders'],
            'share_entry_code_or_nfc': ['unit_days.share_entry_code_or_nfc', 'unit_days.entering_riders'],
            'share_entry_order_show': ['unit_days.share_entry_order_show', 'unit_days.entering_riders'],
            'share_entry_registration': ['unit_days.share_entry_registration', 'unit_days.entering_riders'],
            'share_parked_rider_bay': [
                'unit_days.share_parked_rider_bay',
                share_people('unit_days.rider_bay_riders', 'unit_days.delivering_riders')],
            'share_parked_roadside': [
                'unit_days.share_parked_roadside',
                share_people('unit_days.roadside_riders', 'unit_days.delivering_riders')],
            'share_locker': [
                'unit_days.share_locker',
                share_people('unit_days.locker_riders', 'unit_days.delivering_riders')],
            'elderly_meal_deliveries': ['unit_days.elderly_meal_deliveries', 'unit_days.elderly_meal_riders'],
        }) }}
    from unit_days
    inner join units on unit_days.unit_id = units.unit_id
    -- a unit-day without a plausible last-100 time has no row there: its quantiles are NULL by nature
    left join unit_minutes
        on unit_days.unit_id = unit_minutes.unit_id and unit_days.business_date = unit_minutes.business_date

),

-- how final the row is: its figures come from the four platforms' feeds of the date
with_status as (

    select
        final.*,
        coalesce(feed.platforms_status, 'partial') as status
    from final
    left join {{ ref('int_feed_status_daily') }} as feed on final.business_date = feed.business_date

)

-- a figure whose source was never fetched for the date is NULL, never a count that looks like a collapse
select
    unit_id,
    business_date,
    unit_type,
    street_id,
    is_friendly,
    status,
    {{ null_when_partial('status', ['unit_id', 'business_date', 'unit_type', 'street_id', 'is_friendly']) }},
    suppressed_cells
from with_status
