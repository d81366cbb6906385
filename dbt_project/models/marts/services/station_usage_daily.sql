{{
    config(
        materialized='incremental',
        incremental_strategy='delete+insert',
        unique_key='event_date',
        on_schema_change='fail',
    )
}}

{%- set services = [
    'charging', 'water', 'microwave', 'rest', 'restroom', 'first_aid', 'haircut', 'bike_repair',
] -%}
{#- 'meal' is a service too, published as canteen_meals beside its average price. -#}

with

-- Registered stations only: events at a station the seed does not know yet stay in staging, count in the
-- district totals and in data health (pipeline_runs.stations_unknown_station_records), not here.
events as (

    select events.*
    from {{ ref('stg_stations__events') }} as events
    inner join {{ ref('stations') }} as stations on events.station_id = stations.station_id
    {%- if is_incremental() %}
        -- the months the run rebuilds (macros/incremental_window.sql), delete+insert by event_date
        where events.event_date >= {{ reprocess_month_from() }}
    {%- endif %}

),

station_days as (

    select
        station_id,
        event_date,
        count(*) filter (where event_type = 'check_in') as visits,
        count(distinct rider_key) filter (where event_type = 'check_in') as visiting_riders,
        count(distinct rider_key) as riders,
        {%- for service in services %}
            count(*) filter (where event_type = 'service' and service = '{{ service }}') as services_{{ service }},
            count(distinct rider_key) filter (
                where event_type = 'service' and service = '{{ service }}'
            ) as riders_{{ service }},
        {%- endfor %}
        count(*) filter (where event_type = 'service' and service = 'meal') as canteen_meals,
        count(distinct rider_key) filter (where event_type = 'service' and service = 'meal') as dining_riders,
        avg(meal_price_cents) filter (where event_type = 'service' and service = 'meal') as avg_meal_price_cents,
        coalesce(sum(abs(points)) filter (where event_type = 'points_redeem'), 0) as points_redeemed,
        count(distinct rider_key) filter (where event_type = 'points_redeem') as redeeming_riders
    from events
    group by station_id, event_date

),

stays as (

    select
        station_id,
        visit_date,
        median(stay_min) as median_stay_min,
        count(distinct rider_key) as staying_riders
    from {{ ref('int_station_sessions') }}
    where stay_min is not null
    {%- if is_incremental() %}
        and visit_date >= {{ reprocess_month_from() }}
    {%- endif %}
    group by station_id, visit_date

),

final as (

    select
        station_days.station_id,
        station_days.event_date,
        {%- set cells = {
            'visits': ['station_days.visits', 'station_days.visiting_riders'],
            'distinct_riders': ['station_days.riders', 'station_days.riders'],
            'median_stay_min': ['stays.median_stay_min', 'coalesce(stays.staying_riders, 0)'],
        } -%}
        {%- for service in services -%}
        {%- do cells.update({
            'services_' ~ service: ['station_days.services_' ~ service, 'station_days.riders_' ~ service],
        }) -%}
        {%- endfor -%}
        {%- do cells.update({
            'canteen_meals': ['station_days.canteen_meals', 'station_days.dining_riders'],
            'avg_meal_price_cents': ['station_days.avg_meal_price_cents', 'station_days.dining_riders'],
            'points_redeemed': ['station_days.points_redeemed', 'station_days.redeeming_riders'],
        }) %}
        {{ k_anonymise(cells) }}
    from station_days
    left join stays
        on
            station_days.station_id = stays.station_id
            and station_days.event_date = stays.visit_date

),

-- how final the row is: its figures come from the station log of the date (D's file and D+1's)
with_status as (

    select
        final.*,
        coalesce(feed.stations_status, 'partial') as status
    from final
    left join {{ ref('int_feed_status_daily') }} as feed on final.event_date = feed.business_date

)

-- a figure whose source was never fetched for the date is NULL: the late events of the day before the first
-- loaded file (they come in that file) are a row, but not a count that looks like a collapse
select
    station_id,
    event_date,
    status,
    {{ null_when_partial('status', ['station_id', 'event_date']) }},
    suppressed_cells
from with_status
