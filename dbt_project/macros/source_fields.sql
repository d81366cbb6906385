{#- The fields of each source's contract (sources.md), declared once: int_source_field_drift counts the
    records that carry a field outside `known` (schema drift: the staging model would silently ignore it)
    and the records that lack one of `optional`. Nested object fields are written `parent.child`.

    known: every field of the contract, read by the staging model or deliberately not (other rider ids,
        shop and POI ids); a test checks that every field a staging model reads is listed here.
    optional: the known fields a record may lack and still be loaded, that is all but those the loader
        requires (ingest/sources.py: the id, the rider id, the coordinates, the status and the order
        time, or the log holding it); a test checks the two lists agree. Which fields a station event
        carries depends on its type, so none of them is counted missing. -#}
{% macro source_fields() -%}
    {%- do return({
        'meituan': {
            'table': 'meituan_orders',
            'known': [
                'order_id', 'courier_id', 'courier_phone', 'poi_id', 'recipient_lng', 'recipient_lat',
                'recipient_aoi_id', 'status', 'platform_order_time', 'grab_time', 'fetch_time',
                'gate_arrive_time', 'arrive_time', 'entry_method', 'parking', 'locker_used', 'elderly_meal',
                'distance_m', 'fee_cents',
            ],
            'optional': [
                'courier_phone', 'poi_id', 'recipient_aoi_id', 'grab_time', 'fetch_time', 'gate_arrive_time',
                'arrive_time', 'entry_method', 'parking', 'locker_used', 'elderly_meal', 'distance_m',
                'fee_cents',
            ],
        },
        'eleme': {
            'table': 'eleme_orders',
            'known': [
                'open_order_code', 'partner_order_code', 'carrier_driver_id', 'carrier_driver_phone', 'lng',
                'lat', 'aoi_code', 'order_status', 'status_log', 'gate_arrive_time', 'entry_type',
                'parking_type', 'cabinet_used', 'is_elder_care', 'distance', 'fee',
            ],
            'optional': [
                'partner_order_code', 'carrier_driver_phone', 'aoi_code', 'gate_arrive_time', 'entry_type',
                'parking_type', 'cabinet_used', 'is_elder_care', 'distance', 'fee',
            ],
        },
        'sf': {
            'table': 'sf_orders',
            'known': [
                'sf_order_id', 'shop_order_id', 'rider_id', 'operator_phone', 'user_lng', 'user_lat',
                'lbs_type', 'order_status', 'create_time', 'receive_time', 'pickup_time', 'gate_time',
                'complete_time', 'entry_method', 'parking', 'locker', 'elder_care', 'distance_km',
                'total_price',
            ],
            'optional': [
                'shop_order_id', 'operator_phone', 'receive_time', 'pickup_time', 'gate_time',
                'complete_time', 'entry_method', 'parking', 'locker', 'elder_care', 'distance_km',
                'total_price',
            ],
        },
        'shansong': {
            'table': 'shansong_orders',
            'known': [
                'orderNo', 'courier.id', 'courier.mobile', 'courier.name', 'receiver.lng', 'receiver.lat',
                'receiver.aoiId', 'statusChangeLog', 'gateTime', 'accessMode', 'parkingMode', 'useLocker',
                'elderCare', 'distance', 'amount',
            ],
            'optional': [
                'courier.mobile', 'courier.name', 'receiver.aoiId', 'gateTime', 'accessMode', 'parkingMode',
                'useLocker', 'elderCare', 'distance', 'amount',
            ],
        },
        'stations': {
            'table': 'station_events',
            'known': [
                'event_id', 'station_id', 'ts', 'rider_phone', 'type', 'service', 'meal_price_cents', 'points',
                'reason', 'team_id', 'report_valid', 'item',
            ],
            'optional': [],
        },
    }) -%}
{%- endmacro %}

{#- SQL: the sorted list of the fields of `payload` outside `known` (top-level keys, and the keys of each
    object that `known` lists children of, as `parent.child`); empty when there are none. -#}
{% macro unknown_fields(payload, known) -%}
    {%- set top = [] -%}
    {%- set children = {} -%}
    {%- for field in known -%}
        {%- set parts = field.split('.', 1) -%}
        {%- if parts[0] not in top %}{% do top.append(parts[0]) %}{% endif -%}
        {%- if parts | length > 1 %}{% do children.setdefault(parts[0], []).append(parts[1]) %}{% endif -%}
    {%- endfor -%}
    list_sort(flatten([
        list_filter(json_keys({{ payload }}), lambda k: not list_contains(['{{ top | join("', '") }}'], k))
        {%- for parent, keys in children.items() %},
        list_transform(
            list_filter(
                coalesce(json_keys({{ payload }}, '$.{{ parent }}'), []),
                lambda k: not list_contains(['{{ keys | join("', '") }}'], k)
            ),
            lambda k: '{{ parent }}.' || k
        )
        {%- endfor %}
    ]))
{%- endmacro %}

{#- SQL: the list of the `fields` absent from `payload` (a field present with a JSON null is not absent). -#}
{% macro missing_fields(payload, fields) -%}
    {%- if fields -%}
        list_filter([
            {%- for field in fields %}
                case when not json_exists({{ payload }}, '$.{{ field }}') then '{{ field }}' end
                {%- if not loop.last %},{% endif %}
            {%- endfor %}
        ], lambda f: f is not null)
    {%- else -%}
        cast([] as varchar[])
    {%- endif -%}
{%- endmacro %}
