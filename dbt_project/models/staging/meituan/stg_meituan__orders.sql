{#- The payload fields read below, parsed once a record (macros/payload_fields.sql). -#}
{%- set paths = [
    '$.order_id', '$.courier_phone', '$.recipient_lng', '$.recipient_lat', '$.recipient_aoi_id', '$.status',
    '$.platform_order_time', '$.grab_time', '$.fetch_time', '$.gate_arrive_time', '$.arrive_time',
    '$.entry_method', '$.parking', '$.locker_used', '$.elderly_meal', '$.distance_m', '$.fee_cents',
] -%}

with

source as (

    select
        *,
        {{ payload_fields(paths) }} as payload_values
    from {{ source('raw', 'meituan_orders') }}
    {{ staging_reprocessed_raw() }}
    -- An order is placed on one business date, so (business_date, order id) is the platform's order key;
    -- partitioning by the date lets a filtered read skip other dates. The latest load wins.
    qualify row_number() over (
            partition by business_date, record_id
            order by loaded_at desc, fetch_id desc, record_no desc
        ) = 1

),

renamed as (

    select
        'meituan' as platform,
        {{ payload_string(paths, '$.order_id') }} as order_id,
        business_date,
        {{ payload_string(paths, '$.courier_phone') }} as rider_key,
        cast({{ payload_field(paths, '$.recipient_lng') }} as double) as dest_lng,
        cast({{ payload_field(paths, '$.recipient_lat') }} as double) as dest_lat,
        {{ payload_string(paths, '$.recipient_aoi_id') }} as aoi_id,
        case cast({{ payload_field(paths, '$.status') }} as integer)
            when 20 then 'accepted'
            when 30 then 'picked_up'
            when 50 then 'delivered'
            when 99 then 'cancelled'
        end as status,
        {{ epoch_s_to_local(payload_field(paths, '$.platform_order_time')) }} as ordered_at,
        {{ epoch_s_to_local(payload_field(paths, '$.grab_time')) }} as accepted_at,
        {{ epoch_s_to_local(payload_field(paths, '$.fetch_time')) }} as picked_up_at,
        {{ epoch_s_to_local(payload_field(paths, '$.gate_arrive_time')) }} as gate_at,
        {{ epoch_s_to_local(payload_field(paths, '$.arrive_time')) }} as delivered_at,
        -- Meituan's feed has no cancellation time.
        cast(null as timestamp) as cancelled_at,
        {{ payload_string(paths, '$.entry_method') }} as entry_method,
        {{ payload_string(paths, '$.parking') }} as parking,
        cast({{ payload_field(paths, '$.locker_used') }} as boolean) as locker_used,
        cast({{ payload_field(paths, '$.elderly_meal') }} as boolean) as elderly_meal,
        cast({{ payload_field(paths, '$.distance_m') }} as integer) as distance_m,
        cast({{ payload_field(paths, '$.fee_cents') }} as integer) as fee_cents,
        fetch_id

    from source

)

select * from renamed
