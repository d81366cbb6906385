"""The gates pass good data, block on every critical rule with a summary naming it, never block on a
warning, and record one row per suite in audit.gate_results."""

from __future__ import annotations

import datetime as dt
import logging

import duckdb
import pytest

from expectations.gate import GateFailed, run_gate

DAY = dt.date(2026, 11, 28)  # the fixture warehouse's business date
RUN = "manual__2026-11-29T01:30:00"


def _sql(warehouse, *statements):
    con = duckdb.connect(str(warehouse))
    for statement in statements:
        con.execute(statement)
    con.close()


def _audit(warehouse):
    con = duckdb.connect(str(warehouse), read_only=True)
    rows = con.execute(
        "select suite, stage, evaluated, failed_critical, failed_warning, success from audit.gate_results"
        " order by stage, suite"
    ).fetchall()
    con.close()
    return rows


def test_good_data_passes_both_gates_and_records_every_suite(warehouse, data_dir):
    raw = run_gate("raw", warehouse, DAY, RUN)
    marts = run_gate("marts", warehouse, str(DAY), RUN)
    assert raw.success and marts.success
    assert "passed" in raw.summary and "0 critical and 0 warning" in raw.summary
    rows = _audit(warehouse)
    assert [r[0] for r in rows if r[1] == "raw"] == sorted(
        [
            "raw_meituan_orders",
            "raw_eleme_orders",
            "raw_sf_orders",
            "raw_shansong_orders",
            "raw_union_members",
            "raw_station_events",
            "raw_load_audit",
        ]
    )
    assert [r[0] for r in rows if r[1] == "marts"] == [
        "data_drift",
        "district_daily_kpis",
        "friendly_effect",
        "friendly_event_study",
        "pipeline_runs",
        "rider_points_balance",
        "service_circle_daily",
        "station_usage_daily",
        "street_coverage_monthly",
        "union_coverage_monthly",
        "unit_access_daily",
        "volunteer_activity_monthly",
    ]
    assert all(r[2] > 0 and r[3] == 0 and r[4] == 0 and r[5] for r in rows)
    assert (data_dir / "quality" / "data_docs" / "index.html").exists()
    # A retried task replaces its rows rather than doubling them.
    run_gate("raw", warehouse, DAY, RUN)
    assert len(_audit(warehouse)) == len(rows)


_D = f"business_date = '{DAY}'"


def _publish_every_cell(table: str, cells: dict[str, object], where: str) -> str:
    """SQL that fills every k-anonymised cell of the rows ``where`` picks, while ``suppressed_cells`` still
    names them."""
    assignments = ", ".join(f"{c} = {v}" for c, v in cells.items())
    return f"update marts.{table} set {assignments} where {where}"


