{#- The fields of each source's contract (sources.md), declared once, in the registry of sources
    (ingest/registry.py, read here through the generated macro source_registry()): int_source_field_drift
    counts the records that carry a field outside `known` (schema drift: the staging model would silently
    ignore it) and the records that lack one of `optional`. Nested object fields are written `parent.child`.
    Only the sources whose entry lists known fields are measured (not the union exports).

    known: every field of the contract, read by the staging model or deliberately not (other rider ids,
        shop and POI ids); a test checks that every field a staging model reads is listed.
    optional: the known fields a record may lack and still be loaded, that is all but those the loader
        requires (the registry's spec: the id, the rider id, the coordinates, the status and the order
        time, or the log holding it); a test checks the two lists agree. Which fields a station event
        carries depends on its type, so none of them is counted missing. -#}
{% macro source_fields() -%}
    {%- set fields = {} -%}
    {%- for name, src in source_registry().items() if src.known -%}
        {%- do fields.update({name: {'table': src.table, 'known': src.known, 'optional': src.optional}}) -%}
    {%- endfor -%}
    {%- do return(fields) -%}
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
