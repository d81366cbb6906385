with

source as (

    select
        *,
        cast(json_extract(payload, '$.user_lng') as double) as raw_lng,
        cast(json_extract(payload, '$.user_lat') as double) as raw_lat,
        cast(json_extract(payload, '$.lbs_type') as integer) as lbs_type
    from {{ source('raw', 'sf_orders') }}
    {{ staging_reprocessed_raw() }}
    -- One order is placed on one business date; the latest load of it wins.
    qualify row_number() over (
            partition by business_date, record_id
            order by loaded_at desc, fetch_id desc, record_no desc
        ) = 1

),

renamed as (

    select
        'sf' as platform,
        json_extract_string(payload, '$.sf_order_id') as order_id,
        business_date,
        json_extract_string(payload, '$.operator_phone') as rider_key,
        -- lbs_type 1 = Baidu BD-09: convert to GCJ-02 like every other platform; 2 = GCJ-02 already.
        -- Any other lbs_type cannot be read: NULL coordinates, which the raw gate blocks.
        case
            when lbs_type = 1 then {{ bd09_to_gcj02_lng('raw_lng', 'raw_lat') }}
            when lbs_type = 2 then raw_lng
        end as dest_lng,
        case
            when lbs_type = 1 then {{ bd09_to_gcj02_lat('raw_lng', 'raw_lat') }}
            when lbs_type = 2 then raw_lat
        end as dest_lat,
        -- SF's feed carries no AOI id: its orders are matched to units by position only.
        cast(null as varchar) as aoi_id,
        case cast(json_extract(payload, '$.order_status') as integer)
            when 10 then 'accepted'
            when 12 then 'accepted'
            when 15 then 'picked_up'
            when 17 then 'delivered'
            when 2 then 'cancelled'
        end as status,
        {{ beijing_text_to_local("json_extract_string(payload, '$.create_time')") }} as ordered_at,
        {{ beijing_text_to_local("json_extract_string(payload, '$.receive_time')") }} as accepted_at,
        {{ beijing_text_to_local("json_extract_string(payload, '$.pickup_time')") }} as picked_up_at,
        {{ beijing_text_to_local("json_extract_string(payload, '$.gate_time')") }} as gate_at,
        {{ beijing_text_to_local("json_extract_string(payload, '$.complete_time')") }} as delivered_at,
        -- SF's feed has no cancellation time.
        cast(null as timestamp) as cancelled_at,
        case json_extract_string(payload, '$.entry_method')
            when '扫码' then 'code_scan'
            when '碰一碰' then 'nfc_tap'
            when '出示订单' then 'order_show'
            when '登记' then 'registration'
        end as entry_method,
        case json_extract_string(payload, '$.parking')
            when '专属车位' then 'rider_bay'
            when '路边' then 'roadside'
            else 'none'
        end as parking,
        json_extract_string(payload, '$.locker') = '是' as locker_used,
        json_extract_string(payload, '$.elder_care') = '是' as elderly_meal,
        cast(round(cast(json_extract(payload, '$.distance_km') as double) * 1000) as integer) as distance_m,
        cast(json_extract(payload, '$.total_price') as integer) as fee_cents,
        fetch_id

    from source

)

select * from renamed