CRITICAL_RULES = [
    (
        "raw",
        "order id present",
        f"update raw.meituan_orders set payload = json_merge_patch(payload, '{{\"order_id\": null}}')"
        f" where {_D} and record_no = 3",
    ),
    (
        "raw",
        "order id unique within the day",
        f'update raw.meituan_orders set payload = json_merge_patch(payload, \'{{"order_id": "dup"}}\')'
        f" where {_D} and record_no in (1, 2)",
    ),
    (
        "raw",
        "status is one of the meituan contract codes",
        f"update raw.meituan_orders set payload = json_merge_patch(payload, '{{\"status\": 42}}')"
        f" where {_D} and record_no = 5",
    ),
    (
        "raw",
        "destination longitude inside Xihu District",
        f"update raw.meituan_orders set payload = json_merge_patch(payload, '{{\"recipient_lng\": 116.4}}')"
        f" where {_D} and record_no = 5",
    ),
    (
        "raw",
        "destination latitude inside Xihu District",
        f"update raw.sf_orders set payload = json_merge_patch(payload, '{{\"user_lat\": 39.9}}')"
        f" where {_D} and record_no = 5",
    ),
    ("raw", "meituan orders present for the business date", f"delete from raw.meituan_orders where {_D}"),
    (
        "raw",
        "quarantine rate under 5% for every source",
        f"update raw.load_audit set quarantined = 10, fetched = loaded + 10 where source = 'meituan' and {_D}",
    ),
    (
        "raw",
        "every source loaded for the business date",
        f"delete from raw.load_audit where source = 'stations' and {_D}",
    ),
    (
        "raw",
        "fetched = loaded + duplicates_removed + quarantined",
        f"update raw.load_audit set fetched = 999 where {_D}",
    ),
    (
        "raw",
        "event type is a known type",
        f'update raw.station_events set payload = json_merge_patch(payload, \'{{"type": "teleport"}}\')'
        f" where {_D} and record_no = 0",
    ),
    ("raw", "data to validate exists", "drop table raw.shansong_orders"),
    (
        "marts",
        "one row per unit and business date",
        f"insert into marts.unit_access_daily select * from marts.unit_access_daily where {_D} and unit_id = 'U0001'",
    ),
    (
        "marts",
        "every share column at most 1",
        f"update marts.unit_access_daily set share_parked_rider_bay = 1.2 where {_D} and unit_id = 'U0002'",
    ),
    (
        "marts",
        "every share column at least 0",
        f"update marts.unit_access_daily set share_entry_code_or_nfc = -0.1 where {_D} and unit_id = 'U0002'",
    ),
    (
        "marts",
        "last-100-metre minutes at most 120",
        f"update marts.unit_access_daily set p90_last100_min = 130 where {_D} and unit_id = 'U0003'",
    ),
    (
        "marts",
        "deliveries never negative",
        f"update marts.unit_access_daily set deliveries = -1 where {_D} and unit_id = 'U0003'",
    ),
    (
        "marts",
        "every cell named in suppressed_cells is NULL",
        _publish_every_cell(
            "unit_access_daily",
            {
                "deliveries": 1,
                "cancellations": 0,
                "elderly_meal_deliveries": 0,
                "median_last100_min": 4,
                "p90_last100_min": 5,
                **{
                    f"share_{c}": 0.5
                    for c in (
                        "entry_code_or_nfc",
                        "entry_order_show",
                        "entry_registration",
                        "parked_rider_bay",
                        "parked_roadside",
                        "locker",
                    )
                },
            },
            f"{_D} and suppressed_cells <> ''",
        ),
    ),
    (
        "marts",
        "a published delivery count stands on at least K distinct riders",
        f"delete from intermediate.int_orders_matched where {_D} and unit_id = 'U0002' and rider_key <> 'rider-1'",
    ),
    (
        "marts",
        "points outstanding never negative",
        "update marts.volunteer_activity_monthly set points_outstanding = -3 where team_id = 'VT-04'",
    ),
    (
        "marts",
        "no redemption beyond a rider's balance (opening balance counted) on the business date or D-1",
        "update intermediate.int_rider_points_ledger set is_violation = true, shortfall_points = 5"
        f" where event_date = '{DAY}' and movement = 'redeem' and station_id = 'NF-0004'",
    ),
]


_STATION_CELLS = {
    c: 6
    for c in [
        "visits",
        "distinct_riders",
        "services_charging",
        "services_water",
        "services_microwave",
        "services_rest",
        "services_restroom",
        "services_first_aid",
        "services_haircut",
        "services_bike_repair",
        "canteen_meals",
        "points_redeemed",
        "median_stay_min",
        "avg_meal_price_cents",
    ]
}
_S = f"event_date = '{DAY}'"
_MONTH = "month = '2026-11-01'"

