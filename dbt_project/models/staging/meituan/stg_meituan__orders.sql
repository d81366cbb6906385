with

source as (

    select * from {{ source('raw', 'meituan_orders') }}
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
        json_extract_string(payload, '$.order_id') as order_id,
        business_date,
        json_extract_string(payload, '$.courier_phone') as rider_key,
        cast(json_extract(payload, '$.recipient_lng') as double) as dest_lng,
        cast(json_extract(payload, '$.recipient_lat') as double) as dest_lat,
        json_extract_string(payload, '$.recipient_aoi_id') as aoi_id,
        case cast(json_extract(payload, '$.status') as integer)
            when 20 then 'accepted'
            when 30 then 'picked_up'
            when 50 then 'delivered'
            when 99 then 'cancelled'
        end as status,
        {{ epoch_s_to_local("json_extract(payload, '$.platform_order_time')") }} as ordered_at,
        {{ epoch_s_to_local("json_extract(payload, '$.grab_time')") }} as accepted_at,
        {{ epoch_s_to_local("json_extract(payload, '$.fetch_time')") }} as picked_up_at,
        {{ epoch_s_to_local("json_extract(payload, '$.gate_arrive_time')") }} as gate_at,
        {{ epoch_s_to_local("json_extract(payload, '$.arrive_time')") }} as delivered_at,
        -- Meituan's feed has no cancellation time.
        cast(null as timestamp) as cancelled_at,
        json_extract_string(payload, '$.entry_method') as entry_method,
        json_extract_string(payload, '$.parking') as parking,
        cast(json_extract(payload, '$.locker_used') as boolean) as locker_used,
        cast(json_extract(payload, '$.elderly_meal') as boolean) as elderly_meal,
        cast(json_extract(payload, '$.distance_m') as integer) as distance_m,
        cast(json_extract(payload, '$.fee_cents') as integer) as fee_cents,
        fetch_id

    from source

)

select * from renamed
