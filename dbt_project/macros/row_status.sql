{#- The status of a published daily row (indicators.md): 'final', 'provisional' or 'partial', from the
    statuses of the (source, date) pairs its figures depend on (int_source_date_status,
    int_feed_status_daily). The least final wins; a missing status (the source was never fetched for the
    date) is 'partial'. -#}

{#- A status as a rank, so the least final of several is a min/least: partial (or NULL) 0, provisional 1,
    final 2. -#}
{% macro status_rank(status) -%}
    (case {{ status }} when 'final' then 2 when 'provisional' then 1 else 0 end)
{%- endmacro %}

{#- The status of a rank (status_rank's inverse). -#}
{% macro status_of_rank(rank) -%}
    (case {{ rank }} when 2 then 'final' when 1 then 'provisional' else 'partial' end)
{%- endmacro %}

{#- The least final of several status expressions (each may be NULL: never fetched). -#}
{% macro least_final(statuses) -%}
    {%- set ranks = [] -%}
    {%- for status in statuses -%}{%- do ranks.append(status_rank(status)) -%}{%- endfor -%}
    {{ status_of_rank('least(' ~ ranks | join(', ') ~ ')') }}
{%- endmacro %}

{#- Every column of the select's relation but `keep`, `status_column` and `suppressed_cells`, NULL on a row whose
    status is 'partial' (its source was never fetched for the date) and as is otherwise, under its own
    name and in its order. For a mart whose figures all come from the one feed group the row's status
    describes; `suppressed_cells` names only the cells the privacy rule nulled. -#}
{% macro null_when_partial(status_column, keep) -%}
    case
        when {{ status_column }} = 'partial' then null
        else columns(* exclude ({{ (keep + [status_column, 'suppressed_cells']) | join(', ') }}))
    end
{%- endmacro %}