# The mart suites: (stage, "suite: rule" as the summary prints it, breakage).
MART_RULES = [
    (
        "marts",
        "unit_access_daily: every documented column published (dbt docs)",
        "alter table marts.unit_access_daily drop column cancellations",
    ),
    (
        "marts",
        "unit_access_daily: unit id is a unit of the units seed",
        f"update marts.unit_access_daily set unit_id = 'U9999' where {_D} and unit_id = 'U0004'",
    ),
    (
        "marts",
        "volunteer_activity_monthly: every team id is a team of the volunteer_teams seed",
        "update marts.volunteer_activity_monthly set team_id = 'VT-99' where team_id = 'VT-03'",
    ),
    # friendly_effect
    (
        "marts",
        "friendly_effect: friendly-effect rows present for the reporting date (freshness)",
        "delete from marts.friendly_effect",
    ),
    (
        "marts",
        "friendly_effect: data to validate exists",
        "alter table marts.friendly_effect drop column did_saving_ci_high_min",
    ),
    (
        "marts",
        "friendly_effect: unit type present",
        "update marts.friendly_effect set unit_type = null where unit_type = 'hospital'",
    ),
    (
        "marts",
        "friendly_effect: one row per reporting date and unit type",
        "insert into marts.friendly_effect select * from marts.friendly_effect where unit_type = 'hospital'",
    ),
    (
        "marts",
        "friendly_effect: unit type is a unit type of the units seed or 'all'",
        "update marts.friendly_effect set unit_type = 'spaceport' where unit_type = 'hospital'",
    ),
    (
        "marts",
        "friendly_effect: the all-types row is present",
        "delete from marts.friendly_effect where unit_type = 'all'",
    ),
    (
        "marts",
        "friendly_effect: unit and delivery counts never negative",
        "update marts.friendly_effect set deliveries_last_30_days = -1 where unit_type = 'hospital'",
    ),
    (
        "marts",
        "friendly_effect: units measured never exceed units adopted",
        "update marts.friendly_effect set units_measured = 9 where unit_type = 'hospital'",
    ),
    (
        "marts",
        "friendly_effect: naive saving within +/-120 minutes",
        "update marts.friendly_effect set naive_saving_min = 150 where unit_type = 'hospital'",
    ),
    (
        "marts",
        "friendly_effect: DiD saving within +/-240 minutes",
        "update marts.friendly_effect set did_saving_min = -300 where unit_type = 'hospital'",
    ),
    (
        "marts",
        "friendly_effect: the 95% interval holds the DiD estimate",
        "update marts.friendly_effect set did_saving_ci_low_min = 2.0 where unit_type = 'hospital'",
    ),
    (
        "marts",
        "friendly_effect: every cell named in suppressed_cells is NULL",
        _publish_every_cell(
            "friendly_effect",
            {
                "after_window_deliveries": 40,
                "naive_saving_min": 1,
                "did_saving_min": 1,
                "did_saving_ci_low_min": 0,
                "did_saving_ci_high_min": 2,
                "deliveries_last_30_days": 40,
                "rider_hours_saved_per_month": 1,
            },
            "suppressed_cells <> ''",
        ),
    ),
    # friendly_event_study
    (
        "marts",
        "friendly_event_study: event-study rows present for the as-of date (freshness)",
        "delete from marts.friendly_event_study",
    ),
    (
        "marts",
        "friendly_event_study: every documented column published (dbt docs)",
        "alter table marts.friendly_event_study drop column status",
    ),
    (
        "marts",
        "friendly_event_study: data to validate exists",
        "alter table marts.friendly_event_study drop column control_mean_last100_min",
    ),
    (
        "marts",
        "friendly_event_study: unit type present",
        "update marts.friendly_event_study set unit_type = null where unit_type = 'hospital'",
    ),
    (
        "marts",
        "friendly_event_study: one row per as-of date, unit type and relative day",
        "insert into marts.friendly_event_study select * from marts.friendly_event_study"
        " where unit_type = 'hospital' and rel_day = 3",
    ),
    (
        "marts",
        "friendly_event_study: unit type is a unit type of the units seed or 'all'",
        "update marts.friendly_event_study set unit_type = 'spaceport' where unit_type = 'hospital'",
    ),
    (
        "marts",
        "friendly_event_study: every unit type and 'all' has the 63 relative days -28..34",
        "delete from marts.friendly_event_study where unit_type = 'all' and rel_day = 34",
    ),
    (
        "marts",
        "friendly_event_study: status is final, provisional or partial",
        "update marts.friendly_event_study set status = 'maybe' where rel_day = 0",
    ),
    (
        "marts",
        "friendly_event_study: unit, delivery and rider counts never negative",
        "update marts.friendly_event_study set control_riders = -1 where unit_type = 'hospital' and rel_day = 0",
    ),
    (
        "marts",
        "friendly_event_study: riders never exceed deliveries",
        "update marts.friendly_event_study set adopted_riders = 31 where unit_type = 'hospital' and rel_day = 0",
    ),
    (
        "marts",
        "friendly_event_study: adopted units are friendly_effect's measured units",
        "update marts.friendly_event_study set adopted_units = 2 where unit_type = 'hospital'",
    ),
    (
        "marts",
        "friendly_event_study: means are plausible last-100 minutes (0 < x <= 120)",
        "update marts.friendly_event_study set control_mean_last100_min = 150 where rel_day = 5",
    ),
    (
        "marts",
        "friendly_event_study: every cell named in suppressed_cells is NULL",
        _publish_every_cell(
            "friendly_event_study",
            {"adopted_deliveries": 30, "adopted_riders": 25, "adopted_mean_last100_min": 9.0},
            "suppressed_cells <> ''",
        ),
    ),
    # street_coverage_monthly
    (
        "marts",
        "street_coverage_monthly: street rows present for the business month (freshness)",
        f"delete from marts.street_coverage_monthly where {_MONTH}",
    ),
    (
        "marts",
        "street_coverage_monthly: street id present",
        "update marts.street_coverage_monthly set street_id = null where street_id = 'S02'",
    ),
    (
        "marts",
        "street_coverage_monthly: one row per month and street",
        "insert into marts.street_coverage_monthly select * from marts.street_coverage_monthly where street_id = 'S02'",
    ),
    (
        "marts",
        "street_coverage_monthly: street id is a street of the streets seed",
        "update marts.street_coverage_monthly set street_id = 'S99' where street_id = 'S03'",
    ),
    (
        "marts",
        "street_coverage_monthly: every share and progress at least 0",
        "update marts.street_coverage_monthly set friendly_unit_share = -0.1 where street_id = 'S02'",
    ),
    (
        "marts",
        "street_coverage_monthly: every share and progress at most 1",
        "update marts.street_coverage_monthly set target_progress = 1.5 where street_id = 'S02'",
    ),
    (
        "marts",
        "street_coverage_monthly: unit and delivery counts never negative",
        "update marts.street_coverage_monthly set deliveries = -5 where street_id = 'S02'",
    ),
    (
        "marts",
        "street_coverage_monthly: friendly units never exceed units, and types add up to the total",
        "update marts.street_coverage_monthly set friendly_units_hospital = units_hospital + 1 where street_id = 'S02'",
    ),
    (
        "marts",
        "street_coverage_monthly: every cell named in suppressed_cells is NULL",
        _publish_every_cell(
            "street_coverage_monthly",
            {"deliveries": 9, "share_deliveries_to_friendly_units": 0.5},
            "suppressed_cells <> ''",
        ),
    ),
    # station_usage_daily
    (
        "marts",
        "station_usage_daily: station rows present for the business date (freshness)",
        f"delete from marts.station_usage_daily where {_S}",
    ),
    (
        "marts",
        "station_usage_daily: station id present",
        f"update marts.station_usage_daily set station_id = null where {_S} and station_id = 'NF-0002'",
    ),
    (
        "marts",
        "station_usage_daily: one row per station and date",
        f"insert into marts.station_usage_daily select * from marts.station_usage_daily"
        f" where {_S} and station_id = 'NF-0002'",
    ),
    (
        "marts",
        "station_usage_daily: station id is a station of the stations seed",
        f"update marts.station_usage_daily set station_id = 'NF-9999' where {_S} and station_id = 'NF-0003'",
    ),
    ("marts", "station_usage_daily: data to validate exists", "drop table seeds.stations"),
    (
        "marts",
        "station_usage_daily: visits, riders, services, meals and points never negative",
        f"update marts.station_usage_daily set services_water = -1 where {_S} and station_id = 'NF-0003'",
    ),
    (
        "marts",
        "station_usage_daily: median stay between 0 and 360 minutes",
        f"update marts.station_usage_daily set median_stay_min = 400 where {_S} and station_id = 'NF-0003'",
    ),
    (
        "marts",
        "station_usage_daily: average meal price never negative",
        f"update marts.station_usage_daily set avg_meal_price_cents = -1 where {_S} and station_id = 'NF-0003'",
    ),
    (
        "marts",
        "station_usage_daily: every cell named in suppressed_cells is NULL",
        _publish_every_cell("station_usage_daily", _STATION_CELLS, f"{_S} and suppressed_cells <> ''"),
    ),
    # service_circle_daily
    (
        "marts",
        "service_circle_daily: service-circle rows present for the business date (freshness)",
        f"delete from marts.service_circle_daily where {_D}",
    ),
    (
        "marts",
        "service_circle_daily: street id present",
        f"update marts.service_circle_daily set street_id = null where {_D} and street_id = 'S02'",
    ),
    (
        "marts",
        "service_circle_daily: one row per date and street",
        f"insert into marts.service_circle_daily select * from marts.service_circle_daily"
        f" where {_D} and street_id = 'S02'",
    ),
    (
        "marts",
        "service_circle_daily: street id is a street of the streets seed or 'unmatched'",
        f"update marts.service_circle_daily set street_id = 'S99' where {_D} and street_id = 'S03'",
    ),
    (
        "marts",
        "service_circle_daily: every service-circle share at least 0",
        f"update marts.service_circle_daily set share_within_reach = -0.2 where {_D} and street_id = 'S03'",
    ),
    (
        "marts",
        "service_circle_daily: every service-circle share at most 1",
        f"update marts.service_circle_daily set share_riders_visited_30d = 1.3 where {_D} and street_id = 'S03'",
    ),
    (
        "marts",
        "service_circle_daily: delivery and rider counts never negative",
        f"update marts.service_circle_daily set active_riders = -1 where {_D} and street_id = 'S03'",
    ),
    (
        "marts",
        "service_circle_daily: deliveries within reach and riders visited never exceed their totals",
        f"update marts.service_circle_daily set deliveries_within_reach = 60 where {_D} and street_id = 'S03'",
    ),
    (
        "marts",
        "service_circle_daily: every cell named in suppressed_cells is NULL",
        _publish_every_cell(
            "service_circle_daily",
            {
                "deliveries": 9,
                "deliveries_within_reach": 5,
                "share_within_reach": 0.5,
                "active_riders": 5,
                "riders_visited_30d": 1,
                "share_riders_visited_30d": 0.2,
            },
            f"{_D} and suppressed_cells <> ''",
        ),
    ),
    # union_coverage_monthly
    (
        "marts",
        "union_coverage_monthly: union coverage rows present for the business month (freshness)",
        f"delete from marts.union_coverage_monthly where {_MONTH}",
    ),
    (
        "marts",
        "union_coverage_monthly: every documented column published (dbt docs)",
        "alter table marts.union_coverage_monthly drop column union_org_name",
    ),
    (
        "marts",
        "union_coverage_monthly: one row per month, platform, occupation, street basis, street, org"
        " level and organisation",
        "insert into marts.union_coverage_monthly select * from marts.union_coverage_monthly"
        " where org_level = 'district'",
    ),
    (
        "marts",
        "union_coverage_monthly: platform present",
        "update marts.union_coverage_monthly set platform = null where platform = 'eleme'",
    ),
    (
        "marts",
        "union_coverage_monthly: org level is a known level",
        "update marts.union_coverage_monthly set org_level = 'city' where org_level = 'union'",
    ),
    (
        "marts",
        "union_coverage_monthly: platform is a known platform or 'all'",
        "update marts.union_coverage_monthly set platform = 'ele.me' where platform = 'eleme'",
    ),
    (
        "marts",
        "union_coverage_monthly: the district row is present",
        "delete from marts.union_coverage_monthly where org_level = 'district'",
    ),
    (
        "marts",
        "union_coverage_monthly: coverage rate between 0 and 1",
        "update marts.union_coverage_monthly set coverage_rate = 1.2 where platform = 'meituan' and org_level = 'all'",
    ),
    (
        "marts",
        "union_coverage_monthly: rider and member counts never negative",
        "update marts.union_coverage_monthly set new_members = -1 where platform = 'eleme'",
    ),
    (
        "marts",
        "union_coverage_monthly: riders in good standing never exceed active riders",
        "update marts.union_coverage_monthly set active_riders_in_good_standing = 30"
        " where platform = 'meituan' and org_level = 'all'",
    ),
    (
        "marts",
        "union_coverage_monthly: every cell named in suppressed_cells is NULL",
        _publish_every_cell(
            "union_coverage_monthly",
            {
                "active_riders": 3,
                "active_riders_in_good_standing": 1,
                "coverage_rate": 0.33,
                "members_in_good_standing": 3,
                "new_members": 0,
                "withdrawals": 0,
                "expulsions": 0,
            },
            "suppressed_cells <> ''",
        ),
    ),
    # district_daily_kpis
    (
        "marts",
        "district_daily_kpis: exactly one district row for the business date (freshness and key)",
        f"delete from marts.district_daily_kpis where {_D}",
    ),
    (
        "marts",
        "district_daily_kpis: exactly one district row for the business date (freshness and key)",
        f"insert into marts.district_daily_kpis select * from marts.district_daily_kpis where {_D}",
    ),
    (
        "marts",
        "district_daily_kpis: every documented column published (dbt docs)",
        "alter table marts.district_daily_kpis drop column union_coverage_month",
    ),
    (
        "marts",
        "district_daily_kpis: every district share at least 0",
        f"update marts.district_daily_kpis set share_to_friendly_units = -0.1 where {_D}",
    ),
    (
        "marts",
        "district_daily_kpis: every district share at most 1",
        f"update marts.district_daily_kpis set union_coverage_rate = 1.1 where {_D}",
    ),
    (
        "marts",
        "district_daily_kpis: district last-100-metre medians at least 0",
        f"update marts.district_daily_kpis set median_last100_min_friendly = -1 where {_D}",
    ),
    (
        "marts",
        "district_daily_kpis: district last-100-metre medians at most 120",
        f"update marts.district_daily_kpis set median_last100_min_non_friendly = 130 where {_D}",
    ),
    (
        "marts",
        "district_daily_kpis: district counts never negative",
        f"update marts.district_daily_kpis set unit_deliveries_last100_out_of_range = -1 where {_D}",
    ),
    (
        "marts",
        "district_daily_kpis: fetched = loaded + duplicates_removed + quarantined for every source",
        f"update marts.district_daily_kpis set sf_fetched = sf_fetched + 5 where {_D}",
    ),
    (
        "marts",
        "district_daily_kpis: district deliveries at least the units' published deliveries",
        f"update marts.district_daily_kpis set deliveries = 10 where {_D}",
    ),
    (
        "marts",
        "district_daily_kpis: district station visits at least the stations' published visits",
        f"update marts.district_daily_kpis set station_visits = 5 where {_D}",
    ),
    (
        "marts",
        "district_daily_kpis: every cell named in suppressed_cells is NULL",
        f"update marts.district_daily_kpis set suppressed_cells = 'deliveries' where {_D}",
    ),
    # pipeline_runs
    (
        "marts",
        "pipeline_runs: pipeline-run rows present for the business date (freshness)",
        f"delete from marts.pipeline_runs where {_D}",
    ),
    (
        "marts",
        "pipeline_runs: every documented column published (dbt docs)",
        "alter table marts.pipeline_runs drop column published_version",
    ),
    ("marts", "pipeline_runs: run-date key present", f"update marts.pipeline_runs set run_date_id = null where {_D}"),
    (
        "marts",
        "pipeline_runs: one row per run and business date",
        f"insert into marts.pipeline_runs select * from marts.pipeline_runs where {_D}",
    ),
    ("marts", "pipeline_runs: run id present", f"update marts.pipeline_runs set run_id = null where {_D}"),
    (
        "marts",
        "pipeline_runs: publication status is known",
        f"update marts.pipeline_runs set publication_status = 'maybe' where {_D}",
    ),
    (
        "marts",
        "pipeline_runs: run totals: fetched = loaded + duplicates_removed + quarantined",
        f"update marts.pipeline_runs set total_fetched = total_fetched + 1 where {_D}",
    ),
]


