"""The core marts, built by a real `dbt build` from hand-made raw payloads (see conftest.py).

Each expected figure is worked out by hand from the scenario in conftest.build_orders and
conftest.build_station_files; the comments show the arithmetic.
"""

from __future__ import annotations

import dataclasses
import json
from datetime import timedelta

import duckdb
import pytest

from tests.dbt.conftest import (
    CORE_MARTS,
    CST,
    HASHER,
    PHONES,
    REPORTING_DATE,
    at,
    build_station_files,
    load_station_files,
    replace_order_partition,
    run_dbt_build,
    seed_units,
    station_event,
)
from tests.warehouse_helpers import run_dbt

R = REPORTING_DATE


def order(built, order_id: str) -> dict:
    return built.row("select * from intermediate.int_orders_matched where order_id = ?", [order_id])


# ------------------------------------------------------------------------------ staging + matching
def test_unit_matching_aoi_first_then_radius_and_unmatched_kept(built):
    busy = built.scenario.busy
    # Sent with the busy unit's meituan AOI but the small unit's coordinates: the AOI wins.
    by_aoi = order(built, "b-mt-1")
    assert (by_aoi["unit_id"], by_aoi["match_method"]) == (busy.unit_id, "aoi")
    # Sent in Baidu BD-09: converted back to GCJ-02, then matched by radius to the unit at that point.
    sf = order(built, "b-sf-1")
    assert (sf["unit_id"], sf["match_method"]) == (busy.unit_id, "radius")
    assert sf["dest_lng"] == pytest.approx(busy.lng, abs=2e-5)
    assert sf["dest_lat"] == pytest.approx(busy.lat, abs=2e-5)
    # In no unit's radius: kept and counted, not dropped.
    nowhere = order(built, "nowhere-1")
    assert (nowhere["unit_id"], nowhere["match_method"]) == (None, "unmatched")
    counts = dict(
        built.query("select match_method, count(*) from intermediate.int_orders_matched group by match_method")
    )
    assert counts["unmatched"] == 1
    assert sum(counts.values()) == len(built.orders)


def test_last100_and_local_times(built):
    implausible = order(built, "b-mt-3")
    assert implausible["last100_min"] == pytest.approx(200.0)
    assert implausible["last100_plausible"] is False
    assert order(built, "b-mt-2")["last100_plausible"] is True
    # Placed 23:50 on R, gate 00:15 and delivered 00:23 on R+1, Asia/Shanghai wall clock: belongs to R.
    late = order(built, "b-ss-1")
    assert late["business_date"] == R
    assert late["delivered_at"].isoformat() == f"{R + timedelta(days=1)}T00:23:00"
    assert late["last100_min"] == pytest.approx(8.0)
    # eleme: the repeated, later "accepted" push does not move the accepted time (first 20 wins).
    recent = order(built, "recent-1")
    assert recent["accepted_at"] - recent["ordered_at"] == timedelta(minutes=1)
    assert recent["rider_key"] == HASHER.phone(PHONES[0])
    assert order(built, "b-ss-2")["status"] == "cancelled"
    assert order(built, "late-1")["status"] == "accepted"


# ------------------------------------------------------------------------------ unit_access_daily
def test_unit_access_daily_busy_unit(built):
    row = built.row(
        "select * from marts.unit_access_daily where unit_id = ? and business_date = ?",
        [built.scenario.busy.unit_id, R],
    )
    assert row["deliveries"] == 8  # 7 riders (rider 1 twice)
    assert row["cancellations"] is None  # 1 cancelling rider < K
    # plausible last100: 2, 3, 4, 5, 6, 7, 8 (the 200-minute one excluded) -> median 5, p90 7 + 0.4 = 7.4
    assert row["median_last100_min"] == pytest.approx(5.0)
    assert row["p90_last100_min"] == pytest.approx(7.4)
    # entries (6 deliveries with a method, 6 riders): code x3 + nfc x1, order_show x1, registration x1
    assert row["share_entry_code_or_nfc"] == pytest.approx(4 / 6)
    assert row["share_entry_order_show"] == pytest.approx(1 / 6)
    assert row["share_entry_registration"] == pytest.approx(1 / 6)
    # of 8 deliveries: rider bay 4, roadside 2, locker 2, each by fewer than K riders: times the published
    # deliveries these shares would give those counts back, so they are NULL
    assert row["share_parked_rider_bay"] is None
    assert row["share_parked_roadside"] is None
    assert row["share_locker"] is None
    assert row["elderly_meal_deliveries"] is None  # 2 riders < K
    assert row["is_friendly"] is True
    # exactly the NULLed cells, in column order
    assert row["suppressed_cells"] == (
        "cancellations,share_parked_rider_bay,share_parked_roadside,share_locker,elderly_meal_deliveries"
    )


def test_unit_access_daily_suppresses_small_unit(built):
    row = built.row(
        "select * from marts.unit_access_daily where unit_id = ? and business_date = ?",
        [built.scenario.small.unit_id, R],
    )
    assert row["deliveries"] is None  # 3 riders < K
    assert row["median_last100_min"] is None
    assert {"deliveries", "median_last100_min"} <= set(row["suppressed_cells"].split(","))


