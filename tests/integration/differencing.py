"""A differencing attack on the published marts: every published total that is the sum of published parts
(docs/internals.md, "Secondary suppression"), written here from the marts' definitions, independently of
the relations macros/secondary_suppression.sql protects.

A cell is recovered when, under one total, exactly one of {total, parts} is NULL and everything else is
published: the NULL one is the total minus the other parts (or the sum of the parts).
"""

from __future__ import annotations

UNION_CELL = "month, platform, occupation, street_basis, street_id"
UNION_COUNTS = (
    "active_riders_in_good_standing",
    "members_in_good_standing",
    "new_members",
    "withdrawals",
    "expulsions",
)
VOLUNTEER_CELLS = (
    "active_volunteers",
    "elderly_meal_deliveries",
    "hazard_reports",
    "valid_hazard_reports",
    "emergency_assists",
    "points_earned",
    "points_redeemed",
    "points_outstanding",
)

# The industry federation each union organisation rolls up to (the nearest one at or above it).
FEDERATION_OF = """
    with recursive up as (
        select union_code, union_code as ancestor, 0 as n from staging.stg_union__orgs
        union all
        select up.union_code, o.parent_union_code, up.n + 1 from up
        join staging.stg_union__orgs o on up.ancestor = o.union_code
        where o.parent_union_code is not null and up.n < 10
    )
    select up.union_code, up.ancestor as federation_code from up
    join staging.stg_union__orgs f on up.ancestor = f.union_code and f.org_type = 'industry_federation'
    qualify row_number() over (partition by up.union_code order by up.n) = 1
"""


def relations() -> list[tuple[str, str, str]]:
    """(name, parts: select group, v; totals: select group, v) over the published marts."""
    rel = [
        (
            "unit_access_daily.deliveries -> service_circle_daily.deliveries",
            "select street_id, business_date, deliveries as v from marts.unit_access_daily",
            "select street_id, business_date, deliveries as v from marts.service_circle_daily",
        ),
        (
            "service_circle_daily.deliveries -> district_daily_kpis.deliveries",
            "select business_date, deliveries as v from marts.service_circle_daily",
            "select business_date, deliveries as v from marts.district_daily_kpis",
        ),
        (
            "service_circle_daily.deliveries (days) -> street_coverage_monthly.deliveries",
            "select street_id, cast(date_trunc('month', business_date) as date) as month, deliveries as v "
            "from marts.service_circle_daily where street_id <> 'unmatched'",
            "select street_id, month, deliveries as v from marts.street_coverage_monthly "
            "where month in (select distinct cast(date_trunc('month', business_date) as date) "
            "from marts.service_circle_daily)",
        ),
        (
            "station_usage_daily.visits -> district_daily_kpis.station_visits",
            "select event_date as business_date, visits as v from marts.station_usage_daily",
            "select business_date, station_visits as v from marts.district_daily_kpis",
        ),
        (
            "station_usage_daily.points_redeemed -> district_daily_kpis.points_redeemed",
            "select event_date as business_date, points_redeemed as v from marts.station_usage_daily",
            "select business_date, abs(points_redeemed) as v from marts.district_daily_kpis",
        ),
    ]
    for column in VOLUNTEER_CELLS:
        rel.append(
            (
                f"volunteer_activity_monthly.{column}: team -> street",
                f"select month, street_id, {column} as v from marts.volunteer_activity_monthly "
                "where rollup_level = 'team'",
                f"select month, street_id, {column} as v from marts.volunteer_activity_monthly "
                "where rollup_level = 'street'",
            )
        )
    for column in ("after_window_deliveries", "deliveries_last_30_days"):
        rel.append(
            (
                f"friendly_effect.{column}: unit type -> all",
                f"select reporting_date, {column} as v from marts.friendly_effect where unit_type <> 'all'",
                f"select reporting_date, {column} as v from marts.friendly_effect where unit_type = 'all'",
            )
        )
    for column in ("naive_saving_min", "did_saving_min"):
        # `all` is the mean over every measured unit: the sum of the types' means weighted by their units
        rel.append(
            (
                f"friendly_effect.{column} x units_measured: unit type -> all",
                f"select reporting_date, {column} * units_measured as v from marts.friendly_effect "
                "where unit_type <> 'all' and units_measured > 0",
                f"select reporting_date, {column} * units_measured as v from marts.friendly_effect "
                "where unit_type = 'all'",
            )
        )
    for column in ("adopted_deliveries", "control_deliveries"):
        rel.append(
            (
                f"friendly_event_study.{column}: unit type -> all, per relative day",
                f"select business_date, rel_day, {column} as v from marts.friendly_event_study "
                "where unit_type <> 'all'",
                f"select business_date, rel_day, {column} as v from marts.friendly_event_study where unit_type = 'all'",
            )
        )
    # the after window [a+7, a+34] of friendly_effect is relative days 7..34 of the event study
    rel.append(
        (
            "friendly_event_study.adopted_deliveries (days 7..34) -> friendly_effect.after_window_deliveries",
            "select business_date, unit_type, adopted_deliveries as v from marts.friendly_event_study "
            "where rel_day between 7 and 34",
            "select reporting_date as business_date, unit_type, after_window_deliveries as v "
            "from marts.friendly_effect",
        )
    )
    for column in UNION_COUNTS:
        m = "marts.union_coverage_monthly"
        rel += [
            (
                f"union_coverage_monthly.{column}: union -> industry federation",
                f"select {UNION_CELL}, f.federation_code, {column} as v from {m} u "
                f"join ({FEDERATION_OF}) f on u.union_org_code = f.union_code where org_level = 'union'",
                f"select {UNION_CELL}, union_org_code as federation_code, {column} as v from {m} "
                "where org_level = 'industry_federation'",
            ),
            (
                f"union_coverage_monthly.{column}: industry federation -> all",
                f"select {UNION_CELL}, {column} as v from {m} u left join ({FEDERATION_OF}) f "
                "on u.union_org_code = f.union_code "
                "where org_level = 'industry_federation' or (org_level = 'union' and f.federation_code is null)",
                f"select {UNION_CELL}, {column} as v from {m} where org_level = 'all'",
            ),
            (
                f"union_coverage_monthly.{column}: union -> all",
                f"select {UNION_CELL}, {column} as v from {m} where org_level = 'union'",
                f"select {UNION_CELL}, {column} as v from {m} where org_level = 'all'",
            ),
        ]
    for column in (*UNION_COUNTS, "active_riders"):
        rel.append(
            (
                f"union_coverage_monthly.{column}: cell -> district",
                f"select month, {column} as v from marts.union_coverage_monthly where org_level = 'all'",
                f"select month, {column} as v from marts.union_coverage_monthly where org_level = 'district'",
            )
        )
    return rel


def recoverable(con) -> dict[str, int]:
    """Cells the attack recovers, per relation (relations recovering none are left out)."""
    found = {}
    for name, parts, totals in relations():
        groups = [d[0] for d in con.execute(f"select * from ({parts}) limit 0").description if d[0] != "v"]
        keys = ", ".join(groups)
        on = " and ".join(f"p.{g} is not distinct from t.{g}" for g in groups)
        n = con.execute(f"""
            with parts as ({parts}), totals as ({totals}),
            g as (select {keys}, count(*) filter (where v is null) as nulls, count(*) as n from parts group by all)
            select count(*) from g join totals t on {on.replace("p.", "g.")}
            where (g.nulls = 1 and t.v is not null) or (g.nulls = 0 and t.v is null)
        """).fetchone()[0]
        if n:
            found[name] = n
    return found