@pytest.mark.parametrize(
    ("stage", "rule", "breakage"), CRITICAL_RULES + MART_RULES, ids=[r[1] for r in CRITICAL_RULES + MART_RULES]
)
def test_each_critical_rule_blocks_with_a_summary_naming_it(warehouse, stage, rule, breakage):
    _sql(warehouse, breakage)
    with pytest.raises(GateFailed) as failed:
        run_gate(stage, warehouse, DAY, RUN)
    result = failed.value.result
    assert not result.success
    assert "BLOCKED" in str(failed.value)
    critical = result.summary.split(" Critical: ", 1)[1]
    assert rule in critical
    failed_rows = [r for r in _audit(warehouse) if not r[5]]
    assert failed_rows and all(r[3] >= 1 for r in failed_rows)


def test_summary_names_the_failing_rows(warehouse):
    _sql(
        warehouse,
        f"update raw.load_audit set quarantined = 10, fetched = loaded + 10 where source = 'eleme' and {_D}",
        f"update raw.sf_orders set payload = json_merge_patch(payload, '{{\"order_status\": 99}}')"
        f" where {_D} and record_no = 7",
    )
    summary = run_gate("raw", warehouse, DAY, RUN, raise_on_failure=False).summary
    assert "quarantine rate under 5% for every source" in summary and "source=eleme" in summary
    # staging reads no code outside the contract: the status it parsed is NULL, the row named by its order id
    assert "1 of 20 rows unexpected, e.g. status=None order_id=20261128-0007" in summary