# ------------------------------------------------------------------------------ friendly_effect
def test_friendly_effect_difference_in_differences(built):
    units = seed_units().values()
    # The reporting window: the after window [a+7, a+34] ended within the 365 days up to R.
    adopted = [
        u for u in units if u.friendly_since and R - timedelta(days=365) < u.friendly_since + timedelta(days=34) <= R
    ]
    rows = {
        r[0]: r
        for r in built.query(
            "select unit_type, units_adopted, units_measured, after_window_deliveries, naive_saving_min, "
            "did_saving_min, did_saving_ci_low_min, deliveries_last_30_days, rider_hours_saved_per_month, "
            "suppressed_cells from marts.friendly_effect where reporting_date = ?",
            [R],
        )
    }
    assert set(rows) == {u.unit_type for u in units} | {"all"}
    for group in ("residential_compound", "all"):
        (_, n_adopted, n_measured, after, naive, did, ci_low, last30, hours, suppressed) = rows[group]
        expected_adopted = sum(1 for u in adopted if group == "all" or u.unit_type == group)
        assert n_adopted == expected_adopted
        assert n_measured == 1  # only the scenario's adopted unit has >= 20 deliveries per window
        # The 150-minute delivery is a delivery (counted, left out of the means); the day-3 one is in the
        # transition week.
        assert after == 21
        assert naive == pytest.approx(4.0)  # -(6 - 10)
        assert did == pytest.approx(3.0)  # (8 - 9) - (6 - 10)
        assert ci_low is None  # one unit: no standard deviation
        # the last 30 days' 3 deliveries are by fewer than K riders: NULL, and the rider-hours from them
        assert last30 is None and hours is None
        assert suppressed == "deliveries_last_30_days,rider_hours_saved_per_month"
    assert rows["hospital"][2] == 0 and rows["hospital"][5] is None


# ------------------------------------------------------------------------------ stations
def test_station_usage_daily(built):
    row = built.row("select * from marts.station_usage_daily where station_id = 'NF-0001' and event_date = ?", [R])
    assert row["visits"] == 6  # 6 check-ins; the at-least-once copy in the next file counts once
    assert row["distinct_riders"] == 6
    assert row["median_stay_min"] == pytest.approx(30.0)  # stays 10..50; rider 6 never checks out
    assert row["services_charging"] == 5
    assert row["services_water"] is None  # 1 rider
    assert row["canteen_meals"] is None and row["avg_meal_price_cents"] is None  # 2 riders
    assert row["points_redeemed"] is None  # 2 riders
    assert set(row["suppressed_cells"].split(",")) == {
        "services_water",
        "canteen_meals",
        "avg_meal_price_cents",
        "points_redeemed",
    }
    # The late check-in came in R's file but belongs to its own date, R-1.
    late = built.row(
        "select * from marts.station_usage_daily where station_id = 'NF-0002' and event_date = ?",
        [R - timedelta(days=1)],
    )
    assert late["visits"] is None and "visits" in late["suppressed_cells"].split(",")


# ------------------------------------------------------------------------------ volunteers
SMALL_VOLUNTEER_CELLS = "elderly_meal_deliveries,hazard_reports,valid_hazard_reports,emergency_assists,points_redeemed"


def test_volunteer_activity_monthly(built):
    team_street = built.query("select street_id from seeds.volunteer_teams where team_id = 'VT-01'")[0][0]
    rows = built.query(
        "select rollup_level, team_id, street_id, active_volunteers, hazard_reports, emergency_assists, "
        "points_earned, points_redeemed, points_outstanding, elderly_meal_deliveries, suppressed_cells "
        "from marts.volunteer_activity_monthly where month = date '2026-11-01' order by rollup_level desc",
    )
    assert rows == [
        # 5 members; earned 5 x 10 + 5 + 5 + 20 = 80; redeemed 8 by 2 riders (NULL); outstanding 80 - 8 = 72;
        # hazard reports (2 riders), the assist (1) and elderly meals (2 riders) are NULL.
        ("team", "VT-01", team_street, 5, None, None, 80, None, 72, None, SMALL_VOLUNTEER_CELLS),
        ("street", None, team_street, 5, None, None, 80, None, 72, None, SMALL_VOLUNTEER_CELLS),
    ]
    balances = built.query("select min(balance_after) from intermediate.int_rider_points_ledger")
    assert balances[0][0] >= 0


