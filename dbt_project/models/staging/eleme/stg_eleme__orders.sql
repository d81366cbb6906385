with

source as (

    select
        *,
        -- Milestones come from status_log, not from the current order_status (sources.md).
        try_cast(
            json_extract(payload, '$.status_log') as struct(order_status integer, push_time bigint)[]
        ) as status_log
    from {{ source('raw', 'eleme_orders') }}
    {{ staging_reprocessed_raw() }}
    -- One order is placed on one business date; the latest load of it wins.
    qualify row_number() over (
            partition by business_date, record_id
            order by loaded_at desc, fetch_id desc, record_no desc
        ) = 1

),

milestones as (

    select
        *,
        {{ first_logged('status_log', 'order_status', 1, 'e.push_time') }} as ordered_ms,
        {{ first_logged('status_log', 'order_status', 20, 'e.push_time') }} as accepted_ms,
        {{ first_logged('status_log', 'order_status', 2, 'e.push_time') }} as picked_up_ms,
        {{ first_logged('status_log', 'order_status', 3, 'e.push_time') }} as delivered_ms,
        {{ first_logged('status_log', 'order_status', 4, 'e.push_time') }} as cancelled_ms
    from source

),

renamed as (

    select
        'eleme' as platform,
        json_extract_string(payload, '$.open_order_code') as order_id,
        business_date,
        json_extract_string(payload, '$.carrier_driver_phone') as rider_key,
        cast(json_extract_string(payload, '$.lng') as double) as dest_lng,
        cast(json_extract_string(payload, '$.lat') as double) as dest_lat,
        json_extract_string(payload, '$.aoi_code') as aoi_id,
        case
            when cast(json_extract(payload, '$.order_status') as integer) in (1, 20, 80) then 'accepted'
            when cast(json_extract(payload, '$.order_status') as integer) = 2 then 'picked_up'
            when cast(json_extract(payload, '$.order_status') as integer) = 3 then 'delivered'
            when cast(json_extract(payload, '$.order_status') as integer) = 4 then 'cancelled'
            -- A code outside the contract is not read: NULL, which the raw gate blocks.
            when cast(json_extract(payload, '$.order_status') as integer) <> 5 then null
            -- 5 "exception" is not a final state of its own: the furthest logged milestone decides.
            when cancelled_ms is not null then 'cancelled'
            when delivered_ms is not null then 'delivered'
            when picked_up_ms is not null then 'picked_up'
            else 'accepted'
        end as status,
        {{ epoch_ms_to_local('ordered_ms') }} as ordered_at,
        {{ epoch_ms_to_local('accepted_ms') }} as accepted_at,
        {{ epoch_ms_to_local('picked_up_ms') }} as picked_up_at,
        {{ epoch_ms_to_local("json_extract(payload, '$.gate_arrive_time')") }} as gate_at,
        {{ epoch_ms_to_local('delivered_ms') }} as delivered_at,
        {{ epoch_ms_to_local('cancelled_ms') }} as cancelled_at,
        case cast(json_extract(payload, '$.entry_type') as integer)
            when 1 then 'code_scan'
            when 2 then 'nfc_tap'
            when 3 then 'order_show'
            when 4 then 'registration'
        end as entry_method,
        case cast(json_extract(payload, '$.parking_type') as integer)
            when 0 then 'none'
            when 1 then 'rider_bay'
            when 2 then 'roadside'
        end as parking,
        cast(json_extract(payload, '$.cabinet_used') as integer) = 1 as locker_used,
        cast(json_extract(payload, '$.is_elder_care') as integer) = 1 as elderly_meal,
        cast(json_extract(payload, '$.distance') as integer) as distance_m,
        -- Fee in yuan as a decimal string ("6.50"): exact decimal, then cents.
        cast(round(cast(json_extract_string(payload, '$.fee') as decimal(12, 2)) * 100) as integer) as fee_cents,
        fetch_id

    from milestones

)

select * from renamed
