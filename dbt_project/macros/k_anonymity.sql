{#- The privacy rule of indicators.md, written once: a published cell that counts, or is computed from,
    fewer than var('k_anon') distinct people is NULL, and the row's `suppressed_cells` names it.

    cells: an ordered mapping  output column -> [value expression, distinct-people expression], where the
    people are those the very figure counts or is computed from (a count of members: those members; a
    count of deliveries: the riders who made them; a share: the people of its numerator and denominator).
    A cell behind zero people is published as is (a count of 0, or an already-NULL median): it describes
    no one.

    `suppressed_cells` (VARCHAR) lists, comma-separated in column order, the cells of the row NULLed for
    privacy; '' when none. A NULL cell not listed there is NULL by nature (a median of no delivery). The
    on-run-end hook secondary_suppression() NULLs more cells after the build (complementary suppression)
    and appends their names. A list, not a VARCHAR[]: it survives CSV, Excel/WPS and Superset as text.

    Usage in a select list:  {{ k_anonymise({'deliveries': ['deliveries', 'delivering_riders']}) }} -#}
{% macro k_anonymise(cells) -%}
    {%- set k = var('k_anon') | int -%}
    {%- for column, spec in cells.items() %}
    case when {{ spec[1] }} = 0 or {{ spec[1] }} >= {{ k }} then {{ spec[0] }} end as {{ column }},
    {%- endfor %}
    concat_ws(','
    {%- for column, spec in cells.items() %},
        case when {{ spec[1] }} > 0 and {{ spec[1] }} < {{ k }} then '{{ column }}' end
    {%- endfor %}
    ) as suppressed_cells
{%- endmacro %}


{#- The people behind a share num / den: the fewer of its numerator's and its denominator's people, so that
    a share of a small numerator (which times a published denominator gives the numerator back) is
    suppressed with it; a numerator of no one leaves the denominator's people. -#}
{% macro share_people(numerator_people, denominator_people) -%}
    case when coalesce({{ numerator_people }}, 0) = 0 then coalesce({{ denominator_people }}, 0)
        else least({{ numerator_people }}, coalesce({{ denominator_people }}, 0)) end
{%- endmacro %}
