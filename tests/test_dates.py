"""The business date is derived in one place and agrees for scheduled, manual, test and backfill runs."""

from datetime import UTC, date, datetime, timedelta

import pytest

from ingest.dates import LOCAL, business_date_for, fetch_plan, run_time_for


def test_scheduled_run_processes_the_day_before():
    assert business_date_for(datetime(2026, 11, 29, 1, 30, tzinfo=LOCAL)) == date(2026, 11, 28)


def test_utc_logical_date_is_read_in_shanghai_time():
    # 2026-11-28 17:30 UTC is 2026-11-29 01:30 in Shanghai: the scheduled run for the 28th.
    assert business_date_for(datetime(2026, 11, 28, 17, 30, tzinfo=UTC)) == date(2026, 11, 28)
    # 15:59 UTC is still the 28th in Shanghai (23:59): a manual run then processes the 27th.
    assert business_date_for(datetime(2026, 11, 28, 15, 59, tzinfo=UTC)) == date(2026, 11, 27)


def test_manual_run_without_logical_date_uses_run_after():
    assert business_date_for(None, datetime(2026, 11, 29, 14, 0, tzinfo=UTC)) == date(2026, 11, 28)


def test_explicit_business_date_wins():
    assert business_date_for(datetime(2026, 11, 29, 1, 30, tzinfo=LOCAL), override="2026-10-01") == date(2026, 10, 1)


def test_backfill_fire_times_map_back_to_their_days():
    for offset in range(40):
        day = date(2026, 10, 1) + timedelta(days=offset)
        assert business_date_for(run_time_for(day)) == day


def test_naive_or_missing_times_are_refused():
    with pytest.raises(ValueError):
        business_date_for(datetime(2026, 11, 29, 1, 30))
    with pytest.raises(ValueError):
        business_date_for(None, None)


def test_fetch_plan_repulls_the_previous_day_for_platforms_and_stations():
    plan = fetch_plan(date(2026, 11, 28))
    repulled = {"meituan", "eleme", "sf", "shansong", "stations"}
    twice = {(j["source"], j["business_date"]) for j in plan if j["source"] in repulled}
    assert len(twice) == 10 and ("sf", "2026-11-27") in twice and ("stations", "2026-11-27") in twice
    others = [j for j in plan if j["source"] not in repulled]
    assert {j["source"] for j in others} == {"union_members", "union_orgs"}
    assert {j["business_date"] for j in others} == {"2026-11-28"}


def test_demo_takes_the_last_days_whose_run_time_has_come():
    from ops.demo import last_complete_dates

    # 00:04 on the 30th: the 29th is over but its station log is not out until 00:30, its run not until 01:30.
    assert last_complete_dates(3, datetime(2026, 11, 30, 0, 4, tzinfo=LOCAL)) == [
        date(2026, 11, 26),
        date(2026, 11, 27),
        date(2026, 11, 28),
    ]
    assert last_complete_dates(3, datetime(2026, 11, 30, 1, 30, tzinfo=LOCAL)) == [
        date(2026, 11, 27),
        date(2026, 11, 28),
        date(2026, 11, 29),
    ]
