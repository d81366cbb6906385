with

source as (

    select events.* from {{ source('raw', 'station_events') }} as events
    {{ staging_reprocessed_raw() }}
    {%- if is_incremental() %}
        -- An event already kept from an older file stays that copy (the older files did not change).
        and not exists (
            select 1 from {{ this }} as kept
            where kept.file_date < {{ reprocess_from() }} and kept.event_id = events.record_id
        )
    {%- endif %}
    -- Delivery is at-least-once and a late event can come in the next day's file: keep one copy per
    -- event_id across files, the first file that brought it.
    qualify row_number() over (
            partition by events.record_id
            order by events.business_date, events.loaded_at, events.fetch_id, events.record_no
        ) = 1

),

renamed as (

    select
        json_extract_string(payload, '$.event_id') as event_id,
        json_extract_string(payload, '$.station_id') as station_id,
        {{ iso_to_local("json_extract_string(payload, '$.ts')") }} as event_at,
        -- A station event belongs to the date of its own ts, whichever day's file brought it.
        cast({{ iso_to_local("json_extract_string(payload, '$.ts')") }} as date) as event_date,
        business_date as file_date,
        json_extract_string(payload, '$.rider_phone') as rider_key,
        json_extract_string(payload, '$.type') as event_type,
        json_extract_string(payload, '$.service') as service,
        cast(json_extract(payload, '$.meal_price_cents') as integer) as meal_price_cents,
        cast(json_extract(payload, '$.points') as integer) as points,
        json_extract_string(payload, '$.reason') as points_reason,
        json_extract_string(payload, '$.team_id') as team_id,
        cast(json_extract(payload, '$.report_valid') as boolean) as report_valid,
        json_extract_string(payload, '$.item') as redeemed_item,
        fetch_id

    from source

)

select * from renamed
