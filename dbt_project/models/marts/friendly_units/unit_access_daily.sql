{{
    config(
        materialized='incremental',
        incremental_strategy='delete+insert',
        unique_key='business_date',
        on_schema_change='fail',
    )
}}

with

orders as (

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

unit_days as (

    select
        unit_id,
        business_date,

        count(*) filter (where is_delivered) as deliveries,
        count(distinct rider_key) filter (where is_delivered) as delivering_riders,

        count(*) filter (where status = 'cancelled') as cancellations,
        count(distinct rider_key) filter (where status = 'cancelled') as cancelling_riders,

        median(last100_min) filter (where last100_plausible) as median_last100_min,
        quantile_cont(last100_min, 0.9) filter (where last100_plausible) as p90_last100_min,
        count(distinct rider_key) filter (where last100_plausible) as timed_riders,

        -- Entry shares are over the deliveries where the rider had to enter (an entry method recorded).
        {{ ratio(
            "count(*) filter (where is_delivered and entry_method in ('code_scan', 'nfc_tap'))",
            "count(*) filter (where is_delivered and entry_method is not null)"
        ) }} as share_entry_code_or_nfc,
        {{ ratio(
            "count(*) filter (where is_delivered and entry_method = 'order_show')",
            "count(*) filter (where is_delivered and entry_method is not null)"
        ) }} as share_entry_order_show,
        {{ ratio(
            "count(*) filter (where is_delivered and entry_method = 'registration')",
            "count(*) filter (where is_delivered and entry_method is not null)"
        ) }} as share_entry_registration,
        count(distinct rider_key) filter (where is_delivered and entry_method is not null) as entering_riders,

        -- Parking and locker shares are over all deliveries.
        {{ ratio(
            "count(*) filter (where is_delivered and parking = 'rider_bay')",
            "count(*) filter (where is_delivered)"
        ) }} as share_parked_rider_bay,
        {{ ratio(
            "count(*) filter (where is_delivered and parking = 'roadside')",
            "count(*) filter (where is_delivered)"
        ) }} as share_parked_roadside,
        {{ ratio(
            "count(*) filter (where is_delivered and locker_used)",
            "count(*) filter (where is_delivered)"
        ) }} as share_locker,
        count(distinct rider_key) filter (where is_delivered and parking = 'rider_bay') as rider_bay_riders,
        count(distinct rider_key) filter (where is_delivered and parking = 'roadside') as roadside_riders,
        count(distinct rider_key) filter (where is_delivered and locker_used) as locker_riders,

        count(*) filter (where is_delivered and elderly_meal) as elderly_meal_deliveries,
        count(distinct rider_key) filter (where is_delivered and elderly_meal) as elderly_meal_riders

    from orders
    group by unit_id, business_date

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
            'median_last100_min': ['unit_days.median_last100_min', 'unit_days.timed_riders'],
            'p90_last100_min': ['unit_days.p90_last100_min', 'unit_days.timed_riders'],
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