def test_removed_duplicates_are_not_quarantine(warehouse):
    """A day the platform sent twice over (sources.md: duplicates are removed once) breaks no contract:
    the quarantine rate is of quarantined records only, and the counts balance with the removed copies."""
    _sql(
        warehouse,
        "update raw.load_audit set duplicates_removed = loaded, fetched = 2 * loaded + quarantined"
        f" where source = 'meituan' and {_D}",
    )
    result = run_gate("raw", warehouse, DAY, RUN, raise_on_failure=False)
    assert result.success, result.summary
    # Counting them as quarantine would not balance: fetched = loaded + quarantined fails.
    _sql(warehouse, f"update raw.load_audit set duplicates_removed = 0 where source = 'meituan' and {_D}")
    summary = run_gate("raw", warehouse, DAY, RUN, raise_on_failure=False).summary
    assert "fetched = loaded + duplicates_removed + quarantined" in summary and "source=meituan" in summary


def test_a_warning_is_recorded_but_does_not_block(warehouse):
    # Triple today's meituan rows: far above double the trailing 7-day median, every row still valid.
    _sql(
        warehouse,
        f"insert into raw.meituan_orders select record_id || '-' || n, business_date,"
        f" json_merge_patch(payload, json_object('order_id', record_id || '-' || n)), fetch_id, page_file,"
        f" record_no, loaded_at from raw.meituan_orders, range(2) r(n) where {_D}",
    )
    result = run_gate("raw", warehouse, DAY, RUN)
    assert result.success
    meituan = next(s for s in result.suites if s.suite == "raw_meituan_orders")
    assert (meituan.failed_critical, meituan.failed_warning) == (0, 1)
    assert "Warnings: raw_meituan_orders: meituan orders count within half and double" in result.summary
    assert "observed 120" in result.summary
    assert ("raw_meituan_orders", "raw", meituan.evaluated, 0, 1, True) in _audit(warehouse)


