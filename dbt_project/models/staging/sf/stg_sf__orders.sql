{#- The payload fields read below, parsed once a record (macros/payload_fields.sql). -#}
{%- set paths = [
    '$.user_lng', '$.user_lat', '$.lbs_type', '$.sf_order_id', '$.operator_phone', '$.order_status',
    '$.create_time', '$.receive_time', '$.pickup_time', '$.gate_time', '$.complete_time', '$.entry_method',
    '$.parking', '$.locker', '$.elder_care', '$.distance_km', '$.total_price',
] -%}

with

source as (

    select
        *,
        {{ payload_fields(paths) }} as payload_values
    from {{ source('raw', 'sf_orders') }}
    {{ staging_reprocessed_raw() }}
    -- One order is placed on one business date; the latest load of it wins.
    qualify row_number() over (
            partition by business_date, record_id
            order by loaded_at desc, fetch_id desc, record_no desc
        ) = 1

),

located as (

    select
        *,
        cast({{ payload_field(paths, '$.user_lng') }} as double) as raw_lng,
        cast({{ payload_field(paths, '$.user_lat') }} as double) as raw_lat,
        cast({{ payload_field(paths, '$.lbs_type') }} as integer) as lbs_type
    from source

),

renamed as (

    select
        'sf' as platform,
        {{ payload_string(paths, '$.sf_order_id') }} as order_id,
        business_date,
        {{ payload_string(paths, '$.operator_phone') }} as rider_key,
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
        case cast({{ payload_field(paths, '$.order_status') }} as integer)
            when 10 then 'accepted'
            when 12 then 'accepted'
            when 15 then 'picked_up'
            when 17 then 'delivered'
            when 2 then 'cancelled'
        end as status,
        {{ beijing_text_to_local(payload_string(paths, '$.create_time')) }} as ordered_at,
        {{ beijing_text_to_local(payload_string(paths, '$.receive_time')) }} as accepted_at,
        {{ beijing_text_to_local(payload_string(paths, '$.pickup_time')) }} as picked_up_at,
        {{ beijing_text_to_local(payload_string(paths, '$.gate_time')) }} as gate_at,
        {{ beijing_text_to_local(payload_string(paths, '$.complete_time')) }} as delivered_at,
        -- SF's feed has no cancellation time.
        cast(null as timestamp) as cancelled_at,
        case {{ payload_string(paths, '$.entry_method') }}
            when '扫码' then 'code_scan'
            when '碰一碰' then 'nfc_tap'
            when '出示订单' then 'order_show'
            when '登记' then 'registration'
        end as entry_method,
        case {{ payload_string(paths, '$.parking') }}
            when '专属车位' then 'rider_bay'
            when '路边' then 'roadside'
            else 'none'
        end as parking,
        {{ payload_string(paths, '$.locker') }} = '是' as locker_used,
        {{ payload_string(paths, '$.elder_care') }} = '是' as elderly_meal,
        cast(round(cast({{ payload_field(paths, '$.distance_km') }} as double) * 1000) as integer) as distance_m,
        cast({{ payload_field(paths, '$.total_price') }} as integer) as fee_cents,
        fetch_id

    from located

)

select * from renamed
