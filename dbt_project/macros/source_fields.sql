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

{#- `known` split into its top-level fields and, per object whose children it lists, those children. -#}
{% macro split_fields(known) -%}
    {%- set top = [] -%}
    {%- set children = {} -%}
    {%- for field in known -%}
        {%- set parts = field.split('.', 1) -%}
        {%- if parts[0] not in top %}{% do top.append(parts[0]) %}{% endif -%}
        {%- if parts | length > 1 %}{% do children.setdefault(parts[0], []).append(parts[1]) %}{% endif -%}
    {%- endfor -%}
    {%- do return({'top': top, 'children': children}) -%}
{%- endmacro %}

{#- SQL select-list: the keys of `payload` that unknown_fields and missing_fields read, parsed once a record:
    `field_keys` (its top-level keys) and `field_keys__<parent>` (the keys of each object `known` lists
    children of; empty when it is absent, null or not an object). One parse for every field, where a
    json_exists per field parsed a meituan payload 14 times (the model took 4.3 s of a scale-1 daily
    build's 18 s of node time, run_results.json; 0.48 s since). -#}
{% macro field_key_columns(payload, known) -%}
    json_keys({{ payload }}) as field_keys
    {%- for parent in split_fields(known).children %},
    coalesce(json_keys({{ payload }}, '$.{{ parent }}'), []) as field_keys__{{ parent }}
    {%- endfor %}
{%- endmacro %}

{#- SQL: the sorted list of the fields outside `known` (top-level keys, and the keys of each object that
    `known` lists children of, as `parent.child`), from field_key_columns; empty when there are none. -#}
{% macro unknown_fields(known) -%}
    {%- set split = split_fields(known) -%}
    list_sort(flatten([
        list_filter(field_keys, lambda k: not list_contains(['{{ split.top | join("', '") }}'], k))
        {%- for parent, keys in split.children.items() %},
        list_transform(
            list_filter(field_keys__{{ parent }}, lambda k: not list_contains(['{{ keys | join("', '") }}'], k)),
            lambda k: '{{ parent }}.' || k
        )
        {%- endfor %}
    ]))
{%- endmacro %}

{#- SQL: the list of the `fields` absent from the record (a field present with a JSON null is not absent),
    from field_key_columns. -#}
{% macro missing_fields(fields) -%}
    {%- if fields -%}
        list_filter([
            {%- for field in fields %}
                {%- set parts = field.split('.', 1) %}
                {%- set keys = 'field_keys__' ~ parts[0] if parts | length > 1 else 'field_keys' %}
                case when not list_contains({{ keys }}, '{{ parts[-1] }}') then '{{ field }}' end
                {%- if not loop.last %},{% endif %}
            {%- endfor %}
        ], lambda f: f is not null)
    {%- else -%}
        cast([] as varchar[])
    {%- endif -%}
{%- endmacro %}