# ------------------------------------------------------------------------------ street coverage
def test_street_coverage_monthly(built):
    units = seed_units()
    street = built.scenario.busy.street_id
    in_street = [u for u in units.values() if u.street_id == street]
    target = [u for u in in_street if u.unit_type in ("residential_compound", "office_building")]
    row = built.row(
        "select * from marts.street_coverage_monthly where street_id = ? and month = date '2026-11-01'",
        [street],
    )
    assert row["units_total"] == len(in_street)
    friendly = [u for u in in_street if u.friendly_since and u.friendly_since <= R]
    assert row["friendly_units_total"] == len(friendly)
    assert row["target_units"] == len(target)
    assert row["target_progress"] == pytest.approx(
        sum(1 for u in target if u.friendly_since and u.friendly_since <= R) / len(target)
    )
    # November deliveries to the street's units, by the scenario's intended unit of each order.
    unit_of = {"b-": built.scenario.busy, "small-": built.scenario.small, "recent-": built.scenario.adopted}
    delivered = [
        (o, next(u for prefix, u in unit_of.items() if o.order_id.startswith(prefix)))
        for o in built.orders
        if o.status == "delivered"
        and any(o.order_id.startswith(p) for p in unit_of)
        and o.ordered.astimezone(CST).date().month == 11
    ]
    mine = [(o, u) for o, u in delivered if u.street_id == street]
    riders = {o.rider for o, _ in mine}
    if len(riders) >= 5:
        assert row["deliveries"] == len(mine)
        to_friendly = sum(1 for o, u in mine if u.friendly_since and u.friendly_since <= o.ordered.date())
        assert row["share_deliveries_to_friendly_units"] == pytest.approx(to_friendly / len(mine))
    else:
        assert row["deliveries"] is None and "deliveries" in row["suppressed_cells"].split(",")


# ------------------------------------------------------------------------------ privacy
def test_no_rider_key_in_any_mart(built):
    rider_keys = {HASHER.phone(p) for p in PHONES}
    for mart in CORE_MARTS:
        columns = built.query(
            "select column_name, data_type from information_schema.columns "
            "where table_schema = 'marts' and table_name = ?",
            [mart],
        )
        assert columns, mart
        assert not any("rider_key" in name or "phone" in name for name, _ in columns), mart
        for name, data_type in columns:
            if data_type == "VARCHAR":
                values = {v for (v,) in built.query(f'select distinct "{name}" from marts.{mart}')}
                assert not values & rider_keys, (mart, name)


# ------------------------------------------------------------------------------ incremental window
def test_staging_rebuilds_the_window_and_keeps_an_older_files_copy_of_an_event(built_copy):
    """stg_stations__events is rebuilt for files inside the reprocess window only (deleted, then parsed
    again), and an at-least-once copy of an event whose first copy came in a file before the window stays
    that first copy."""
    later = R + timedelta(days=3)  # its window, [R+1, R+3], leaves R's file out
    with duckdb.connect(str(built_copy.path)) as con:
        (first,) = con.execute("select payload::varchar from raw.station_events where record_id = 'in-2'").fetchone()
        load_station_files(
            con, {later: [json.loads(first), station_event("new-1", "NF-0001", at(later, 9), 1, "check_in")]}
        )
    # Twice: the second run deletes the window's rows and parses them again, so it changes nothing.
    for _ in range(2):
        run_dbt(built_copy.data_dir, "run", later, "--select", "stg_stations__events")
    kept = built_copy.query(
        "select event_id, file_date from staging.stg_stations__events where event_id in ('in-1', 'in-2', 'new-1')"
        " order by event_id"
    )
    # in-1's copy in R+1's file (inside the window) is a repeat of R's too (conftest.build_station_files).
    assert kept == [("in-1", R), ("in-2", R), ("new-1", later)]
    # R's file, before the window, was not rebuilt: every one of its events is still there once.
    assert built_copy.query(
        "select count(*), count(distinct event_id) from staging.stg_stations__events where file_date = ?", [R]
    ) == [(len(build_station_files()[R]), len(build_station_files()[R]))]


def test_incremental_rebuild_takes_late_corrections_inside_the_window_only(built_copy):
    corrected = {
        # D-1: a late correction the next run must pick up (inside reprocess_days).
        "late-1": dict(status="delivered", last100_min=4.0),
        # D-40: changed in raw, but outside the window, so the incremental run leaves it alone.
        "old-1": dict(status="cancelled"),
    }
    orders = [
        dataclasses.replace(o, **corrected[o.order_id]) if o.order_id in corrected else o for o in built_copy.orders
    ]
    partitions = {(o.platform, o.ordered.astimezone(CST).date()) for o in orders if o.order_id in corrected}
    with duckdb.connect(str(built_copy.path)) as con:
        reloaded = [o for o in orders if (o.platform, o.ordered.astimezone(CST).date()) in partitions]
        replace_order_partition(con, reloaded, "fetch-2")
    before = built_copy.query("select count(*) from intermediate.int_orders_matched")[0][0]
    run_dbt_build(built_copy.data_dir, R)
    assert order(built_copy, "late-1")["status"] == "delivered"
    assert order(built_copy, "late-1")["fetch_id"] == "fetch-2"
    assert order(built_copy, "old-1")["status"] == "accepted"
    assert built_copy.query("select count(*) from intermediate.int_orders_matched")[0][0] == before
    # The corrected delivery now counts on D-1, and alone (1 rider < K) it is suppressed.
    row = built_copy.row(
        "select deliveries, suppressed_cells from marts.unit_access_daily where unit_id = ? and business_date = ?",
        [built_copy.scenario.busy.unit_id, R - timedelta(days=1)],
    )
    assert row["deliveries"] is None and "deliveries" in row["suppressed_cells"].split(",")
