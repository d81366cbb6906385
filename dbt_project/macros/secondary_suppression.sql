{#- Complementary (secondary) suppression of the published marts, run once after the build (on-run-end in
    dbt_project.yml), after k_anonymise() has NULLed the primary cells (fewer than K people).

    A published total that is the sum of published parts gives a suppressed part back by subtraction when
    it is the only suppressed part under the total. So, for every relation below, whenever exactly one part
    under a published total is suppressed, the next smallest published part (value > 0, ties by key) is
    suppressed too; when no such part exists, the total is. Each newly suppressed cell is NULLed and named
    in its row's `suppressed_cells`, its companions (shares that times a published figure give it back)
    with it, and the relations are swept again until a sweep changes nothing (tau-Argus / sdcTable's
    hypercube heuristic, one equation at a time). docs/internals.md lists the relations and why.

    var('secondary_suppression') (default true) switches it off: the privacy tests build without it to
    show the differencing attack succeeds then. -#}

{% macro suppression_relations() %}
    {%- set federation_of -%}
        (
            with recursive ancestors as (
                select union_code, union_code as ancestor_code, 0 as levels_up from staging.stg_union__orgs
                union all
                select ancestors.union_code, orgs.parent_union_code, ancestors.levels_up + 1
                from ancestors
                inner join staging.stg_union__orgs as orgs on ancestors.ancestor_code = orgs.union_code
                where orgs.parent_union_code is not null and ancestors.levels_up < 10
            )
            select ancestors.union_code, ancestors.ancestor_code as federation_code
            from ancestors
            inner join staging.stg_union__orgs as feds
                on ancestors.ancestor_code = feds.union_code and feds.org_type = 'industry_federation'
            qualify row_number() over (partition by ancestors.union_code order by ancestors.levels_up) = 1
        )
    {%- endset -%}
    {%- set union_cell = ['month', 'platform', 'occupation', 'street_basis', 'street_id'] -%}
    {%- set union_keys = union_cell + ['org_level', 'union_org_code'] -%}
    {%- set union_p = [] -%}
    {%- set union_t = [] -%}
    {%- for column in union_cell -%}
        {%- do union_p.append('p.' ~ column) -%}
        {%- do union_t.append('t.' ~ column) -%}
    {%- endfor -%}
    {%- set union_counts = [
        ['active_riders_in_good_standing', 'active_riders_in_good_standing'],
        ['members_in_good_standing', 'members_in_good_standing'],
        ['new_members', 'new_members'],
        ['withdrawals', 'withdrawals'],
        ['expulsions', 'expulsions'],
    ] -%}
    {%- set volunteer_cells = [
        'active_volunteers', 'elderly_meal_deliveries', 'hazard_reports', 'valid_hazard_reports',
        'emergency_assists', 'points_earned', 'points_redeemed', 'points_outstanding',
    ] -%}
    {%- set volunteer_columns = [] -%}
    {%- for column in volunteer_cells -%}
        {%- do volunteer_columns.append([column, column]) -%}
    {%- endfor -%}
    {%- set relations = [
        {'name': 'unit -> street, per day',
         'parts': 'marts.unit_access_daily', 'keys': ['unit_id', 'business_date'],
         'part_group': ['p.street_id', 'p.business_date'],
         'total': 'marts.service_circle_daily', 'total_group': ['t.street_id', 't.business_date'],
         'part_date': 'p.business_date', 'total_date': 't.business_date',
         'columns': [['deliveries', 'deliveries']]},
        {'name': 'street -> district, per day',
         'parts': 'marts.service_circle_daily', 'keys': ['street_id', 'business_date'],
         'part_group': ['p.business_date'],
         'total': 'marts.district_daily_kpis', 'total_group': ['t.business_date'],
         'part_date': 'p.business_date', 'total_date': 't.business_date',
         'columns': [['deliveries', 'deliveries']]},
        {'name': 'day -> month, per street',
         'parts': 'marts.service_circle_daily', 'keys': ['street_id', 'business_date'],
         'part_group': ['p.street_id', "cast(date_trunc('month', p.business_date) as date)"],
         'total': 'marts.street_coverage_monthly', 'total_group': ['t.street_id', 't.month'],
         'part_date': 'p.business_date', 'total_date': 't.month',
         'columns': [['deliveries', 'deliveries']]},
        {'name': 'station -> district, per day',
         'parts': 'marts.station_usage_daily', 'keys': ['station_id', 'event_date'],
         'part_group': ['p.event_date'],
         'total': 'marts.district_daily_kpis', 'total_group': ['t.business_date'],
         'part_date': 'p.event_date', 'total_date': 't.business_date',
         'columns': [['visits', 'station_visits'], ['points_redeemed', 'points_redeemed']]},
        {'name': 'team -> street, per month',
         'parts': 'marts.volunteer_activity_monthly', 'keys': ['month', 'rollup_level', 'team_id', 'street_id'],
         'part_group': ['p.month', 'p.street_id'], 'part_where': "p.rollup_level = 'team'",
         'total': 'marts.volunteer_activity_monthly', 'total_group': ['t.month', 't.street_id'],
         'total_where': "t.rollup_level = 'street'",
         'columns': volunteer_columns},
        {'name': 'unit type -> all',
         'parts': 'marts.friendly_effect', 'keys': ['reporting_date', 'unit_type'],
         'part_group': ['p.reporting_date'], 'part_where': "p.unit_type <> 'all'",
         'total': 'marts.friendly_effect', 'total_group': ['t.reporting_date'], 'total_where': "t.unit_type = 'all'",
         'columns': [['after_window_deliveries', 'after_window_deliveries'],
                     ['deliveries_last_30_days', 'deliveries_last_30_days']]},
        {'name': 'unit type -> all, per relative day',
         'parts': 'marts.friendly_event_study', 'keys': ['business_date', 'unit_type', 'rel_day'],
         'part_group': ['p.business_date', 'p.rel_day'], 'part_where': "p.unit_type <> 'all'",
         'total': 'marts.friendly_event_study', 'total_group': ['t.business_date', 't.rel_day'],
         'total_where': "t.unit_type = 'all'",
         'columns': [['adopted_deliveries', 'adopted_deliveries'], ['control_deliveries', 'control_deliveries']]},
        {'name': 'relative day -> after window (friendly_effect)',
         'parts': 'marts.friendly_event_study', 'keys': ['business_date', 'unit_type', 'rel_day'],
         'part_group': ['p.business_date', 'p.unit_type'], 'part_where': 'p.rel_day between 7 and 34',
         'total': 'marts.friendly_effect', 'total_group': ['t.reporting_date', 't.unit_type'],
         'columns': [['adopted_deliveries', 'after_window_deliveries']]},
        {'name': 'union organisation -> industry federation',
         'parts': 'marts.union_coverage_monthly', 'keys': union_keys,
         'part_date': 'p.month', 'total_date': 't.month',
         'part_from': 'left join ' ~ federation_of ~ ' as f on p.union_org_code = f.union_code',
         'part_group': union_p + ['f.federation_code'],
         'part_where': "p.org_level = 'union'",
         'total': 'marts.union_coverage_monthly',
         'total_group': union_t + ['t.union_org_code'],
         'total_where': "t.org_level = 'industry_federation'",
         'columns': union_counts},
        {'name': 'industry federation (and union outside any) -> all members of the cell',
         'parts': 'marts.union_coverage_monthly', 'keys': union_keys,
         'part_date': 'p.month', 'total_date': 't.month',
         'part_from': 'left join ' ~ federation_of ~ ' as f on p.union_org_code = f.union_code',
         'part_group': union_p,
         'part_where': "p.org_level = 'industry_federation' or (p.org_level = 'union' and f.federation_code is null)",
         'total': 'marts.union_coverage_monthly', 'total_group': union_t,
         'total_where': "t.org_level = 'all'",
         'columns': union_counts},
        {'name': 'union organisation -> all members of the cell',
         'parts': 'marts.union_coverage_monthly', 'keys': union_keys,
         'part_date': 'p.month', 'total_date': 't.month',
         'part_group': union_p,
         'part_where': "p.org_level = 'union'",
         'total': 'marts.union_coverage_monthly', 'total_group': union_t,
         'total_where': "t.org_level = 'all'",
         'columns': union_counts},
        {'name': 'cell (platform, occupation, street) -> district, per month',
         'parts': 'marts.union_coverage_monthly', 'keys': union_keys,
         'part_date': 'p.month', 'total_date': 't.month',
         'part_group': ['p.month'], 'part_where': "p.org_level = 'all'",
         'total': 'marts.union_coverage_monthly', 'total_group': ['t.month'], 'total_where': "t.org_level = 'district'",
         'columns': union_counts + [['active_riders', 'active_riders']]},
    ] -%}
    {{ return(relations) }}
{% endmacro %}

