"""A small warehouse of good data: 8 days of every raw table of the raw contract (docs/internals.md), the
staging models over them (dbt's SQL, as views: the raw gate reads them), the load audit, the seeds (the committed
registry CSVs), the intermediate models the marts gate reads, and every mart with every column its dbt YAML
documents. Tests break one rule at a time with plain SQL."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import subprocess
from pathlib import Path

import duckdb
import pytest

ROOT = Path(__file__).resolve().parents[2]
DBT_PROJECT = ROOT / "dbt_project"
DBT = ROOT / ".venv" / "bin" / "dbt"
SEEDS_DIR = DBT_PROJECT / "seeds"
DAY = dt.date(2026, 11, 28)
HISTORY_DAYS = 7
TYPES = ["residential_compound", "office_building", "scenic_area", "hospital", "university", "construction_site"]
SOURCES = {
    # source: (raw table, rows per day)
    "meituan": ("meituan_orders", 40),
    "eleme": ("eleme_orders", 30),
    "sf": ("sf_orders", 20),
    "shansong": ("shansong_orders", 10),
    "union_members": ("union_members", 25),
    "union_orgs": ("union_orgs", 5),
    "stations": ("station_events", 24),
}


def _rider(i: int) -> str:
    return f"{i % 7:032x}"  # hashed phones are 32 hex characters


def _payload(source: str, day: dt.date, i: int) -> tuple[str, dict]:
    """(record_id, payload) of the i-th record of a source on a day, as the loader stores it."""
    key = f"{day:%Y%m%d}-{i:04d}"
    lng, lat = 120.10 + i * 0.001, 30.25 + i * 0.001
    if source == "meituan":
        return key, {
            "order_id": key,
            "status": [20, 30, 50, 99][i % 4],
            "recipient_lng": lng,
            "recipient_lat": lat,
            "courier_phone": _rider(i),
        }
    if source == "eleme":
        return key, {
            "open_order_code": key,
            "order_status": [1, 20, 80, 2, 3, 4, 5][i % 7],
            "lng": str(lng),
            "lat": str(lat),
            "carrier_driver_phone": _rider(i),
        }
    if source == "sf":
        return key, {
            "sf_order_id": key,
            "order_status": [10, 12, 15, 17, 2][i % 5],
            "user_lng": lng,
            "user_lat": lat,
            "lbs_type": 1 + i % 2,
            "operator_phone": _rider(i),
        }
    if source == "shansong":
        log = [{"status": s, "time": f"{day}T12:0{n}:00+08:00"} for n, s in enumerate([20, 30, 40, 50])]
        return key, {
            "orderNo": key,
            "statusChangeLog": log,
            "receiver": {"lng": lng, "lat": lat},
            "courier": {"id": i, "mobile": _rider(i)},
        }
    if source == "union_members":
        return f"M{i:05d}-U01", {
            "会员编号": f"M{i:05d}",
            "会员状态": "在册" if i % 5 else "退会",
            "身份证校验": "valid" if i % 30 else "bad_check_digit",
        }
    if source == "union_orgs":
        return f"U{i:02d}", {"工会编码": f"U{i:02d}"}
    # stations: check-ins, and for riders 0..6 an earning of 10 points then a redemption of 5.
    kinds = ["check_in", "check_out", "points_earn", "points_redeem"]
    event = {
        "event_id": f"ev-{key}",
        "station_id": f"NF-{i % 9 + 1:04d}",
        "type": kinds[i % 4],
        "ts": f"{day}T{8 + i % 12:02d}:{i % 60:02d}:00+08:00",
        "rider_phone": _rider(i // 4),
    }
    if event["type"] == "points_earn":
        event["points"] = 10
    if event["type"] == "points_redeem":
        event["points"] = 5
    return f"ev-{key}", event


def build_warehouse(path: Path, day: dt.date = DAY) -> Path:
    con = duckdb.connect(str(path))
    con.execute("create schema raw")
    con.execute("create schema marts")
    con.execute("create schema intermediate")
    con.execute("create schema seeds")
    for seed in ("units", "streets", "stations", "volunteer_teams"):
        con.execute(
            f"create table seeds.{seed} as select * from read_csv(?, header = true)", [str(SEEDS_DIR / f"{seed}.csv")]
        )
    days = [day - dt.timedelta(days=n) for n in range(HISTORY_DAYS, -1, -1)]
    for source, (table, rows) in SOURCES.items():
        con.execute(
            f"create table raw.{table} (record_id varchar, business_date date, payload json,"
            " fetch_id varchar, page_file varchar, record_no integer, loaded_at timestamp)"
        )
        values = []
        for d in days:
            for i in range(rows):
                record_id, payload = _payload(source, d, i)
                values.append(
                    (
                        record_id,
                        d,
                        json.dumps(payload, ensure_ascii=False),
                        f"f-{d}",
                        "page-00001.json.gz",
                        i,
                        dt.datetime.combine(d, dt.time(18)),
                    )
                )
        con.executemany(f"insert into raw.{table} values (?, ?, ?, ?, ?, ?, ?)", values)
    con.close()
    _build_staging(path)
    con = duckdb.connect(str(path))
    con.execute(
        "create table raw.load_audit (source varchar, business_date date, fetch_id varchar, fetched integer,"
        " loaded integer, quarantined integer, loaded_at timestamp, duplicates_removed integer)"
    )
    # One quarantined record per load, except where one of ten would exceed the 5% limit.
    audit = []
    for d in days:
        for source, (_, rows) in SOURCES.items():
            quarantined = 1 if rows >= 20 else 0
            audit.append(
                (source, d, f"f-{d}", rows + quarantined, rows, quarantined, dt.datetime.combine(d, dt.time(18)), 0)
            )
    con.executemany("insert into raw.load_audit values (?, ?, ?, ?, ?, ?, ?, ?)", audit)
    _build_ledger(con)
    _build_drift_measures(con, days)
    _build_marts(con, day)
    con.close()
    return path


def _build_staging(path: Path) -> None:
    """The staging models, built by dbt itself over the raw tables above (the raw gate reads them), then
    turned into views of the same compiled SQL: dbt builds staging as tables once a run, and a test that
    breaks a raw payload with plain SQL must see it parsed as the next run's build would parse it."""
    out = path.parent / "dbt"
    env = {**os.environ, "XIHU_DBT_WAREHOUSE": str(path), "XIHU_DATA_DIR": str(out), "DO_NOT_TRACK": "1"}
    done = subprocess.run(
        [
            str(DBT),
            "run",
            "--select",
            "staging",
            "--profiles-dir",
            str(DBT_PROJECT),
            "--project-dir",
            str(DBT_PROJECT),
            "--target-path",
            str(out / "target"),
            "--log-path",
            str(out / "logs"),
            "--quiet",
        ],
        cwd=DBT_PROJECT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    # A first build compiles without the incremental filters: each file is the model's whole SQL.
    compiled = sorted((out / "target" / "compiled" / "xihu" / "models" / "staging").rglob("*.sql"))
    assert compiled, "dbt compiled no staging model"
    with duckdb.connect(str(path)) as con:
        for sql in compiled:
            con.execute(f"drop table staging.{sql.stem}")
            con.execute(f"create view staging.{sql.stem} as {sql.read_text()}")


def _build_ledger(con: duckdb.DuckDBPyConnection) -> None:
    """The points ledger dbt builds from the station events above (int_rider_points_ledger): every rider
    earns 10 and then redeems 5 each day, so no opening balance is needed and no redemption violates."""
    con.execute(
        """
        create table intermediate.int_rider_points_ledger as
        select payload->>'event_id' as event_id, payload->>'rider_phone' as rider_key,
               payload->>'station_id' as station_id, cast(left(payload->>'ts', 19) as timestamp) as event_at,
               cast(event_at as date) as event_date,
               case payload->>'type' when 'points_earn' then 'earn' else 'redeem' end as movement,
               case payload->>'type' when 'points_earn' then 1 else -1 end * cast(payload->>'points' as integer)
                   as points_delta,
               event_date < min(business_date) over () + 30 as in_opening_window,
               0 as opening_balance,
               sum(points_delta) over (partition by rider_key order by event_at, event_id) as cumulative_points,
               cumulative_points as balance_after, 0 as shortfall_points, false as is_violation
        from raw.station_events
        where payload->>'type' in ('points_earn', 'points_redeem')
        """
    )


# (measure, sources, ordinary value) of int_drift_measures_daily; the counts are 0 on an ordinary day.
DRIFT_MEASURES = [
    ("aoi_match_rate", ("meituan", "eleme", "sf", "shansong"), 0.8),
    ("unit_match_rate", ("meituan", "eleme", "sf", "shansong"), 0.95),
    ("gate_time_missing_rate", ("meituan", "eleme", "sf", "shansong"), 0.03),
    ("deliveries", ("meituan", "eleme", "sf", "shansong"), 30.0),
    ("quarantine_rate", tuple(SOURCES), 0.01),
    ("unknown_field_records", ("meituan", "eleme", "sf", "shansong", "stations"), 0.0),
    ("missing_optional_field_records", ("meituan", "eleme", "sf", "shansong", "stations"), 0.0),
    ("unknown_station_records", ("stations",), 0.0),
    ("unknown_team_records", ("stations",), 0.0),
]


def _build_drift_measures(con: duckdb.DuckDBPyConnection, days: list[dt.date]) -> None:
    """int_drift_measures_daily as dbt leaves it after ordinary days: every measure at its usual value,
    nothing flagged (the flags themselves are dbt's, tested in tests/dbt)."""
    con.execute(
        "create table intermediate.int_drift_measures_daily (business_date date, source varchar,"
        " measure varchar, observed_value double, trailing_median double, lower_bound double,"
        " upper_bound double, is_flagged boolean, flag_reason varchar)"
    )
    con.executemany(
        "insert into intermediate.int_drift_measures_daily values (?, ?, ?, ?, null, null, null, false, null)",
        [(d, source, measure, value) for d in days for measure, sources, value in DRIFT_MEASURES for source in sources],
    )


def _build_marts(con: duckdb.DuckDBPyConnection, day: dt.date) -> None:
    """Every mart of the marts gate, consistent with the seeds, the load audit and each other; each has
    one suppressed row whose k-anonymised cells are NULL and named in suppressed_cells."""
    dates = "range(?::date - 7, ?::date + 1, interval 1 day) r(d)"
    con.execute(
        f"""
        create table marts.unit_access_daily as
        select s.unit_id, d::date as business_date, s.unit_type, s.street_id, u % 3 = 0 as is_friendly,
               case when d = ?::date then 'provisional' else 'final' end as status,
               case when u = 9 then null else 10 + u end as deliveries,
               case when u = 9 then null else 1 end as cancellations,
               case when u = 9 then null else 3.5 + u end as median_last100_min,
               case when u = 9 then null else 9.0 + u end as p90_last100_min,
               case when u = 9 then null else 0.5::double end as share_entry_code_or_nfc,
               case when u = 9 then null else 0.3::double end as share_entry_order_show,
               case when u = 9 then null else 0.2::double end as share_entry_registration,
               case when u = 9 then null else 0.25::double end as share_parked_rider_bay,
               case when u = 9 then null else 0.5::double end as share_parked_roadside,
               case when u = 9 then null else 0.1::double end as share_locker,
               case when u = 9 then null else u % 2 end as elderly_meal_deliveries,
               case when u = 9 then 'deliveries,cancellations,median_last100_min,p90_last100_min,'
                   || 'share_entry_code_or_nfc,share_entry_order_show,'
                   || 'share_entry_registration,share_parked_rider_bay,share_parked_roadside,'
                   || 'share_locker,elderly_meal_deliveries' else '' end
                   as suppressed_cells
        from range(1, 11) t(u), {dates}, seeds.units s
        where s.unit_id = 'U' || lpad(u::varchar, 4, '0')
        """,
        [day, day, day],
    )
    # The deliveries behind unit_access_daily: unit u has 10 + u deliveries by 5 + u distinct riders.
    con.execute(
        f"""
        create table intermediate.int_orders_matched as
        select 'U' || lpad(u::varchar, 4, '0') as unit_id, d::date as business_date,
               'rider-' || (n % (5 + u)) as rider_key, true as is_delivered
        from range(1, 11) t(u), {dates}, range(30) o(n)
        where n < 10 + u
        """,
        [day, day],
    )
    con.execute(
        """
        create table marts.volunteer_activity_monthly as
        select date_trunc('month', ?::date)::date as month, 'team' as rollup_level, team_id, street_id,
               6 as active_volunteers, 2 as elderly_meal_deliveries, 3 as hazard_reports,
               2 as valid_hazard_reports, 1 as emergency_assists,
               20 + row_number() over (order by team_id) as points_earned, 5 as points_redeemed,
               15 + row_number() over (order by team_id) as points_outstanding, '' as suppressed_cells
        from seeds.volunteer_teams
        union all
        select date_trunc('month', ?::date)::date, 'street', null, street_id, 6, 2, 3, 2, 1, 40, 10, 30, ''
        from seeds.streets
        """,
        [day, day],
    )
    con.execute(
        """
        create table marts.friendly_effect as
        select $day::date as reporting_date, unit_type, 4 as units_adopted, 3 as units_measured,
               case when sup then null else 300 end as after_window_deliveries,
               case when sup then null else 2.5::double end as naive_saving_min,
               case when sup then null else 1.8::double end as did_saving_min,
               case when sup then null else 0.9::double end as did_saving_ci_low_min,
               case when sup then null else 2.7::double end as did_saving_ci_high_min,
               case when sup then null else 900 end as deliveries_last_30_days,
               case when sup then null else 27.0::double end as rider_hours_saved_per_month,
               case when sup then 'suppressed (K)' else 'estimated' end as estimate_note,
               case when sup then 'after_window_deliveries,naive_saving_min,did_saving_min,'
                   || 'did_saving_ci_low_min,did_saving_ci_high_min,deliveries_last_30_days,'
                   || 'rider_hours_saved_per_month'
                   else '' end as suppressed_cells
        from (select unit_type, unit_type = 'construction_site' as sup
              from unnest($types::varchar[]) t(unit_type))
        """,
        {"day": day, "types": [*TYPES, "all"]},
    )
    # The event study on friendly_effect's 3 measured units per type; construction sites' adopted cells
    # suppressed (as their friendly_effect row).
    con.execute(
        """
        create table marts.friendly_event_study as
        select $day::date as business_date, unit_type, cast(r as integer) as rel_day, 3 as adopted_units,
               'final' as status,
               case when sup then null else 30 end as adopted_deliveries,
               case when sup then null else 25 end as adopted_riders,
               case when sup then null else (case when r < 0 then 11.0 else 9.0 end)::double end
                   as adopted_mean_last100_min,
               800 as control_deliveries, 300 as control_riders, 10.5::double as control_mean_last100_min,
               case when sup then 'adopted_deliveries,adopted_riders,adopted_mean_last100_min' else '' end
                   as suppressed_cells
        from (select unit_type, unit_type = 'construction_site' as sup
              from unnest($types::varchar[]) t(unit_type))
        cross join range(-28, 35) as days(r)
        """,
        {"day": day, "types": [*TYPES, "all"]},
    )
    # Unit counts per street from the units seed, as of the business date; S11's deliveries suppressed.
    per_type = ", ".join(
        f"count(*) filter (where unit_type = '{t}') as units_{t}, "
        f"count(*) filter (where unit_type = '{t}' and friendly_since <= $day) as friendly_units_{t}"
        for t in TYPES
    )
    con.execute(
        f"""
        create table marts.street_coverage_monthly as
        select date_trunc('month', $day::date)::date as month, street_id, {per_type},
               count(*) as units_total,
               count(*) filter (where friendly_since <= $day) as friendly_units_total,
               friendly_units_total / units_total as friendly_unit_share,
               count(*) filter (where unit_type in ('residential_compound', 'office_building'))
                   as target_units,
               count(*) filter (where unit_type in ('residential_compound', 'office_building')
                                and friendly_since <= $day) as target_units_friendly,
               target_units_friendly / nullif(target_units, 0) as target_progress,
               case when street_id = 'S11' then null else 400 end as deliveries,
               case when street_id = 'S11' then null else 0.4::double end
                   as share_deliveries_to_friendly_units,
               case when street_id = 'S11' then 'deliveries,share_deliveries_to_friendly_units' else '' end
                   as suppressed_cells
        from seeds.units
        group by street_id
        """,
        {"day": day},
    )
    services = ", ".join(
        f"case when s = 9 then null else {n} end as services_{name}"
        for n, name in enumerate(
            ["charging", "water", "microwave", "rest", "restroom", "first_aid", "haircut", "bike_repair"]
        )
    )
    con.execute(
        f"""
        create table marts.station_usage_daily as
        select 'NF-' || lpad(s::varchar, 4, '0') as station_id, d::date as event_date,
               case when d = ?::date then 'provisional' else 'final' end as status,
               case when s = 9 then null else 10 + s end as visits,
               case when s = 9 then null else 6 end as distinct_riders,
               case when s = 9 then null else 25.0::double end as median_stay_min, {services},
               case when s = 9 then null else 8 end as canteen_meals,
               case when s = 9 then null else 1500.0::double end as avg_meal_price_cents,
               case when s = 9 then null else 15 end as points_redeemed,
               case when s = 9 then 'visits,distinct_riders,median_stay_min,services_charging,'
                   || 'services_water,services_microwave,services_rest,services_restroom,'
                   || 'services_first_aid,services_haircut,services_bike_repair,canteen_meals,'
                   || 'avg_meal_price_cents,points_redeemed'
                   else '' end as suppressed_cells
        from range(1, 10) t(s), {dates}
        """,
        [day, day, day],
    )
    con.execute(
        f"""
        create table marts.service_circle_daily as
        select d::date as business_date, street_id,
               case when d = ?::date then 'provisional' else 'final' end as status,
               case when sup then null else 50 end as deliveries,
               case when sup then null else 30 end as deliveries_within_reach,
               case when sup then null else 0.6::double end as share_within_reach,
               case when sup then null else 10 end as active_riders,
               case when sup then null else 4 end as riders_visited_30d,
               case when sup then null else 0.4::double end as share_riders_visited_30d,
               case when sup then 'deliveries,deliveries_within_reach,share_within_reach,active_riders,'
                   || 'riders_visited_30d,share_riders_visited_30d'
                   else '' end as suppressed_cells
        from (select street_id, street_id = 'S11' as sup from seeds.streets
              union all select 'unmatched', false), {dates}
        """,
        [day, day, day],
    )
    con.execute(
        """
        create table marts.union_coverage_monthly as
        select date_trunc('month', $day::date)::date as month, platform, occupation, street_basis, street_id,
               org_level, union_org_code, union_org_name, $day::date as membership_as_of,
               case when sup or street_basis = 'residence' then null else active end as active_riders,
               case when sup or street_basis = 'residence' then null else good end
                   as active_riders_in_good_standing,
               case when sup or active is null or street_basis = 'residence' then null else good / active end
                   as coverage_rate,
               case when sup or street_basis = 'work' then null else good end as members_in_good_standing,
               case when sup or street_basis = 'work' then null else 2 end as new_members,
               case when sup or street_basis = 'work' then null else 1 end as withdrawals,
               case when sup or street_basis = 'work' then null else 0 end as expulsions,
               case when not sup then ''
                    when street_basis = 'residence' then 'members_in_good_standing,new_members,withdrawals,expulsions'
                    else 'active_riders,active_riders_in_good_standing,coverage_rate' end as suppressed_cells
        from (values
            ('meituan', 'all', 'work', 'S01', 'all', 'all', 'all', 20, 15, false),
            ('eleme', 'all', 'work', 'no_unit_delivery', 'all', 'all', 'all', 12, 0, false),
            ('meituan', 'all', 'work', 'S01', 'union', 'EU1', '美团工会', null, 15, false),
            ('meituan', 'food_delivery_rider', 'residence', 'S01', 'all', 'all', 'all', null, 15, false),
            ('didi', 'ride_hailing_driver', 'residence', 'S02', 'all', 'all', 'all', null, 3, true),
            ('meituan', 'food_delivery_rider', 'residence', 'S01', 'union', 'EU1', '美团工会', null, 15,
             false),
            ('meituan', 'food_delivery_rider', 'residence', 'S01', 'industry_federation', 'FD1',
             '外卖行业工会联合会', null, 15, false),
            ('all', 'all', 'all', 'all', 'district', 'all', 'all', 32, 15, false)
        ) v(platform, occupation, street_basis, street_id, org_level, union_org_code, union_org_name, active,
            good, sup)
        """,
        {"day": day},
    )
    # District KPIs: per-source counts are the load audit's, pivoted like the dbt model does.
    per_source = ", ".join(
        f"any_value(fetched) filter (where source = '{s}') as {s}_fetched, "
        f"any_value(loaded) filter (where source = '{s}') as {s}_loaded, "
        f"any_value(quarantined) filter (where source = '{s}') as {s}_quarantined, "
        f"any_value(duplicates_removed) filter (where source = '{s}') as {s}_duplicates_removed"
        for s in SOURCES
    )
    con.execute(
        f"create temporary table load_pivot as select business_date, {per_source}"
        " from raw.load_audit group by business_date"
    )
    con.execute(
        """
        create table marts.district_daily_kpis as
        select business_date, case when business_date = $day then 'provisional' else 'final' end as status,
               200 as deliveries, 0.3::double as share_to_friendly_units,
               4.0::double as median_last100_min_friendly, 6.5::double as median_last100_min_non_friendly,
               500 as station_visits, 70 as points_earned, 35 as points_redeemed, '' as suppressed_cells,
               case when business_date = $day then 27.0::double end as rider_hours_saved_per_month,
               date_trunc('month', business_date)::date as union_coverage_month,
               0.6::double as union_coverage_rate,
               2 as unit_deliveries_no_gate_time, 1 as unit_deliveries_last100_out_of_range,
               * exclude (business_date)
        from load_pivot
        """,
        {"day": day},
    )
    reasons = [
        "missing_id",
        "wrong_type",
        "bad_coordinates",
        "missing_order_time",
        "unparseable_order_time",
        "order_time_not_on_business_date",
        "invalid_json",
        "missing_event_id",
        "unparseable_ts",
        "other_reason",
    ]
    totals = {
        kind: " + ".join(f"{s}_{kind}" for s in SOURCES)
        for kind in ("fetched", "loaded", "quarantined", "duplicates_removed")
    }
    gates = ", ".join(
        f"7 as {stage}_suites, 40 as {stage}_expectations_evaluated, 0 as {stage}_failed_critical,"
        f" 0 as {stage}_failed_warning, true as {stage}_gate_passed"
        for stage in ("raw", "marts")
    )
    drift = ", ".join(
        [
            f"0 as {p}_{kind}_records"
            for p in ("meituan", "eleme", "sf", "shansong")
            for kind in ("unknown_field", "missing_optional_field")
        ]
        + [f"0 as stations_{kind}_records" for kind in ("unknown_field", "unknown_station", "unknown_team")]
    )
    con.execute(
        f"""
        create table marts.pipeline_runs as
        select 'f-' || business_date || '|' || business_date as run_date_id, 'f-' || business_date as run_id,
               business_date, * exclude (business_date),
               {totals["fetched"]} as total_fetched, {totals["loaded"]} as total_loaded,
               {totals["quarantined"]} as total_quarantined,
               {totals["duplicates_removed"]} as total_duplicates_removed,
               {", ".join(f"{totals['quarantined'] if r == 'missing_id' else 0} as quarantined_{r}" for r in reasons)},
               {drift}, 0 as drift_flags, null::varchar as flag_reasons,
               {gates}, 'published' as publication_status, 'v-' || business_date as published_version,
               business_date + interval 18 hour as published_at,
               business_date + interval 18 hour as last_activity_at
        from load_pivot
        """
    )


@pytest.fixture
def data_dir(tmp_path, monkeypatch) -> Path:
    root = tmp_path / "data"
    monkeypatch.setenv("XIHU_DATA_DIR", str(root))
    monkeypatch.setenv("GX_ANALYTICS_ENABLED", "False")
    return root


@pytest.fixture(scope="session")
def warehouse_template(tmp_path_factory) -> Path:
    """Built once per session (about 20 s, most of it dbt building the staging models); each test gets
    its own copy to break."""
    return build_warehouse(tmp_path_factory.mktemp("template") / "xihu.duckdb")


@pytest.fixture
def warehouse(data_dir, warehouse_template) -> Path:
    (data_dir / "warehouse").mkdir(parents=True)
    return Path(shutil.copy(warehouse_template, data_dir / "warehouse" / "xihu.duckdb"))
