{#- The payload fields read below, parsed once a record (macros/payload_fields.sql). -#}
{%- set paths = [
    '$.statusChangeLog', '$.orderNo', '$.courier.mobile', '$.receiver.lng', '$.receiver.lat', '$.receiver.aoiId',
    '$.gateTime', '$.accessMode', '$.parkingMode', '$.useLocker', '$.elderCare', '$.distance', '$.amount',
] -%}

with

source as (

    select
        *,
        {{ payload_fields(paths) }} as payload_values
    from {{ source('raw', 'shansong_orders') }}
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
        try_cast(
            {{ payload_field(paths, '$.statusChangeLog') }} as struct(status integer, time varchar)[]
        ) as status_log
    from source

),

milestones as (

    -- 20 dispatching is logged when the order is placed (the order time), 30 awaiting pickup when a
    -- rider took it, 40 delivering once picked up, 50 done, 60 cancelled.
    select
        *,
        {{ first_logged('status_log', 'status', 20, 'try_cast(e.time as timestamptz)') }} as ordered_tz,
        {{ first_logged('status_log', 'status', 30, 'try_cast(e.time as timestamptz)') }} as accepted_tz,
        {{ first_logged('status_log', 'status', 40, 'try_cast(e.time as timestamptz)') }} as picked_up_tz,
        {{ first_logged('status_log', 'status', 50, 'try_cast(e.time as timestamptz)') }} as delivered_tz,
        {{ first_logged('status_log', 'status', 60, 'try_cast(e.time as timestamptz)') }} as cancelled_tz
    from logged

),

renamed as (

    select
        'shansong' as platform,
        {{ payload_string(paths, '$.orderNo') }} as order_id,
        business_date,
        {{ payload_string(paths, '$.courier.mobile') }} as rider_key,
        cast({{ payload_field(paths, '$.receiver.lng') }} as double) as dest_lng,
        cast({{ payload_field(paths, '$.receiver.lat') }} as double) as dest_lat,
        {{ payload_string(paths, '$.receiver.aoiId') }} as aoi_id,
        -- The feed has no current-status field: the furthest milestone reached is the status.
        case
            when cancelled_tz is not null then 'cancelled'
            when delivered_tz is not null then 'delivered'
            when picked_up_tz is not null then 'picked_up'
            else 'accepted'
        end as status,
        ordered_tz at time zone 'Asia/Shanghai' as ordered_at,
        accepted_tz at time zone 'Asia/Shanghai' as accepted_at,
        picked_up_tz at time zone 'Asia/Shanghai' as picked_up_at,
        {{ iso_to_local(payload_string(paths, '$.gateTime')) }} as gate_at,
        delivered_tz at time zone 'Asia/Shanghai' as delivered_at,
        cancelled_tz at time zone 'Asia/Shanghai' as cancelled_at,
        case {{ payload_string(paths, '$.accessMode') }}
            when 'CODE' then 'code_scan'
            when 'NFC' then 'nfc_tap'
            when 'ORDER' then 'order_show'
            when 'MANUAL' then 'registration'
        end as entry_method,
        case {{ payload_string(paths, '$.parkingMode') }}
            when 'BAY' then 'rider_bay'
            when 'ROADSIDE' then 'roadside'
            else 'none'
        end as parking,
        cast({{ payload_field(paths, '$.useLocker') }} as boolean) as locker_used,
        cast({{ payload_field(paths, '$.elderCare') }} as boolean) as elderly_meal,
        cast({{ payload_field(paths, '$.distance') }} as integer) as distance_m,
        cast({{ payload_field(paths, '$.amount') }} as integer) as fee_cents,
        fetch_id

    from milestones

)

select * from renamed