def test_a_failure_can_be_inspected_without_raising(warehouse):
    _sql(warehouse, "update marts.volunteer_activity_monthly set points_outstanding = -1")
    result = run_gate("marts", warehouse, DAY, RUN, raise_on_failure=False)
    assert not result.success
    assert [s.suite for s in result.suites if not s.success] == ["volunteer_activity_monthly"]


def test_first_day_without_history_has_open_row_count_bounds(warehouse):
    first_day = DAY - dt.timedelta(days=7)
    result = run_gate("raw", warehouse, first_day, RUN)
    assert result.success and "0 warning" in result.summary


def test_unknown_stage_is_refused(warehouse):
    with pytest.raises(ValueError):
        run_gate("staging", warehouse, DAY, RUN)


def test_every_run_logs_one_summary_paragraph(warehouse, caplog):
    """The DAG task's log shows the verdict without Data Docs: INFO on success, ERROR (and the same text
    as GateFailed's message) when blocked."""
    caplog.set_level(logging.INFO, logger="expectations.gate")
    passed = run_gate("marts", warehouse, DAY, RUN)
    [record] = [r for r in caplog.records if r.name == "expectations.gate"]
    assert record.levelno == logging.INFO
    assert record.getMessage().startswith(passed.summary) and "\n" not in record.getMessage()
    assert "passed: 12 suites" in record.getMessage() and "data_docs/index.html" in record.getMessage()

    caplog.clear()
    _sql(warehouse, "update marts.friendly_effect set units_measured = 9 where unit_type = 'hospital'")
    with pytest.raises(GateFailed) as failed:
        run_gate("marts", warehouse, DAY, RUN)
    [record] = [r for r in caplog.records if r.name == "expectations.gate"]
    assert record.levelno == logging.ERROR
    assert record.getMessage().startswith(str(failed.value))
    assert "BLOCKED" in record.getMessage()
    assert "units measured never exceed units adopted" in str(failed.value)


