"""How final each daily row is, on the sandbox, over the first two nightly runs of a new warehouse.

Each run does what the DAG does (ingest.dates.fetch_plan): at D+1 01:30 it fetches every platform and
the station log for D and D-1 and the union exports for D, loads them and builds (daily_builds.py). So
the first run (D1) loads D1-1 and D1; D1-1's station file brings a few late events of D1-2, a day whose
own file was never fetched. What must hold (indicators.md, "Status of every daily row"):
- after the first run, the rows of D1-2 are `partial` with NULL figures, not a handful of visits that
  reads as a collapse; D1's station and platform figures are `provisional` (D2's file and D1's re-pull
  are still to come); D1-1's are `final` (fetched after its correction window, D1's file loaded);
- after the second run (D2), D1's rows are `final` and D2's `provisional`.

Scale 0.01 and two dates: the claims are about statuses. K = 1 (XIHU_K_ANON, for these builds only), so
that no cell is NULL for privacy and every NULL seen here is the status rule's: the same columns are
published on the other days.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from pathlib import Path

import duckdb
import pytest

from ingest.dates import fetch_plan
from sandbox.server import start_sandbox
from tests.integration.conftest import TZ_SHANGHAI, fetch_landing
from tests.integration.test_incremental import run_days

pytestmark = pytest.mark.slow  # two nightly runs on the sandbox (a minute)

SEED, SCALE = 7, 0.01
D1 = date(2026, 10, 20)
D2 = D1 + timedelta(days=1)
BEFORE = D1 - timedelta(days=2)  # the day before the first station file
DAILY_MARTS = {
    "unit_access_daily": "business_date",
    "station_usage_daily": "event_date",
    "service_circle_daily": "business_date",
    "district_daily_kpis": "business_date",
}


def _rows(path: Path) -> dict[str, list[dict]]:
    with duckdb.connect(str(path), read_only=True) as con:
        out = {}
        for mart in DAILY_MARTS:
            cur = con.execute(f"select * from marts.{mart}")
            names = [d[0] for d in cur.description]
            out[mart] = [dict(zip(names, r, strict=True)) for r in cur.fetchall()]
        late = con.execute(
            "select count(*) from staging.stg_stations__events where event_date = ? and event_type = 'check_in'",
            [BEFORE],
        ).fetchone()[0]
        out["late_check_ins_before"] = late
        return out


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[date, dict]:
    data_dir = tmp_path_factory.mktemp("row_status")
    (data_dir / "warehouse").mkdir()
    after: dict[date, dict] = {}
    with pytest.MonkeyPatch.context() as env, start_sandbox(SEED, SCALE) as sandbox:
        env.setenv("XIHU_K_ANON", "1")
        for day in (D1, D2):
            clock = datetime.combine(day + timedelta(days=1), datetime.min.time(), TZ_SHANGHAI) + timedelta(
                hours=1, minutes=30
            )
            sandbox.set_clock(clock)
            jobs = [(job["source"], date.fromisoformat(job["business_date"])) for job in fetch_plan(day)]
            folders = fetch_landing(sandbox, jobs, data_dir / "landing", f"run-{day}", now=clock)
            run_days(data_dir, [{"business_date": day.isoformat(), "folders": [str(f) for f in folders.values()]}])
            after[day] = _rows(data_dir / "warehouse" / "xihu.duckdb")
    return after


def _statuses(rows: list[dict], column: str, day: date) -> set[str]:
    return {r["status"] for r in rows if r[column] == day}


FIGURES = {
    "station_usage_daily": ("visits", "distinct_riders", "canteen_meals", "points_redeemed"),
    "district_daily_kpis": ("station_visits", "points_earned", "points_redeemed"),
}


def test_the_day_before_the_first_station_file_is_partial_with_null_figures(runs):
    first = runs[D1]
    assert first["late_check_ins_before"] > 0, "the first file brought no late check-in of the day before"
    stations = [r for r in first["station_usage_daily"] if r["event_date"] == BEFORE]
    assert stations, "the late events of the day before make no station row"
    assert {r["status"] for r in stations} == {"partial"}
    assert all(r[c] is None for r in stations for c in FIGURES["station_usage_daily"])
    # the same stations' rows of a fetched day publish those figures (nothing is suppressed at K = 1)
    fetched = [r for r in first["station_usage_daily"] if r["event_date"] == D1 - timedelta(days=1)]
    assert fetched and all(r["visits"] is not None and r["suppressed_cells"] == "" for r in fetched)
    # No platform or station was fetched for that day: if the headline has a row for it, it says so too.
    for row in (r for r in first["district_daily_kpis"] if r["business_date"] == BEFORE):
        assert row["status"] == "partial" and all(row[c] is None for c in FIGURES["district_daily_kpis"])
    # ...and it stays so: the second run fetched no file of that day either.
    assert _statuses(runs[D2]["station_usage_daily"], "event_date", BEFORE) == {"partial"}


def test_the_runs_day_is_provisional_and_final_after_the_next_run(runs):
    first, second = runs[D1], runs[D2]
    for mart, column in DAILY_MARTS.items():
        if mart == "service_circle_daily":
            continue  # its visit columns need 30 days of station logs: next test
        assert _statuses(first[mart], column, D1) == {"provisional"}, mart
        assert _statuses(first[mart], column, D1 - timedelta(days=1)) == {"final"}, mart
        assert _statuses(second[mart], column, D1) == {"final"}, mart
        assert _statuses(second[mart], column, D2) == {"provisional"}, mart
    # D1's station figures are published while provisional, and D2's file (D1's late events) moves them.
    visits = {
        run: sum(r["station_visits"] for r in runs[run]["district_daily_kpis"] if r["business_date"] == D1)
        for run in (D1, D2)
    }
    assert 0 < visits[D1] < visits[D2]


def test_service_circle_visits_wait_for_thirty_days_of_station_logs(runs):
    rows = [r for r in runs[D2]["service_circle_daily"] if r["business_date"] in (D1, D2)]
    assert rows
    assert {r["status"] for r in rows} == {"partial"}
    assert all(r["riders_visited_30d"] is None and r["share_riders_visited_30d"] is None for r in rows)
    # the delivery figures come from the platforms of the date, fetched: published
    assert sum(r["deliveries"] or 0 for r in rows) > 0
