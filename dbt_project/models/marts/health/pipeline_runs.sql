{%- set sources = ['meituan', 'eleme', 'sf', 'shansong', 'union_members', 'union_orgs', 'stations'] -%}
{%- set platforms = ['meituan', 'eleme', 'sf', 'shansong'] -%}
{#- Quarantine reasons of docs/internals.md; wrong_type:<field> is summed over fields. Removed duplicates
    are no reason: they are counted in load_audit.duplicates_removed. -#}
{%- set reasons = [
    'missing_id', 'wrong_type', 'bad_coordinates', 'missing_order_time', 'unparseable_order_time',
    'order_time_not_on_business_date', 'invalid_json', 'missing_event_id', 'unparseable_ts',
] -%}
{#- The audit tables are written by the gate runner and the publisher; until a run has reached them they
    may not exist, and an empty relation of the same shape stands in. -#}
{%- set gate_results_table = source('audit', 'gate_results') -%}
{%- set publications_table = source('audit', 'publications') -%}
{%- set gate_results_exist = execute and adapter.get_relation(
    gate_results_table.database, gate_results_table.schema, gate_results_table.identifier) is not none -%}
{%- set publications_exist = execute and adapter.get_relation(
    publications_table.database, publications_table.schema, publications_table.identifier) is not none -%}

with

gate_results as (

    {% if gate_results_exist %}
        select
            run_id,
            business_date,
            stage,
            evaluated,
            failed_critical,
            failed_warning,
            success,
            checked_at
        from {{ gate_results_table }}
    {% else %}
        select
            cast(null as varchar) as run_id,
            cast(null as date) as business_date,
            cast(null as varchar) as stage,  -- noqa: RF04
            cast(null as integer) as evaluated,
            cast(null as integer) as failed_critical,
            cast(null as integer) as failed_warning,
            cast(null as boolean) as success,
            cast(null as timestamp) as checked_at
        where false
    {% endif %}

),

publications as (

    {% if publications_exist %}
        select
            run_id,
            business_date,
            version,
            published_at,
            status
        from {{ publications_table }}
    {% else %}
        select
            cast(null as varchar) as run_id,
            cast(null as date) as business_date,
            cast(null as varchar) as version,  -- noqa: RF04
            cast(null as timestamp) as published_at,
            cast(null as varchar) as status
        where false
    {% endif %}

),

load_audit as (

    select
        source,
        business_date,
        fetch_id as run_id,
        fetched,
        loaded,
        quarantined,
        duplicates_removed,
        loaded_at
    from {{ source('raw', 'load_audit') }}

),

quarantine as (

    select
        business_date,
        fetch_id as run_id,
        case when reason like 'wrong_type:%' then 'wrong_type' else reason end as reason
    from {{ source('raw', 'quarantine') }}

),

runs as (

    select
        run_id,
        business_date
    from load_audit
    union
    select
        run_id,
        business_date
    from gate_results
    union
    select
        run_id,
        business_date
    from publications

),

loads as (

    select
        run_id,
        business_date,
        {% for src in sources %}
            cast(sum(fetched) filter (where source = '{{ src }}') as bigint) as {{ src }}_fetched,
            cast(sum(loaded) filter (where source = '{{ src }}') as bigint) as {{ src }}_loaded,
            cast(sum(quarantined) filter (where source = '{{ src }}') as bigint) as {{ src }}_quarantined,
            cast(sum(duplicates_removed) filter (where source = '{{ src }}') as bigint)
                as {{ src }}_duplicates_removed,
        {% endfor %}
        cast(sum(fetched) as bigint) as total_fetched,
        cast(sum(loaded) as bigint) as total_loaded,
        cast(sum(quarantined) as bigint) as total_quarantined,
        cast(sum(duplicates_removed) as bigint) as total_duplicates_removed,
        max(loaded_at) as last_loaded_at
    from load_audit
    group by run_id, business_date

),

-- raw.quarantine keeps only the latest load of each partition, so a run whose partition was loaded again
-- by a later run has no reasons left here; its totals stay in load_audit
quarantine_reasons as (

    select
        run_id,
        business_date,
        {% for reason in reasons %}
            count(*) filter (where reason = '{{ reason }}') as quarantined_{{ reason }},
        {% endfor %}
        count(*) filter (
            where reason not in ('{{ reasons | join("', '") }}')
        ) as quarantined_other_reason
    from quarantine
    group by run_id, business_date

),

-- records of the run's load outside the contract or the registries; like raw.quarantine, only the latest
-- load of a partition is left to count, so a run whose partition a later run reloaded shows NULL
field_drift as (

    select
        fetch_id as run_id,
        business_date,
        {% for src in platforms %}
            cast(sum(unknown_field_records) filter (where source = '{{ src }}') as bigint)
                as {{ src }}_unknown_field_records,
            cast(sum(missing_optional_field_records) filter (where source = '{{ src }}') as bigint)
                as {{ src }}_missing_optional_field_records,
        {% endfor %}
        cast(sum(unknown_field_records) filter (where source = 'stations') as bigint)
            as stations_unknown_field_records,
        cast(sum(unknown_station_records) filter (where source = 'stations') as bigint)
            as stations_unknown_station_records,
        cast(sum(unknown_team_records) filter (where source = 'stations') as bigint)
            as stations_unknown_team_records
    from {{ ref('int_source_field_drift') }}
    group by fetch_id, business_date

),

-- why the business date is flagged, as the warehouse holds the date at this build
day_flags as (

    select
        business_date,
        count(*) filter (where is_flagged) as drift_flags,
        string_agg(flag_reason, '; ' order by source, measure) filter (where is_flagged) as flag_reasons
    from {{ ref('int_drift_measures_daily') }}
    group by business_date

),

gates as (

    select
        run_id,
        business_date,
        {% for stage in ['raw', 'marts'] %}
            count(*) filter (where stage = '{{ stage }}') as {{ stage }}_suites,
            cast(sum(evaluated) filter (where stage = '{{ stage }}') as bigint)
                as {{ stage }}_expectations_evaluated,
            cast(sum(failed_critical) filter (where stage = '{{ stage }}') as bigint)
                as {{ stage }}_failed_critical,
            cast(sum(failed_warning) filter (where stage = '{{ stage }}') as bigint)
                as {{ stage }}_failed_warning,
            bool_and(success) filter (where stage = '{{ stage }}') as {{ stage }}_gate_passed,
        {% endfor %}
        max(checked_at) as last_checked_at
    from gate_results
    group by run_id, business_date

),

-- a run re-publishing the same date keeps its last decision
last_publication as (

    select
        run_id,
        business_date,
        status,
        version,
        published_at
    from publications
    qualify row_number() over (partition by run_id, business_date order by published_at desc) = 1

),

final as (

    select
        runs.run_id,
        runs.business_date,
        {% for src in sources %}
            loads.{{ src }}_fetched,
            loads.{{ src }}_loaded,
            loads.{{ src }}_quarantined,
            loads.{{ src }}_duplicates_removed,
        {% endfor %}
        {% for reason in reasons %}
            coalesce(quarantine_reasons.quarantined_{{ reason }}, 0) as quarantined_{{ reason }},
        {% endfor %}
        {% for src in platforms %}
            field_drift.{{ src }}_unknown_field_records,
            field_drift.{{ src }}_missing_optional_field_records,
        {% endfor %}
        field_drift.stations_unknown_field_records,
        field_drift.stations_unknown_station_records,
        field_drift.stations_unknown_team_records,
        coalesce(day_flags.drift_flags, 0) as drift_flags,
        day_flags.flag_reasons,
        {% for stage in ['raw', 'marts'] %}
            gates.{{ stage }}_expectations_evaluated,
            gates.{{ stage }}_failed_critical,
            gates.{{ stage }}_failed_warning,
            gates.{{ stage }}_gate_passed,
            coalesce(gates.{{ stage }}_suites, 0) as {{ stage }}_suites,
        {% endfor %}
        last_publication.version as published_version,
        last_publication.published_at,
        runs.run_id || '|' || strftime(runs.business_date, '%Y-%m-%d') as run_date_id,
        coalesce(loads.total_fetched, 0) as total_fetched,
        coalesce(loads.total_loaded, 0) as total_loaded,
        coalesce(loads.total_quarantined, 0) as total_quarantined,
        coalesce(loads.total_duplicates_removed, 0) as total_duplicates_removed,
        coalesce(quarantine_reasons.quarantined_other_reason, 0) as quarantined_other_reason,
        coalesce(last_publication.status, 'not_reached') as publication_status,
        greatest(loads.last_loaded_at, gates.last_checked_at, last_publication.published_at) as last_activity_at
    from runs
    left join loads
        on runs.run_id = loads.run_id and runs.business_date = loads.business_date
    left join quarantine_reasons
        on runs.run_id = quarantine_reasons.run_id and runs.business_date = quarantine_reasons.business_date
    left join field_drift
        on runs.run_id = field_drift.run_id and runs.business_date = field_drift.business_date
    left join day_flags on runs.business_date = day_flags.business_date
    left join gates
        on runs.run_id = gates.run_id and runs.business_date = gates.business_date
    left join last_publication
        on runs.run_id = last_publication.run_id and runs.business_date = last_publication.business_date

)

select * from final
