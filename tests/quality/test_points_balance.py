"""The points-balance rule of the marts gate reads dbt's ledger (int_rider_points_ledger) and is scoped to
the run's dates: a pre-history redemption funded by the opening balance passes, a violation on an old
day does not block today, one today or on the re-pulled D-1 does, and the summary gives dates and counts,
never a rider."""

from __future__ import annotations

import datetime as dt

import duckdb
import pytest

from expectations.gate import GateFailed, run_gate
from tests.quality.conftest import DAY, HISTORY_DAYS, _rider

RUN = "manual__2026-11-29T01:30:00"
RULE = "no redemption beyond a rider's balance (opening balance counted) on the business date or D-1"
FIRST_DAY = DAY - dt.timedelta(days=HISTORY_DAYS)


def _sql(warehouse, *statements):
    with duckdb.connect(str(warehouse)) as con:
        for statement in statements:
            con.execute(statement)


def _points_suite(warehouse, day: dt.date):
    """The rider_points_balance outcome of the marts gate for ``day`` (the fixture's other marts hold only
    DAY's period, so older days are judged on this suite alone)."""
    result = run_gate("marts", warehouse, day, RUN, raise_on_failure=False)
    [points] = [s for s in result.suites if s.suite == "rider_points_balance"]
    return points, result.summary


def _violation_on(day: dt.date) -> str:
    """Mark the day's redemption at NF-0004 (rider 0's, one a day) as a shortfall of 5 points."""
    return (
        "update intermediate.int_rider_points_ledger set is_violation = true, shortfall_points = 5"
        f" where event_date = '{day}' and movement = 'redeem' and station_id = 'NF-0004'"
    )


def test_a_redemption_of_points_earned_before_the_first_file_passes(warehouse):
    # On the first loaded day a new rider redeems 40 points they earned before it: raw has no earning, and
    # the ledger funds it from the opening balance instead of calling it a violation.
    pre_history = {
        "event_id": "ev-pre-1",
        "station_id": "NF-0001",
        "type": "points_redeem",
        "points": 40,
        "ts": f"{FIRST_DAY}T09:00:00+08:00",
        "rider_phone": "f" * 32,
    }
    _sql(
        warehouse,
        "insert into raw.station_events values ('ev-pre-1', '{0}', '{1}', 'f-{0}', 'page-00001.json.gz', 99,"
        " '{0} 18:00:00')".format(FIRST_DAY, str(pre_history).replace("'", '"')),
        "insert into intermediate.int_rider_points_ledger (event_id, rider_key, station_id, event_at, event_date,"
        " movement, points_delta, in_opening_window, opening_balance, cumulative_points, balance_after,"
        f" shortfall_points, is_violation) values ('ev-pre-1', '{'f' * 32}', 'NF-0001', '{FIRST_DAY} 09:00:00',"
        f" '{FIRST_DAY}', 'redeem', -40, true, 40, -40, 0, 0, false)",
    )
    assert _points_suite(warehouse, FIRST_DAY)[0].success
    assert run_gate("marts", warehouse, DAY, RUN).success


def test_a_violation_on_an_old_day_does_not_block_today(warehouse):
    old_day = DAY - dt.timedelta(days=4)
    _sql(warehouse, _violation_on(old_day))
    assert run_gate("marts", warehouse, DAY, RUN).success
    # It did block its own day's run.
    points, summary = _points_suite(warehouse, old_day)
    assert not points.success
    assert f"violations=1 event_date={old_day}" in summary


@pytest.mark.parametrize("days_back", [0, 1], ids=["business date", "re-pulled D-1"])
def test_a_violation_in_the_runs_dates_blocks_with_dates_and_counts_only(warehouse, days_back):
    day = DAY - dt.timedelta(days=days_back)
    _sql(warehouse, _violation_on(day))
    with pytest.raises(GateFailed) as failed:
        run_gate("marts", warehouse, DAY, RUN)
    summary = str(failed.value)
    critical = summary.split(" Critical: ", 1)[1]
    assert f"rider_points_balance: {RULE}" in critical
    assert f"1 of 2 rows unexpected, e.g. violations=1 event_date={day}" in critical
    assert not any(_rider(i) in summary for i in range(7))
    [points] = [s for s in failed.value.result.suites if s.suite == "rider_points_balance"]
    assert (points.failed_critical, points.failed_warning) == (1, 0)
