{{
    config(
        materialized='incremental',
        incremental_strategy='delete+insert',
        unique_key='business_date',
        on_schema_change='fail',
    )
}}

{#- Mean Earth radius, the same as macro distance_m, so a grid cell is exactly R metres of latitude. -#}
{%- set earth_radius_m = 6371008.8 -%}
{%- set radius_m = var('service_radius_m') -%}

with

orders as (

    select * from {{ ref('int_orders_matched') }}
    {%- if is_incremental() %}
        -- the months the run rebuilds (macros/incremental_window.sql), delete+insert by business_date
        where business_date >= {{ reprocess_month_from() }}
    {%- endif %}

),

deliveries as (

    select
        orders.business_date,
        orders.order_key,
        orders.rider_key,
        orders.dest_lng,
        orders.dest_lat,
        -- a delivery's street is its unit's street; a destination matched to no unit has none
        coalesce(units.street_id, 'unmatched') as street_id
    from orders
    left join {{ ref('units') }} as units on orders.unit_id = units.unit_id
    where orders.is_delivered

),

rest_stations as (

    select
        station_id,
        lng,
        lat,
        opened_on
    from {{ ref('stations') }}
    where station_kind = 'rest_station'

),

-- Grid of cells at least R metres on each side: R of latitude exactly, R of longitude at the highest
-- station latitude plus 1 degree (cells only widen towards the equator). Two points within R of each
-- other then lie in the same or neighbouring cells, so each station is put in its 3 x 3 block and a
-- delivery meets only the stations of its own cell, never every station.
grid as (

    select
        degrees({{ radius_m }} / {{ earth_radius_m }}) as lat_step,
        degrees({{ radius_m }} / ({{ earth_radius_m }} * cos(radians(least(max(abs(lat)) + 1, 89)))))
            as lng_step
    from rest_stations

),

station_cells as (

    select
        rest_stations.station_id,
        rest_stations.lng,
        rest_stations.lat,
        rest_stations.opened_on,
        cast(floor(rest_stations.lng / grid.lng_step) as bigint) + dx.step as cell_x,
        cast(floor(rest_stations.lat / grid.lat_step) as bigint) + dy.step as cell_y
    from rest_stations
    cross join grid
    cross join (values (-1), (0), (1)) as dx (step)
    cross join (values (-1), (0), (1)) as dy (step)

),

-- deliveries within R metres of a rest station open on the delivery's date
within_reach as (

    select distinct deliveries.order_key
    from deliveries
    cross join grid
    inner join station_cells
        on
            cast(floor(deliveries.dest_lng / grid.lng_step) as bigint) = station_cells.cell_x
            and cast(floor(deliveries.dest_lat / grid.lat_step) as bigint) = station_cells.cell_y
            and deliveries.business_date >= station_cells.opened_on
    where
        {{ distance_m('deliveries.dest_lng', 'deliveries.dest_lat', 'station_cells.lng', 'station_cells.lat') }}
        <= {{ radius_m }}

),

-- active riders of a street and date: at least one delivery there that day
street_riders as (

    select distinct
        business_date,
        street_id,
        rider_key
    from deliveries
    where rider_key is not null

),

check_ins as (

    select distinct
        rider_key,
        event_date
    from {{ ref('stg_stations__events') }}
    where event_type = 'check_in' and rider_key is not null
    {%- if is_incremental() %}
        -- the 30 days ending on the first rebuilt date
        and event_date >= {{ reprocess_month_from() }} - 29
    {%- endif %}

),

-- riders who checked in at any station in the 30 days ending on the date (D-29 .. D)
visitors as (

    select distinct
        street_riders.business_date,
        street_riders.street_id,
        street_riders.rider_key
    from street_riders
    inner join check_ins
        on
            street_riders.rider_key = check_ins.rider_key
            and check_ins.event_date between street_riders.business_date - 29 and street_riders.business_date

),

street_days as (

    select
        deliveries.business_date,
        deliveries.street_id,
        count(*) as deliveries,
        count(within_reach.order_key) as deliveries_within_reach,
        count(distinct deliveries.rider_key) as delivering_riders,
        count(distinct deliveries.rider_key) filter (where within_reach.order_key is not null) as reaching_riders
    from deliveries
    left join within_reach on deliveries.order_key = within_reach.order_key
    group by deliveries.business_date, deliveries.street_id

),

street_visitors as (

    select
        business_date,
        street_id,
        count(*) as riders_visited_30d
    from visitors
    group by business_date, street_id

),

final as (

    select
        street_days.business_date,
        street_days.street_id,
        {{ k_anonymise({
            'deliveries': ['street_days.deliveries', 'street_days.delivering_riders'],
            'deliveries_within_reach': ['street_days.deliveries_within_reach', 'street_days.reaching_riders'],
            'share_within_reach': [
                'cast(street_days.deliveries_within_reach as double) / street_days.deliveries',
                share_people('street_days.reaching_riders', 'street_days.delivering_riders')],
            'active_riders': ['street_days.delivering_riders', 'street_days.delivering_riders'],
            'riders_visited_30d': [
                'coalesce(street_visitors.riders_visited_30d, 0)', 'coalesce(street_visitors.riders_visited_30d, 0)'],
            'share_riders_visited_30d': [
                'cast(coalesce(street_visitors.riders_visited_30d, 0) as double) / street_days.delivering_riders',
                share_people('street_visitors.riders_visited_30d', 'street_days.delivering_riders')],
        }) }}
    from street_days
    left join street_visitors
        on
            street_days.business_date = street_visitors.business_date
            and street_days.street_id = street_visitors.street_id

),

-- how final the row is: deliveries come from the four platforms' feeds of the date, the riders who visited
-- a station from the station logs of the 30 days ending on it (rebuilt with the reprocess window: a
-- status moves on within the next run's window, as the figures do)
with_status as (

    select
        final.*,
        coalesce(feed.platforms_status, 'partial') as delivery_status,
        coalesce(feed.stations_30d_status, 'partial') as visit_status,
        {{ least_final(['feed.platforms_status', 'feed.stations_30d_status']) }} as status
    from final
    left join {{ ref('int_feed_status_daily') }} as feed on final.business_date = feed.business_date

)

-- a figure whose source was never fetched for the date (or, for visits, for a day of its 30) is NULL
select
    business_date,
    street_id,
    status,
    {{ null_when_partial('delivery_status', ['business_date', 'street_id', 'status', 'visit_status',
                                            'riders_visited_30d', 'share_riders_visited_30d']) }},
    case when visit_status = 'partial' or delivery_status = 'partial' then null else riders_visited_30d end
        as riders_visited_30d,
    case when visit_status = 'partial' or delivery_status = 'partial' then null else share_riders_visited_30d end
        as share_riders_visited_30d,
    suppressed_cells
from with_status
