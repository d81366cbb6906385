{#- Tests of staging tables read only the partitions a run can have changed.

    Staging tables span all of raw, and a run rebuilds only the reprocess window of them
    (macros/incremental_window.sql): an unrestricted `unique` or `accepted_values` test would re-read the
    whole history on every daily run, to check rows tested when they were built. A test
    whose `where` config is the placeholder `__recent_partitions__` (set for every staging test in
    dbt_project.yml) checks only the rows whose partition column, named by the model's
    `meta.partition_column`, lies in the reprocess window: dates >= business_date - reprocess_days, the
    only raw partitions a daily run loads. Models without that meta (small registries such as the union
    exports) are tested whole. Any other `where` works as dbt's default. -#}
{% macro get_where_subquery(relation) -%}
    {%- set where = config.get('where', '') -%}
    {%- if where == '__recent_partitions__' -%}
        {%- set tested = graph.nodes.get(model.attached_node) if model.attached_node else none -%}
        {%- set column = tested.config.meta.get('partition_column') if tested else none -%}
        {%- set where = (column ~ ' >= ' ~ reprocess_from()) if column else '' -%}
    {%- endif -%}
    {%- if where -%}
        {%- set filtered -%}
            (select * from {{ relation }} where {{ where }}) as dbt_subquery
        {%- endset -%}
        {%- do return(filtered) -%}
    {%- else -%}
        {%- do return(relation) -%}
    {%- endif -%}
{%- endmacro %}
