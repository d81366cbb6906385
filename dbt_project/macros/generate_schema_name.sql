{#- Schemas are exactly the folder's +schema (staging, intermediate, marts, seeds, snapshots), not dbt's
    default "<target schema>_<custom>", so analysts and the gates always find marts.<model>. -#}
{% macro generate_schema_name(custom_schema_name, node) -%}
    {%- if custom_schema_name is none -%}
        {{ target.schema }}
    {%- else -%}
        {{ custom_schema_name | trim }}
    {%- endif -%}
{%- endmacro %}
