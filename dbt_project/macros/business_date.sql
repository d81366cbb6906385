{#- The run's business date as a SQL date literal: var('business_date'), else the environment's
    XIHU_BUSINESS_DATE, which is how the DAG passes it (run_date below). A manual `dbt build` with
    neither takes the latest business_date present in the raw order tables, resolved once at compile time
    so that the incremental filters compare against a constant (DuckDB prunes on constants, not on
    subqueries). -#}
{% macro business_date() -%}
    {%- set day = run_date('business_date') -%}
    {%- if day is none and execute -%}
        {%- set latest_query -%}
            select max(business_date) from (
                select max(business_date) as business_date from {{ source('raw', 'meituan_orders') }}
                union all
                select max(business_date) from {{ source('raw', 'eleme_orders') }}
                union all
                select max(business_date) from {{ source('raw', 'sf_orders') }}
                union all
                select max(business_date) from {{ source('raw', 'shansong_orders') }}
            ) as latest
        {%- endset -%}
        {%- set day = run_query(latest_query).columns[0].values()[0] -%}
    {%- endif -%}
    {%- if day is none -%}
        cast(null as date)
    {%- else -%}
        cast('{{ day }}' as date)
    {%- endif -%}
{%- endmacro %}

{#- First business date an incremental model rebuilds: late corrections of D-1 are re-pulled, so the
    window reaches back var('reprocess_days') days from the oldest day the run loaded: var('loaded_from')
    or XIHU_LOADED_FROM,
    which the DAG sets to its business date (older than business_date when a run corrects an old day while
    the marts stay as of the newest), default business_date. -#}
{% macro reprocess_from() -%}
    {%- set loaded_from = run_date('loaded_from') -%}
    {%- if loaded_from -%}
        (least(cast('{{ loaded_from }}' as date), {{ business_date() }}) - {{ var('reprocess_days') }})
    {%- else -%}
        ({{ business_date() }} - {{ var('reprocess_days') }})
    {%- endif -%}
{%- endmacro %}

{#- A date of the run: var(name) when given (a manual `dbt build --vars`), else env XIHU_<NAME> (the DAG,
    ingest.settings.dbt_run_env), else none. The DAG passes its dates in the environment, not as --vars,
    because dbt parses the whole project again whenever --vars change (every day), while a changed
    environment variable re-parses only the files that read it: the daily build keeps partial parsing
    (docs/internals.md, "dbt"). -#}
{% macro run_date(name) -%}
    {{- return(var(name, none) or env_var('XIHU_' ~ name | upper, '') or none) -}}
{%- endmacro %}
