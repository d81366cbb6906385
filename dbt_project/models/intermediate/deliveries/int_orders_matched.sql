{{
    config(
        materialized='incremental',
        incremental_strategy='delete+insert',
        unique_key='business_date',
        on_schema_change='fail',
    )
}}

{#- the order platforms of the registry of sources (ingest/registry.py, macro source_registry) -#}
{%- set platforms = [] -%}
{%- for src in source_registry().values() if src.kind == 'order_platform' -%}
    {%- do platforms.append(src.staging) -%}
{%- endfor -%}
{%- set order_columns = [
    'platform', 'order_id', 'business_date', 'rider_key', 'dest_lng', 'dest_lat', 'aoi_id', 'status',
    'ordered_at', 'accepted_at', 'picked_up_at', 'gate_at', 'delivered_at', 'cancelled_at',
    'entry_method', 'parking', 'locker_used', 'elderly_meal', 'distance_m', 'fee_cents', 'fetch_id',
] -%}

with

orders as (

    {% for staging in platforms %}
        select {{ order_columns | join(', ') }}
        from {{ ref(staging) }}
        {%- if is_incremental() %}
            -- Late corrections: the reprocess window is rebuilt whole (delete+insert by business_date).
            where business_date >= {{ reprocess_from() }}
        {%- endif %}
        {% if not loop.last %}union all{% endif %}
    {% endfor %}

),

units as (

    select
        unit_id,
        lng,
        lat,
        radius_m,
        {{ metres_to_lng_deg('radius_m', 'lat') }} as radius_lng_deg,
        {{ metres_to_lat_deg('radius_m') }} as radius_lat_deg
    from {{ ref('units') }}

),

-- Every 0.01-degree grid cell a unit's circle touches (its bounding box), so that an order only meets
-- the few units whose circle can contain it: the join is on cell equality, never all orders x all units.
unit_columns as (

    select
        unit_id,
        lng,
        lat,
        radius_m,
        radius_lat_deg,
        unnest(
            range({{ grid_cell('lng - radius_lng_deg') }}, {{ grid_cell('lng + radius_lng_deg') }} + 1)
        ) as cell_x
    from units

),

unit_cells as (

    select
        unit_id,
        lng,
        lat,
        radius_m,
        cell_x,
        unnest(
            range({{ grid_cell('lat - radius_lat_deg') }}, {{ grid_cell('lat + radius_lat_deg') }} + 1)
        ) as cell_y
    from unit_columns

),

-- 1. The platform's AOI id, when the district's crosswalk maps it to a unit.
aoi_matches as (

    select
        orders.platform,
        orders.order_id,
        crosswalk.unit_id
    from orders
    inner join {{ ref('aoi_crosswalk') }} as crosswalk
        on
            orders.platform = crosswalk.platform
            and orders.aoi_id = crosswalk.aoi_id

),

-- 2. Otherwise the nearest unit whose radius contains the destination.
radius_candidates as (

    select
        orders.platform,
        orders.order_id,
        unit_cells.unit_id,
        {{ distance_m('orders.dest_lng', 'orders.dest_lat', 'unit_cells.lng', 'unit_cells.lat') }}
            as distance_to_centre_m,
        unit_cells.radius_m
    from orders
    inner join unit_cells
        on
            {{ grid_cell('orders.dest_lng') }} = unit_cells.cell_x
            and {{ grid_cell('orders.dest_lat') }} = unit_cells.cell_y
    left join aoi_matches
        on
            orders.platform = aoi_matches.platform
            and orders.order_id = aoi_matches.order_id
    where aoi_matches.unit_id is null

),

radius_matches as (

    select
        platform,
        order_id,
        unit_id
    from radius_candidates
    where distance_to_centre_m <= radius_m
    qualify row_number() over (
            partition by platform, order_id
            order by distance_to_centre_m, unit_id
        ) = 1

),

matched as (

    select
        orders.*,
        coalesce(aoi_matches.unit_id, radius_matches.unit_id) as unit_id,
        case
            when aoi_matches.unit_id is not null then 'aoi'
            when radius_matches.unit_id is not null then 'radius'
            else 'unmatched'
        end as match_method,
        case
            when orders.status = 'delivered'
                then {{ minutes_between('orders.gate_at', 'orders.delivered_at') }}
        end as last100_min
    from orders
    left join aoi_matches
        on
            orders.platform = aoi_matches.platform
            and orders.order_id = aoi_matches.order_id
    left join radius_matches
        on
            orders.platform = radius_matches.platform
            and orders.order_id = radius_matches.order_id

),

final as (

    select
        *,
        platform || ':' || order_id as order_key,
        status = 'delivered' as is_delivered,
        -- Only 0 < x <= 120 minutes counts; everything else (a missing gate time included) is kept and
        -- counted as implausible in data health, never silently dropped.
        case
            when status = 'delivered' then coalesce(last100_min > 0 and last100_min <= 120, false)
        end as last100_plausible
    from matched

)

select * from final
