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
{#- Grid cells per radius: cells R / n wide, each station in its (2n + 1) x (2n + 1) block (see grid). A
    month's rebuild at scale 1 (12.8M orders), the model's SQL alone: n 4: 4.3 s, 8: 3.0 s, 16: 3.1 s. -#}
{%- set n = 8 -%}

with

orders as (

    -- rowid: a delivery's integer id within this query, cheaper to match on than its order key
    select
        *,
        rowid as order_row
    from {{ ref('int_orders_matched') }}
    {%- if is_incremental() %}
        -- the months the run rebuilds (macros/incremental_window.sql), delete+insert by business_date
        where business_date >= {{ reprocess_month_from() }}
    {%- endif %}

),

deliveries as (

    select
        orders.order_row,
        orders.business_date,
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

-- Grid of cells at least R / n metres on each side: R / n of latitude exactly, R / n of longitude at the
-- highest station latitude plus 1 degree (cells only widen towards the equator). Two points within R of
-- each other then lie at most n cells apart on each axis, so each station is put in its (2n + 1) x (2n + 1)
-- block and a delivery meets only the stations of its own cell, never every station.
grid as (

    select
        degrees({{ radius_m }} / {{ earth_radius_m }}) / {{ n }} as lat_step,
        degrees({{ radius_m }} / ({{ earth_radius_m }} * cos(radians(least(max(abs(lat)) + 1, 89))))) / {{ n }}
            as lng_step
    from rest_stations

),

station_cells as (

    select
        rest_stations.station_id,
        rest_stations.lng,
        rest_stations.lat,
        rest_stations.opened_on,
        grid.lng_step,
        grid.lat_step,
        cast(floor(rest_stations.lng / grid.lng_step) as bigint) + dx.step as cell_x,
        cast(floor(rest_stations.lat / grid.lat_step) as bigint) + dy.step as cell_y
    from rest_stations
    cross join grid
    cross join range(-{{ n }}, {{ n }} + 1) as dx (step)
    cross join range(-{{ n }}, {{ n }} + 1) as dy (step)

),

-- A cell is whole within a station's reach when its farthest corner is: the great-circle distance from a
-- point grows with the difference in longitude along a parallel and has one minimum along a meridian,
-- so over a cell it is largest at a corner. 1 mm of margin covers a destination placed in the cell
-- next door by rounding. A delivery in such a cell is within reach without a distance of its own.
station_cell_reach as (

    select
        station_id,
        lng,
        lat,
        opened_on,
        cell_x,
        cell_y,
        greatest(
            {{ distance_m('cell_x * lng_step', 'cell_y * lat_step', 'lng', 'lat') }},
            {{ distance_m('(cell_x + 1) * lng_step', 'cell_y * lat_step', 'lng', 'lat') }},
            {{ distance_m('cell_x * lng_step', '(cell_y + 1) * lat_step', 'lng', 'lat') }},
            {{ distance_m('(cell_x + 1) * lng_step', '(cell_y + 1) * lat_step', 'lng', 'lat') }}
        ) <= {{ radius_m }} - 0.001 as whole_cell
    from station_cells

),

-- per cell, the first date a station open that day reaches all of it (NULL: none does)
cells as (

    select
        cell_x,
        cell_y,
        min(opened_on) filter (where whole_cell) as whole_from
    from station_cell_reach
    group by cell_x, cell_y

),

placed as (

    select
        deliveries.*,
        cells.cell_x,
        cells.cell_y,
        coalesce(deliveries.business_date >= cells.whole_from, false) as in_whole_cell
    from deliveries
    cross join grid
    left join cells
        on
            cast(floor(deliveries.dest_lng / grid.lng_step) as bigint) = cells.cell_x
            and cast(floor(deliveries.dest_lat / grid.lat_step) as bigint) = cells.cell_y

),

-- the other deliveries within R metres of a rest station open on the delivery's date, from the stations
-- whose reach covers part of their cell (a delivery near several stations appears once for each). A
-- station that reaches the whole cell is not open on the date, or the delivery would be in_whole_cell.
within_part_cell as (

    select placed.order_row
    from placed
    inner join station_cell_reach as stations
        on
            placed.cell_x = stations.cell_x
            and placed.cell_y = stations.cell_y
            and placed.business_date >= stations.opened_on
    where
        not placed.in_whole_cell
        and not stations.whole_cell
        and {{ distance_m('placed.dest_lng', 'placed.dest_lat', 'stations.lng', 'stations.lat') }} <= {{ radius_m }}

),

reach as (

    select
        placed.business_date,
        placed.street_id,
        placed.rider_key,
        placed.in_whole_cell
        or placed.order_row in (select within_part_cell.order_row from within_part_cell) as within_reach
    from placed

),

-- One row per street, date and rider (the deliveries without a rider in one row of their own), so that the
-- riders are counted with plain counts, not count(distinct) over every delivery.
rider_days as (

    select
        business_date,
        street_id,
        rider_key,
        count(*) as deliveries,
        count(*) filter (where within_reach) as deliveries_within_reach
    from reach
    group by business_date, street_id, rider_key

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

-- whether the rider of a rider day checked in at any station in the 30 days ending on the date
-- (D-29 .. D): their latest check-in on or before the date (an ASOF join, one row per rider day)
rider_visits as (

    select
        rider_days.*,
        coalesce(check_ins.event_date >= rider_days.business_date - 29, false) as visited_30d
    from rider_days
    asof left join check_ins
        on
            rider_days.rider_key = check_ins.rider_key
            and rider_days.business_date >= check_ins.event_date

),

street_days as (

    select
        business_date,
        street_id,
        -- sums of counts are HUGEINT in DuckDB: cast back to the counts' BIGINT
        cast(sum(deliveries) as bigint) as deliveries,
        cast(sum(deliveries_within_reach) as bigint) as deliveries_within_reach,
        count(rider_key) as delivering_riders,
        count(rider_key) filter (where deliveries_within_reach > 0) as reaching_riders,
        count(rider_key) filter (where visited_30d) as riders_visited_30d
    from rider_visits
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
            'riders_visited_30d': ['street_days.riders_visited_30d', 'street_days.riders_visited_30d'],
            'share_riders_visited_30d': [
                'cast(street_days.riders_visited_30d as double) / street_days.delivering_riders',
                share_people('street_days.riders_visited_30d', 'street_days.delivering_riders')],
        }) }}
    from street_days

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
