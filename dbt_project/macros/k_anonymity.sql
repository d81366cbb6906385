{#- The privacy rule of indicators.md, written once: a published cell that counts, or is computed from,
    fewer than var('k_anon') distinct riders is NULL, and the row's `suppressed` flag is true when any of
    its cells was nulled.

    cells: an ordered mapping  output column -> [value expression, distinct-riders expression].
    A cell behind zero riders is published as is (a count of 0, or an already-NULL median): it describes
    no rider, and nulling it would flag nearly every row as suppressed.

    Usage in a select list:  {{ k_anonymise({'deliveries': ['deliveries', 'delivering_riders']}) }} -#}
{% macro k_anonymise(cells) -%}
    {%- set k = var('k_anon') | int -%}
    {%- for column, spec in cells.items() %}
    case when {{ spec[1] }} = 0 or {{ spec[1] }} >= {{ k }} then {{ spec[0] }} end as {{ column }},
    {%- endfor %}
    (
    {%- for column, spec in cells.items() %}
        ({{ spec[1] }} > 0 and {{ spec[1] }} < {{ k }}){% if not loop.last %} or{% endif %}
    {%- endfor %}
    ) as suppressed
{%- endmacro %}
