{#- A share as a double whatever the adapter's integer division does; NULL when the denominator is 0. -#}
{% macro ratio(numerator, denominator) -%}
    (cast({{ numerator }} as double) / nullif({{ denominator }}, 0))
{%- endmacro %}
