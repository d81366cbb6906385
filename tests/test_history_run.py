"""History runs: a date range in one run of the real DAG (params ``history_from``/``history_to``).

The range rules and the fetch plan are checked directly; then the real DAG runs under `airflow dags
test` against the sandbox for five days across a month end, and must publish one version whose marts
hold every date of the range, with every (source, date) partition loaded once and its counts adding up.
A bad range fails at ``plan`` with a message naming the params.
"""

from __future__ import annotations

import json
from collections import Counter
from datetime import date, timedelta

import duckdb
import pytest

from ingest.dates import MAX_HISTORY_DAYS, PLATFORMS_AND_STATIONS, history_dates, history_plan
from ops.demo import DAG_ID, run_history, sandbox
from ops.localenv import airflow, embedded_env, init_airflow
from tests.requires import needs_chromium

pytestmark = needs_chromium  # every test here publishes a version, and with it the briefing's PDF

SEED, SCALE = 11, 0.01
FIRST, LAST = date(2026, 10, 29), date(2026, 11, 2)  # across the October month end
RANGE = [FIRST + timedelta(days=i) for i in range((LAST - FIRST).days + 1)]


def test_history_dates_is_the_inclusive_range_or_none():
    assert history_dates(None, None) is None
    assert history_dates(FIRST.isoformat(), LAST.isoformat()) == RANGE
    assert history_dates("2026-11-02", "2026-11-02") == [date(2026, 11, 2)]


@pytest.mark.parametrize(
    ("params", "message"),
    [
        (("2026-11-02", "2026-10-29", None), "is after history_to"),
        (("2026-10-29", None, None), "needs both history_from and history_to"),
        (("2026-10-29", "2026-11-02", "2026-11-01"), "cannot be combined"),
        (("2025-01-01", "2026-11-02", None), f"more than {MAX_HISTORY_DAYS}"),
    ],
)
def test_bad_ranges_are_refused_by_name(params, message):
    with pytest.raises(ValueError, match=message):
        history_dates(*params)


def test_history_plan_fetches_every_date_and_the_union_at_month_ends():
    plan = history_plan(RANGE)
    pairs = Counter((j["source"], j["business_date"]) for j in plan)
    assert all(n == 1 for n in pairs.values()), "a (source, date) is fetched twice"
    for source in PLATFORMS_AND_STATIONS:
        assert {d for s, d in pairs if s == source} == {d.isoformat() for d in RANGE}
    assert {d for s, d in pairs if s == "union_members"} == {"2026-10-31", "2026-11-02"}
    assert {d for s, d in pairs if s == "union_orgs"} == {"2026-11-02"}


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    data = tmp_path_factory.mktemp("history")
    init_airflow(embedded_env(data))
    with sandbox(SEED, SCALE) as base_url:
        yield {"data": data, "env": embedded_env(data, base_url)}


def test_a_bad_range_fails_the_run_clearly(world):
    conf = json.dumps({"history_from": LAST.isoformat(), "history_to": FIRST.isoformat()})
    result = airflow(world["env"], "dags", "test", "-c", conf, DAG_ID, check=False, capture=True)
    assert result.returncode != 0
    assert f"refused params: history_from {LAST} is after history_to {FIRST}" in result.stdout + result.stderr
    assert not (world["data"] / "published" / "current").exists()


def test_history_run_publishes_one_version_with_every_date(world):
    data = world["data"]
    assert run_history(world["env"], FIRST, LAST), "the history run failed"
    manifests = [json.loads(p.read_text()) for p in (data / "published" / "versions").glob("*/manifest.json")]
    assert [m["business_date"] for m in manifests] == [LAST.isoformat()], "not one version as of history_to"

    con = duckdb.connect(str(data / "published" / "current" / "marts.duckdb"), read_only=True)
    kpi_days = {
        d
        for (d,) in con.execute(
            "select business_date from district_daily_kpis where deliveries > 0 and station_visits > 0"
        ).fetchall()
    }
    unit_days = {d for (d,) in con.execute("select distinct business_date from unit_access_daily").fetchall()}
    months = set(con.execute("select distinct month, membership_as_of from union_coverage_monthly").fetchall())
    con.close()
    assert kpi_days == set(RANGE), kpi_days
    assert unit_days == set(RANGE), unit_days
    # each month's membership from its own month end's export (history_to's for the current month)
    assert months == {(date(2026, 10, 1), date(2026, 10, 31)), (date(2026, 11, 1), LAST)}, months

    con = duckdb.connect(str(data / "warehouse" / "xihu.duckdb"), read_only=True)
    loads = con.execute(
        "select source, business_date, fetched, loaded, duplicates_removed, quarantined from raw.load_audit"
    ).fetchall()
    gated = con.execute("select distinct business_date, stage from audit.gate_results").fetchall()
    con.close()
    partitions = Counter((source, day) for source, day, *_ in loads)
    assert all(n == 1 for n in partitions.values()), "a partition was loaded more than once"
    assert set(partitions) == {(s, d) for s in PLATFORMS_AND_STATIONS for d in RANGE} | {
        ("union_members", date(2026, 10, 31)),
        ("union_members", LAST),
        ("union_orgs", LAST),
    }
    for source, day, fetched, loaded, duplicates, quarantined in loads:
        assert fetched == loaded + duplicates + quarantined > 0, (source, day)
    assert set(gated) == {(LAST, "raw"), (LAST, "marts")}
