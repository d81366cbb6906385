"""The late-correction band on its own: partition verdicts and published days that may or may not move."""

from __future__ import annotations

from datetime import date

import duckdb
import pytest

from ingest.corrections import PartitionCounts, judge_partition, published_day_moves


@pytest.mark.parametrize(
    ("old", "new", "verdict"),
    [
        (None, (100, 100, 0), "new"),
        ((20_159, 20_100, 59), (20_159, 14_099, 6_060), "refused"),  # the malformed re-pull of issue 9
        ((1000, 990, 10), (1005, 995, 10), "replaced"),  # a few late orders
        ((1000, 700, 300), (1000, 995, 5), "repaired"),  # a truncated station file fetched whole
        ((1000, 990, 10), (800, 790, 10), "refused"),  # the source lost a fifth of the day
    ],
)
def test_partition_verdicts(old, new, verdict):
    got, why = judge_partition(PartitionCounts(*old) if old else None, PartitionCounts(*new), band=0.03)
    assert got == verdict, why


def _kpis(con, catalog, rows):
    con.execute(f"attach ':memory:' as {catalog}")
    con.execute(f"create schema {catalog}.marts")
    con.execute(
        f"create table {catalog}.marts.district_daily_kpis (business_date date, deliveries bigint, "
        "share_to_friendly_units double, median_last100_min_friendly double, "
        "median_last100_min_non_friendly double, station_visits bigint, points_earned bigint, "
        "points_redeemed bigint)"
    )
    con.executemany(f"insert into {catalog}.marts.district_daily_kpis values (?, ?, ?, ?, ?, ?, ?, ?)", rows)


def test_published_days_move_only_within_the_band():
    d1, d2, d3 = date(2026, 11, 20), date(2026, 11, 21), date(2026, 11, 22)
    con = duckdb.connect()
    _kpis(con, "live", [(d1, 20_000, 0.40, 3.1, 5.2, 600, 900, 400), (d2, 20_000, 0.40, 3.1, 5.2, 600, 900, 400)])
    _kpis(
        con,
        "staged",
        [
            (d1, 20_150, 0.401, 3.12, 5.2, 608, 905, 400),  # late corrections: within the band
            (d2, 14_099, 0.40, 3.1, None, 600, 900, 404),  # lost 30% of deliveries; a median now suppressed
            (d3, 21_000, 0.41, 3.0, 5.1, 610, 950, 420),  # a new day: nothing published to compare
        ],
    )
    assert published_day_moves(con, "live", "staged", exempt=set(), band=0.03) == [
        "2026-11-21 deliveries 20000 -> 14099"
    ]
    assert published_day_moves(con, "live", "staged", exempt={d2}, band=0.03) == []