def test_a_row_suppressed_for_one_cell_only_passes(warehouse):
    """The K rule may null a single cell (one rider cancelled): suppressed_cells names it and everything
    else is published. That is the rule working, not a privacy failure."""
    _sql(
        warehouse,
        _publish_every_cell(
            "unit_access_daily",
            {
                "deliveries": 19,
                "elderly_meal_deliveries": 0,
                "median_last100_min": 4,
                "p90_last100_min": 5,
                **{
                    f"share_{c}": 0.5
                    for c in (
                        "entry_code_or_nfc",
                        "entry_order_show",
                        "entry_registration",
                        "parked_rider_bay",
                        "parked_roadside",
                        "locker",
                    )
                },
                "suppressed_cells": "'cancellations'",
            },
            f"{_D} and suppressed_cells <> ''",
        ),
    )
    assert run_gate("marts", warehouse, DAY, RUN).success


def test_an_unknown_occupation_warns_but_does_not_block(warehouse):
    _sql(warehouse, "update marts.union_coverage_monthly set occupation = 'drone_pilot' where platform = 'didi'")
    result = run_gate("marts", warehouse, DAY, RUN)
    assert result.success
    assert "Warnings: union_coverage_monthly: occupation is a known occupation" in result.summary
    assert "platform=didi" in result.summary
