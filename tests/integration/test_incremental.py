"""Incremental builds day by day, then a late correction of one day re-run with its reprocess window.

11 consecutive dates are landed from the sandbox as the daily run sees them (the clock at D+1 01:00:
the station log is out, the platforms' late corrections of D are not yet), each loaded and built in
turn (tests/integration/daily_builds.py). Then 2026-11-03 is landed again after the corrections appeared
(the clock moved past D+1 06:00) and re-run for its own business date. What must hold:
- nothing before the reprocess window [D-2, D] changed, in the incremental fact and in every mart;
- inside it, exactly the orders the platforms corrected changed, and the marts changed only where those
  orders count.

Scale 0.01 (~4,000 orders a day), not the district fixture's: the cost here is 12 dbt builds, and the
claims are about which rows change, not about estimates. Eight days before the window are enough for
that: October's monthly rows end before it, and every daily mart has days to compare.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path

import duckdb
import pytest

from sandbox.server import start_sandbox
from tests.integration.conftest import SETTLED_CLOCK, SOURCES, TZ_SHANGHAI, date_range, fetch_landing
from tests.warehouse_helpers import ROOT, dbt_env, run_dbt, warehouse_path

pytestmark = pytest.mark.slow  # builds the sandbox district (minutes)

SEED, SCALE = 7, 0.01
FIRST = date(2026, 10, 26)
DATES = date_range(FIRST, FIRST + timedelta(days=10))
CHANGED = date(2026, 11, 3)  # the window [11-01, 11-03] starts a month
WINDOW_START = CHANGED - timedelta(days=2)  # the project's reprocess_days
ORDER_SOURCES = ("meituan", "eleme", "sf", "shansong")
DRIVER = Path(__file__).with_name("daily_builds.py")


def run_days(data_dir: Path, runs: list[dict]) -> list[dict]:
    plan = data_dir / f"plan-{time.monotonic_ns()}.json"
    plan.write_text(json.dumps({"data_dir": str(data_dir), "runs": runs}))
    env = {**dbt_env(data_dir), "PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        [sys.executable, str(DRIVER), str(plan)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=900
    )
    if result.returncode != 0:
        raise AssertionError(f"daily builds failed:\n{result.stdout[-6000:]}\n{result.stderr[-6000:]}")
    return [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]


def table_rows(con: duckdb.DuckDBPyConnection, schema: str) -> dict[str, tuple[list[str], list[tuple]]]:
    """Every table of ``schema``: its columns and rows."""
    out = {}
    for (table,) in con.execute(
        "select table_name from information_schema.tables where table_schema = ? and table_type = 'BASE TABLE'",
        [schema],
    ).fetchall():
        cur = con.execute(f'select * from {schema}."{table}"')
        out[table] = ([d[0] for d in cur.description], cur.fetchall())
    return out


def raw_orders(con: duckdb.DuckDBPyConnection, day: date) -> dict[str, str]:
    """order_key (platform:record_id) -> payload text of the day's raw orders."""
    out = {}
    for platform in ORDER_SOURCES:
        for record_id, payload in con.execute(
            f"select record_id, payload::varchar from raw.{platform}_orders where business_date = ?", [day]
        ).fetchall():
            out[f"{platform}:{record_id}"] = payload
    return out


@dataclass
class Snapshot:
    marts: dict[str, tuple[list[str], list[tuple]]]
    staging: dict[str, tuple[list[str], list[tuple]]]
    orders: tuple[list[str], list[tuple]]
    raw_changed_day: dict[str, str]


def snapshot(path: Path) -> Snapshot:
    with duckdb.connect(str(path), read_only=True) as con:
        # fetch_id says which landing a row came from: every order of a re-landed day gets a new one.
        cur = con.execute("select * exclude (fetch_id) from intermediate.int_orders_matched")
        orders = ([d[0] for d in cur.description], cur.fetchall())
        return Snapshot(table_rows(con, "marts"), table_rows(con, "staging"), orders, raw_orders(con, CHANGED))


def full_refresh(warehouse: Path, data_dir: Path, day: date) -> dict[str, dict[str, tuple[list[str], list[tuple]]]]:
    """The marts and staging tables of a ``dbt build --full-refresh`` for ``day`` over a copy of
    ``warehouse``'s loaded data, by schema."""
    (data_dir / "warehouse").mkdir(parents=True)
    for suffix in ("", ".wal"):
        if Path(str(warehouse) + suffix).exists():
            shutil.copy(str(warehouse) + suffix, str(warehouse_path(data_dir)) + suffix)
    run_dbt(
        data_dir,
        "build",
        day,
        "--full-refresh",
        "--exclude-resource-type",
        "test",
        "--exclude-resource-type",
        "unit_test",
    )
    with duckdb.connect(str(warehouse_path(data_dir)), read_only=True) as con:
        return {schema: table_rows(con, schema) for schema in ("marts", "staging")}


@dataclass
class DailyRun:
    before: Snapshot
    after: Snapshot
    timings: dict[str, float]
    # The same loaded data built once with --full-refresh: after the daily runs, and after the re-run.
    before_full: dict[str, dict[str, tuple[list[str], list[tuple]]]]
    after_full: dict[str, dict[str, tuple[list[str], list[tuple]]]]


