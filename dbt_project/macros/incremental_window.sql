{#- First date the incremental marts rebuild: the first day of the month that holds the day before
    reprocess_from(). Whole months, not just the reprocess window, because secondary suppression
    (macros/secondary_suppression.sql) links every daily mart's rows of a month through the
    day -> month relation (service_circle_daily -> street_coverage_monthly): its greedy sweep only gives
    the full-refresh result when every row of a month it touches starts again from the K rule's cells,
    so a run rebuilds those months whole and the on-run-end hook sweeps only them. One day before the
    window because a stay (int_station_sessions) pairs a check-in with a check-out up to 6 h later: a
    check-out reloaded on the window's first day can change the stay of a check-in the day before.
    At most ~33 days a run, however long the history. -#}
{% macro reprocess_month_from() -%}
    cast(date_trunc('month', {{ reprocess_from() }} - 1) as date) {{ incremental_months_marker() }}
{%- endmacro %}

{#- The comment reprocess_month_from() leaves in a model's compiled SQL: secondary_suppression() reads it
    to tell a mart that rebuilt only these months from one rebuilt whole (first build, --full-refresh). -#}
{% macro incremental_months_marker() -%}
    /* xihu: rebuilt months only */
{%- endmacro %}

{#- Staging tables (models/staging, configured in dbt_project.yml) are built once a run, so that every
    test and every model downstream reads parsed columns instead of re-parsing raw's JSON, and a run
    rebuilds only the raw partitions it can have loaded. The loader replaces whole (source, date)
    partitions, so the pre-hook deletes the rows whose `meta.partition_column` (the staging column that
    holds raw's business_date, as the model's YAML names it) is >= reprocess_from(), and the model parses
    those dates again from raw (staging_reprocessed_raw); older dates stay as they were built. A first
    build or --full-refresh builds everything; a model without that meta is rebuilt whole. -#}
{% macro staging_delete_reprocessed() -%}
    {#- at parse time config.get answers '' for everything: the hook is only read at run time -#}
    {%- if execute and is_incremental() -%}
        {%- set column = (config.get('meta') or {}).get('partition_column') -%}
        {%- if column -%}
            delete from {{ this }} where {{ column }} >= {{ reprocess_from() }}
        {%- endif -%}
    {%- endif -%}
{%- endmacro %}

{#- The raw partitions a staging table rebuilds (see staging_delete_reprocessed): a where clause on raw's
    business_date, or nothing on a first build. -#}
{% macro staging_reprocessed_raw() -%}
    {%- if is_incremental() -%}
        where business_date >= {{ reprocess_from() }}
    {%- endif -%}
{%- endmacro %}
