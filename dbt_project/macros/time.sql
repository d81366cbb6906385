{#- Only the order time is checked by the loader (quarantine); any other time that cannot be read
    (wrong JSON type, unparseable text) becomes NULL rather than failing the whole day's build, and shows
    up in data health as a missing milestone (e.g. an implausible last100).

    Every source sends instants (epoch or ISO with offset) or Beijing wall-clock strings. The warehouse
    keeps naive TIMESTAMPs in Asia/Shanghai local time. AT TIME ZONE on a TIMESTAMPTZ gives the wall
    clock of the named zone whatever the session TimeZone is, so results never depend on the host. -#}
{% macro epoch_s_to_local(expr) -%}
    (to_timestamp(try_cast({{ expr }} as double)) at time zone 'Asia/Shanghai')
{%- endmacro %}

{#- Epoch milliseconds (eleme): kept to the millisecond. ms x 1000 is exact in a double (< 2^53), so the
    microseconds since the epoch are an integer and no float division can move the instant. -#}
{% macro epoch_ms_to_local(expr) -%}
    (make_timestamptz(cast(round(try_cast({{ expr }} as double) * 1000) as bigint)) at time zone 'Asia/Shanghai')
{%- endmacro %}

{#- ISO-8601 with an explicit offset ("+08:00"): the offset fixes the instant, then convert. -#}
{% macro iso_to_local(expr) -%}
    (try_cast(nullif({{ expr }}, '') as timestamptz) at time zone 'Asia/Shanghai')
{%- endmacro %}

{#- "YYYY-MM-DD HH:MM:SS" already in Beijing time (sf); '' means not reached. -#}
{% macro beijing_text_to_local(expr) -%}
    try_strptime(nullif({{ expr }}, ''), '%Y-%m-%d %H:%M:%S')
{%- endmacro %}

{#- Minutes between two local timestamps, fractional and exact to the microsecond: a source sending
    milliseconds (eleme) keeps them (12:00:00.250 -> 12:03:00.750 is 3.0083333 min), sources sending
    seconds give the same value as a count of seconds. (date_diff('second') would count second boundaries
    crossed, off by up to a second for sub-second times.) -#}
{% macro minutes_between(start_ts, end_ts) -%}
    ((epoch_us({{ end_ts }}) - epoch_us({{ start_ts }})) / 60000000.0)
{%- endmacro %}

{#- Earliest time of a status in a milestone log (a list of structs, any order, duplicates possible):
    `time_expr` reads the time from the entry `e`. NULL when the status was never logged. -#}
{% macro first_logged(log, status_key, status_value, time_expr) -%}
    list_min(
        list_transform(
            list_filter({{ log }}, lambda e: e.{{ status_key }} = {{ status_value }}),
            lambda e: {{ time_expr }}
        )
    )
{%- endmacro %}