{#- Cells that, with a published figure of their row, give a suppressed cell back, NULLed with it: shares
    (times their denominator), and friendly_effect's estimates, which `all` averages over the types
    weighted by the published units_measured (the all row x its units minus the other types' gives a
    type's back, so a type's estimates go with its deliveries). friendly_event_study's means go with their
    deliveries both ways: `all`'s mean is the types' means weighted by their timed deliveries, close to the
    published deliveries, so a published mean beside two hidden deliveries (or published deliveries
    beside a hidden mean) would give them back approximately. -#}
{% macro suppression_companions() %}
    {{ return({
        'marts.service_circle_daily': {
            'deliveries': ['share_within_reach'], 'deliveries_within_reach': ['share_within_reach']},
        'marts.union_coverage_monthly': {
            'active_riders': ['coverage_rate'], 'active_riders_in_good_standing': ['coverage_rate']},
        'marts.friendly_effect': {
            'after_window_deliveries': [
                'naive_saving_min', 'did_saving_min', 'did_saving_ci_low_min', 'did_saving_ci_high_min',
                'rider_hours_saved_per_month'],
            'deliveries_last_30_days': ['rider_hours_saved_per_month']},
        'marts.friendly_event_study': {
            'adopted_deliveries': ['adopted_mean_last100_min'],
            'adopted_mean_last100_min': ['adopted_deliveries'],
            'control_deliveries': ['control_mean_last100_min'],
            'control_mean_last100_min': ['control_deliveries']},
    }) }}
{% endmacro %}

{% macro _is_suppressed(alias, column) -%}
    list_contains(string_split({{ alias }}.suppressed_cells, ','), '{{ column }}')
{%- endmacro %}

{% macro _suppress(alias, column) -%}
    {{ column }} = null,
    suppressed_cells = concat_ws(',', nullif({{ alias }}.suppressed_cells, ''), '{{ column }}')
{%- endmacro %}

{% macro _exposed_groups(rel, part_column, total_column, since=none) -%}
    parts as (
        select
            {%- for key in rel['keys'] %} p.{{ key }} as k{{ loop.index0 }},{% endfor %}
            {%- for expr in rel['part_group'] %} {{ expr }} as g{{ loop.index0 }},{% endfor %}
            p.{{ part_column }} as v,
            {{ _is_suppressed('p', part_column) }} as sup
        from {{ rel['parts'] }} as p {{ rel.get('part_from', '') }}
        where ({{ rel.get('part_where', 'true') }})
            {%- if since is not none %} and {{ rel['part_date'] }} >= {{ since }}{% endif %}
    ),
    exposed as (
        select {% for expr in rel['part_group'] %}parts.g{{ loop.index0 }}{% if not loop.last %}, {% endif %}{% endfor %}
        from parts
        inner join (
            select {% for expr in rel['total_group'] %}{{ expr }} as g{{ loop.index0 }}, {% endfor %}true as published
            from {{ rel['total'] }} as t
            where ({{ rel.get('total_where', 'true') }}) and t.{{ total_column }} is not null
                {%- if since is not none %} and {{ rel['total_date'] }} >= {{ since }}{% endif %}
        ) as totals
            on {% for expr in rel['part_group'] %}parts.g{{ loop.index0 }} is not distinct from totals.g{{ loop.index0 }}{% if not loop.last %} and {% endif %}{% endfor %}
        group by all
        having count(*) filter (where parts.sup) = 1
    ),
    candidates as (
        select parts.*
        from parts
        inner join exposed
            on {% for expr in rel['part_group'] %}parts.g{{ loop.index0 }} is not distinct from exposed.g{{ loop.index0 }}{% if not loop.last %} and {% endif %}{% endfor %}
        where not parts.sup and parts.v > 0
    )
{%- endmacro %}

{#- The marts this run rebuilt whole ('schema.name'): every model that ran, except the incremental ones whose
    compiled SQL carries the rebuilt-months filter (a first build or --full-refresh does not). -#}
{% macro suppression_rebuilt_whole(results) %}
    {%- set whole = [] -%}
    {%- for result in results if result.node.resource_type == 'model' and result.node.schema == 'marts' -%}
        {%- if incremental_months_marker() not in (result.node.compiled_code or '') -%}
            {%- do whole.append(result.node.schema ~ '.' ~ result.node.alias) -%}
        {%- endif -%}
    {%- endfor -%}
    {{ return(whole) }}
{% endmacro %}

{% macro secondary_suppression() %}
    {%- if not execute or not var('secondary_suppression', true) -%}
        {{ return('select 1') }}
    {%- endif -%}
    {%- set existing = run_query(
        "select table_schema || '.' || table_name from information_schema.columns "
        ~ "where column_name = 'suppressed_cells' and table_schema = 'marts'").columns[0].values() -%}
    {%- set rebuilt_whole = suppression_rebuilt_whole(results) -%}
    {%- set relations = [] -%}
    {%- for rel in suppression_relations() if rel['parts'] in existing and rel['total'] in existing -%}
        {#- Only the months an incremental run rebuilt can have changed: a relation between marts that all
            either ran incrementally (macros/incremental_window.sql) or did not run is swept from the first
            rebuilt month on; the older months were swept when they were last rebuilt and stay as they are
            (every group of a relation lies inside one month). Without a run's results (`dbt run-operation
            secondary_suppression` on a built warehouse) nothing is known about what was swept: every month. -#}
        {%- if results is defined and results and 'part_date' in rel
              and rel['parts'] not in rebuilt_whole and rel['total'] not in rebuilt_whole -%}
            {%- do rel.update({'since': reprocess_month_from()}) -%}
        {%- endif -%}
        {%- do relations.append(rel) -%}
    {%- endfor -%}
    {%- if relations | length == 0 -%}
        {{ return('select 1') }}
    {%- endif -%}
    {%- set count_sql -%}
        select
        {%- for table in existing %}
            (select coalesce(sum(len(string_split(nullif(suppressed_cells, ''), ','))), 0) from {{ table }})
            {%- if not loop.last %} +{% endif %}
        {%- endfor %}
    {%- endset -%}
    {%- set before = run_query(count_sql).columns[0].values()[0] | int -%}
    {%- set ns = namespace(count=before, stable=false) -%}
    {%- for sweep in range(50) if not ns.stable -%}
        {%- for rel in relations -%}
            {%- for part_column, total_column in rel['columns'] -%}
                {%- set sql -%}
                    update {{ rel['parts'] }} as p set {{ _suppress('p', part_column) }}
                    from (
                        with {{ _exposed_groups(rel, part_column, total_column, rel.get('since')) }}
                        select * from candidates
                        qualify row_number() over (
                            partition by {% for expr in rel['part_group'] %}g{{ loop.index0 }}{% if not loop.last %}, {% endif %}{% endfor %}
                            order by v, {% for key in rel['keys'] %}k{{ loop.index0 }}{% if not loop.last %}, {% endif %}{% endfor %}
                        ) = 1
                    ) as pick
                    where {% for key in rel['keys'] %}p.{{ key }} is not distinct from pick.k{{ loop.index0 }}{% if not loop.last %} and {% endif %}{% endfor %};

                    update {{ rel['total'] }} as t set {{ _suppress('t', total_column) }}
                    from (
                        with {{ _exposed_groups(rel, part_column, total_column, rel.get('since')) }}
                        select * from exposed
                        where not exists (
                            select 1 from candidates
                            where {% for expr in rel['part_group'] %}candidates.g{{ loop.index0 }} is not distinct from exposed.g{{ loop.index0 }}{% if not loop.last %} and {% endif %}{% endfor %}
                        )
                    ) as pick
                    where ({{ rel.get('total_where', 'true') }})
                        {%- for expr in rel['total_group'] %} and {{ expr }} is not distinct from pick.g{{ loop.index0 }}{% endfor %};
                {%- endset -%}
                {%- do run_query(sql) -%}
            {%- endfor -%}
        {%- endfor -%}
        {%- for table, columns in suppression_companions().items() if table in existing -%}
            {%- for column, companions in columns.items() -%}
                {%- for companion in companions -%}
                    {%- do run_query(
                        "update " ~ table ~ " as p set " ~ _suppress('p', companion)
                        ~ " where " ~ _is_suppressed('p', column) ~ " and not " ~ _is_suppressed('p', companion)
                        ~ " and p." ~ companion ~ " is not null") -%}
                {%- endfor -%}
            {%- endfor -%}
        {%- endfor -%}
        {%- set after = run_query(count_sql).columns[0].values()[0] | int -%}
        {%- set ns.stable = after == ns.count -%}
        {%- set ns.count = after -%}
    {%- endfor -%}
    {%- if not ns.stable -%}
        {{ exceptions.raise_compiler_error('secondary suppression did not settle in 50 sweeps') }}
    {%- endif -%}
    {{ log('secondary suppression: ' ~ before ~ ' cells suppressed by the K rule, ' ~ ns.count
           ~ ' after secondary suppression', info=True) }}
    {{ return('select 1') }}
{% endmacro %}