@pytest.fixture(scope="module")
def daily(tmp_path_factory) -> DailyRun:
    data_dir = tmp_path_factory.mktemp("daily")
    (data_dir / "warehouse").mkdir()
    landing = data_dir / "landing"
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    with start_sandbox(SEED, SCALE) as sandbox:
        runs = []
        for day in DATES:
            # The daily run's view of D: after the station log (D+1 00:30), before corrections (D+1 06:00).
            clock = datetime.combine(day + timedelta(days=1), datetime.min.time(), TZ_SHANGHAI) + timedelta(hours=1)
            sandbox.set_clock(clock)
            folders = fetch_landing(sandbox, [(s, day) for s in SOURCES], landing, "daily", now=clock)
            runs.append({"business_date": day.isoformat(), "folders": [str(f) for f in folders.values()]})
        sandbox.set_clock(SETTLED_CLOCK)
        corrected = fetch_landing(
            sandbox, [(s, CHANGED) for s in ORDER_SOURCES], landing, "corrected", now=SETTLED_CLOCK
        )
    timings["fetch_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    run_days(data_dir, runs)
    timings["daily_builds_s"] = time.perf_counter() - t0
    warehouse = warehouse_path(data_dir)
    before = snapshot(warehouse)
    t0 = time.perf_counter()
    before_full = full_refresh(warehouse, tmp_path_factory.mktemp("full_before"), DATES[-1])
    timings["full_refresh_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    rerun = {"business_date": CHANGED.isoformat(), "folders": [str(f) for f in corrected.values()]}
    run_days(data_dir, [rerun])
    timings["rerun_s"] = time.perf_counter() - t0
    after = snapshot(warehouse)
    after_full = full_refresh(warehouse, tmp_path_factory.mktemp("full_after"), CHANGED)
    print("incremental: " + ", ".join(f"{k} {v:.1f}" for k, v in timings.items()))
    return DailyRun(before, after, timings, before_full, after_full)


def _normalised(value):
    # Floats as 12 significant digits: a parallel sum may differ in its last bits between two builds.
    return float(f"{value:.12g}") if isinstance(value, float) else value


def content_hash(columns: list[str], rows: list[tuple]) -> str:
    """A mart's content, independent of row order."""
    lines = sorted(repr(tuple(_normalised(v) for v in r)) for r in rows)
    return hashlib.sha256("\n".join([repr(columns), *lines]).encode()).hexdigest()


def _differences(incremental: tuple[list[str], list[tuple]], full: tuple[list[str], list[tuple]]) -> str:
    old = {repr(tuple(_normalised(v) for v in r)) for r in incremental[1]}
    new = {repr(tuple(_normalised(v) for v in r)) for r in full[1]}
    return f"only incremental: {sorted(old - new)[:3]}; only full refresh: {sorted(new - old)[:3]}"


@pytest.mark.parametrize("state", ["daily runs", "correction re-run"])
def test_every_mart_equals_a_full_refresh_of_the_same_loaded_data(daily, state):
    """Day by day incremental builds (and the re-run of an older day) leave every mart, row for row, as
    one --full-refresh build of the same raw data does: secondary suppression and row status included."""
    incremental = daily.before.marts if state == "daily runs" else daily.after.marts
    full = (daily.before_full if state == "daily runs" else daily.after_full)["marts"]
    assert incremental.keys() == full.keys()
    assert {
        "unit_access_daily",
        "station_usage_daily",
        "service_circle_daily",
        "district_daily_kpis",
        "street_coverage_monthly",
        "union_coverage_monthly",
    } <= incremental.keys()
    differing = {
        mart: _differences(incremental[mart], full[mart])
        for mart in incremental
        if content_hash(*incremental[mart]) != content_hash(*full[mart])
    }
    assert not differing, differing


@pytest.mark.parametrize("state", ["daily runs", "correction re-run"])
def test_every_staging_table_equals_a_full_refresh_of_the_same_loaded_data(daily, state):
    """Staging rebuilt day by day over the reprocess window only holds, row for row, what parsing all of
    raw at once gives: the latest load of each order, the first file's copy of each station event."""
    incremental = daily.before.staging if state == "daily runs" else daily.after.staging
    full = (daily.before_full if state == "daily runs" else daily.after_full)["staging"]
    assert incremental.keys() == full.keys()
    assert {f"stg_{s}__orders" for s in ORDER_SOURCES} | {"stg_stations__events"} <= incremental.keys()
    differing = {
        table: _differences(incremental[table], full[table])
        for table in incremental
        if content_hash(*incremental[table]) != content_hash(*full[table])
    }
    assert not differing, differing


def _by_key(columns: list[str], rows: list[tuple], key: str) -> dict:
    i = columns.index(key)
    return {r[i]: r for r in rows}


def _date_column(columns: list[str]) -> str | None:
    for name in ("business_date", "event_date", "month"):
        if name in columns:
            return name
    return None


def _month_start(value) -> date:
    if isinstance(value, str):  # 'YYYY-MM'
        return date.fromisoformat(value + "-01")
    return value.replace(day=1)


@pytest.fixture(scope="module")
def corrected_keys(daily) -> set[str]:
    before, after = daily.before.raw_changed_day, daily.after.raw_changed_day
    assert before.keys() == after.keys(), "a correction changes orders, it never adds or drops one"
    return {k for k in before if before[k] != after[k]}


def test_the_correction_touched_about_one_percent_of_the_day(corrected_keys, daily):
    share = len(corrected_keys) / len(daily.before.raw_changed_day)
    assert 0.002 < share < 0.03, share  # the world corrects ~1% of a day's orders (truth: 1.04%)


def test_int_orders_matched_changed_exactly_the_corrected_orders(daily, corrected_keys):
    columns, before_rows = daily.before.orders
    _, after_rows = daily.after.orders
    before, after = _by_key(columns, before_rows, "order_key"), _by_key(columns, after_rows, "order_key")
    assert before.keys() == after.keys()
    changed = {k for k in before if before[k] != after[k]}
    assert changed == corrected_keys
    day = columns.index("business_date")
    assert {before[k][day] for k in changed} == {CHANGED}
    # Each corrected order now says what the corrected feed says: newly delivered or newly cancelled.
    status = columns.index("status")
    assert {after[k][status] for k in changed} <= {"delivered", "cancelled"}


def test_marts_outside_the_window_are_unchanged(daily):
    """Rows of every dated mart before the reprocess window are identical after the re-run.

    Daily marts are compared per business date; monthly marts for months that end before the window.
    Marts with one row per reporting date (friendly_effect, and friendly_event_study whose business_date is
    its as-of date) describe the re-run's date by design.
    """
    compared = []
    for mart, (columns, before_rows) in daily.before.marts.items():
        after_columns, after_rows = daily.after.marts[mart]
        assert after_columns == columns, mart
        column = _date_column(columns)
        if column is None or mart in ("pipeline_runs", "friendly_event_study"):
            continue
        i = columns.index(column)
        if column == "month":

            def outside(r, i=i):
                return _month_start(r[i]) < WINDOW_START.replace(day=1)
        else:

            def outside(r, i=i):
                return r[i] < WINDOW_START

        old = sorted((r for r in before_rows if outside(r)), key=repr)
        new = sorted((r for r in after_rows if outside(r)), key=repr)
        assert old, f"{mart}: no rows before the window to compare"
        assert new == old, mart
        compared.append(mart)
    assert {"unit_access_daily", "station_usage_daily", "street_coverage_monthly", "volunteer_activity_monthly"} <= set(
        compared
    )


def test_unit_access_daily_changed_only_where_corrected_orders_count(daily, corrected_keys):
    columns, before_rows = daily.before.marts["unit_access_daily"]
    _, after_rows = daily.after.marts["unit_access_daily"]
    day = columns.index("business_date")
    unit = columns.index("unit_id")
    status = columns.index("status")

    def figures(r: tuple) -> tuple:
        return r[:status] + r[status + 1 :]

    before = {(r[unit], r[day]): r for r in before_rows}
    after = {(r[unit], r[day]): r for r in after_rows}
    assert before.keys() == after.keys()
    changed = {k for k in before if figures(before[k]) != figures(after[k])}
    assert changed, "the correction changed no unit's figures"
    # Each daily run fetched its D once, inside the correction window: provisional. The re-fetch of the
    # changed day came after it closed, so that day, and only it, is final now (indicators.md).
    assert {r[status] for r in before.values()} == {"provisional"}
    assert {k for k in before if before[k][status] != after[k][status]} == {k for k in after if k[1] == CHANGED}
    assert {after[k][status] for k in after if k[1] == CHANGED} == {"final"}
    order_columns, order_rows = daily.after.orders
    orders = _by_key(order_columns, order_rows, "order_key")
    corrected_units = {orders[k][order_columns.index("unit_id")] for k in corrected_keys}
    assert {u for u, _ in changed} <= corrected_units
    assert {d for _, d in changed} == {CHANGED}


def test_district_deliveries_of_the_day_moved_by_the_corrections(daily, corrected_keys):
    """The day's published delivery count moved by exactly the corrected orders' change of status."""
    columns, before_rows = daily.before.orders
    _, after_rows = daily.after.orders
    before, after = _by_key(columns, before_rows, "order_key"), _by_key(columns, after_rows, "order_key")
    delivered = columns.index("is_delivered")
    net = sum(after[k][delivered] - before[k][delivered] for k in corrected_keys)
    assert net != 0
    kpi_columns, kpi_before = daily.before.marts["district_daily_kpis"]
    _, kpi_after = daily.after.marts["district_daily_kpis"]
    day, deliveries = kpi_columns.index("business_date"), kpi_columns.index("deliveries")
    old = {r[day]: r[deliveries] for r in kpi_before}
    new = {r[day]: r[deliveries] for r in kpi_after}
    assert new[CHANGED] - old[CHANGED] == net
    assert {d for d in old if old[d] != new.get(d)} == {CHANGED}
