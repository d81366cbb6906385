{#- The payload fields read below, parsed once a record (macros/payload_fields.sql). -#}
{%- set paths = [
    '$.event_id', '$.station_id', '$.ts', '$.rider_phone', '$.type', '$.service', '$.meal_price_cents',
    '$.points', '$.reason', '$.team_id', '$.report_valid', '$.item',
] -%}

with

source as (

    select
        events.*,
        {{ payload_fields(paths) }} as payload_values
    from {{ source('raw', 'station_events') }} as events
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
        {{ payload_string(paths, '$.event_id') }} as event_id,
        {{ payload_string(paths, '$.station_id') }} as station_id,
        {{ iso_to_local(payload_string(paths, '$.ts')) }} as event_at,
        -- A station event belongs to the date of its own ts, whichever day's file brought it.
        cast({{ iso_to_local(payload_string(paths, '$.ts')) }} as date) as event_date,
        business_date as file_date,
        {{ payload_string(paths, '$.rider_phone') }} as rider_key,
        {{ payload_string(paths, '$.type') }} as event_type,
        {{ payload_string(paths, '$.service') }} as service,
        cast({{ payload_field(paths, '$.meal_price_cents') }} as integer) as meal_price_cents,
        cast({{ payload_field(paths, '$.points') }} as integer) as points,
        {{ payload_string(paths, '$.reason') }} as points_reason,
        {{ payload_string(paths, '$.team_id') }} as team_id,
        cast({{ payload_field(paths, '$.report_valid') }} as boolean) as report_valid,
        {{ payload_string(paths, '$.item') }} as redeemed_item,
        fetch_id

    from source

)

select * from renamed
