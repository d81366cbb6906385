{#- The payload fields read below, parsed once a record (macros/payload_fields.sql). -#}
{%- set paths = [
    '$.status_log', '$.open_order_code', '$.carrier_driver_phone', '$.lng', '$.lat', '$.aoi_code',
    '$.order_status', '$.gate_arrive_time', '$.entry_type', '$.parking_type', '$.cabinet_used',
    '$.is_elder_care', '$.distance', '$.fee',
] -%}

with

source as (

    select
        *,
        {{ payload_fields(paths) }} as payload_values
    from {{ source('raw', 'eleme_orders') }}
    {{ staging_reprocessed_raw() }}
    -- One order is placed on one business date; the latest load of it wins.
    qualify row_number() over (
            partition by business_date, record_id
            order by loaded_at desc, fetch_id desc, record_no desc
        ) = 1

),

logged as (

    select
        *,
        -- Milestones come from status_log, not from the current order_status (sources.md).
        try_cast(
            {{ payload_field(paths, '$.status_log') }} as struct(order_status integer, push_time bigint)[]
        ) as status_log
    from source

),

milestones as (

    select
        *,
        {{ first_logged('status_log', 'order_status', 1, 'e.push_time') }} as ordered_ms,
        {{ first_logged('status_log', 'order_status', 20, 'e.push_time') }} as accepted_ms,
        {{ first_logged('status_log', 'order_status', 2, 'e.push_time') }} as picked_up_ms,
        {{ first_logged('status_log', 'order_status', 3, 'e.push_time') }} as delivered_ms,
        {{ first_logged('status_log', 'order_status', 4, 'e.push_time') }} as cancelled_ms
    from logged

),

renamed as (

    select
        'eleme' as platform,
        {{ payload_string(paths, '$.open_order_code') }} as order_id,
        business_date,
        {{ payload_string(paths, '$.carrier_driver_phone') }} as rider_key,
        cast({{ payload_string(paths, '$.lng') }} as double) as dest_lng,
        cast({{ payload_string(paths, '$.lat') }} as double) as dest_lat,
        {{ payload_string(paths, '$.aoi_code') }} as aoi_id,
        case
            when cast({{ payload_field(paths, '$.order_status') }} as integer) in (1, 20, 80) then 'accepted'
            when cast({{ payload_field(paths, '$.order_status') }} as integer) = 2 then 'picked_up'
            when cast({{ payload_field(paths, '$.order_status') }} as integer) = 3 then 'delivered'
            when cast({{ payload_field(paths, '$.order_status') }} as integer) = 4 then 'cancelled'
            -- A code outside the contract is not read: NULL, which the raw gate blocks.
            when cast({{ payload_field(paths, '$.order_status') }} as integer) <> 5 then null
            -- 5 "exception" is not a final state of its own: the furthest logged milestone decides.
            when cancelled_ms is not null then 'cancelled'
            when delivered_ms is not null then 'delivered'
            when picked_up_ms is not null then 'picked_up'
            else 'accepted'
        end as status,
        {{ epoch_ms_to_local('ordered_ms') }} as ordered_at,
        {{ epoch_ms_to_local('accepted_ms') }} as accepted_at,
        {{ epoch_ms_to_local('picked_up_ms') }} as picked_up_at,
        {{ epoch_ms_to_local(payload_field(paths, '$.gate_arrive_time')) }} as gate_at,
        {{ epoch_ms_to_local('delivered_ms') }} as delivered_at,
        {{ epoch_ms_to_local('cancelled_ms') }} as cancelled_at,
        case cast({{ payload_field(paths, '$.entry_type') }} as integer)
            when 1 then 'code_scan'
            when 2 then 'nfc_tap'
            when 3 then 'order_show'
            when 4 then 'registration'
        end as entry_method,
        case cast({{ payload_field(paths, '$.parking_type') }} as integer)
            when 0 then 'none'
            when 1 then 'rider_bay'
            when 2 then 'roadside'
        end as parking,
        cast({{ payload_field(paths, '$.cabinet_used') }} as integer) = 1 as locker_used,
        cast({{ payload_field(paths, '$.is_elder_care') }} as integer) = 1 as elderly_meal,
        cast({{ payload_field(paths, '$.distance') }} as integer) as distance_m,
        -- Fee in yuan as a decimal string ("6.50"): exact decimal, then cents.
        cast(round(cast({{ payload_string(paths, '$.fee') }} as decimal(12, 2)) * 100) as integer) as fee_cents,
        fetch_id

    from milestones

)

select * from renamed
