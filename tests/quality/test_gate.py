"""The gates pass good data, block on every critical rule with a summary naming it, never block on a
warning, and record one row per suite in audit.gate_results."""

from __future__ import annotations

import datetime as dt

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
        ["raw_meituan_orders", "raw_eleme_orders", "raw_sf_orders", "raw_shansong_orders",
         "raw_union_members", "raw_station_events", "raw_load_audit"]
    )
    assert [r[0] for r in rows if r[1] == "marts"] == [
        "rider_points_balance", "unit_access_daily", "volunteer_activity_monthly"]
    assert all(r[2] > 0 and r[3] == 0 and r[4] == 0 and r[5] for r in rows)
    assert (data_dir / "quality" / "data_docs" / "index.html").exists()
    # A retried task replaces its rows rather than doubling them.
    run_gate("raw", warehouse, DAY, RUN)
    assert len(_audit(warehouse)) == len(rows)


_D = f"business_date = '{DAY}'"

CRITICAL_RULES = [
    ("raw", "order id present",
     f"update raw.meituan_orders set payload = json_merge_patch(payload, '{{\"order_id\": null}}')"
     f" where {_D} and record_no = 3"),
    ("raw", "order id unique within the day",
     f"update raw.meituan_orders set payload = json_merge_patch(payload, '{{\"order_id\": \"dup\"}}')"
     f" where {_D} and record_no in (1, 2)"),
    ("raw", "status is one of the meituan contract codes",
     f"update raw.meituan_orders set payload = json_merge_patch(payload, '{{\"status\": 42}}')"
     f" where {_D} and record_no = 5"),
    ("raw", "destination longitude inside Xihu District",
     f"update raw.meituan_orders set payload = json_merge_patch(payload, '{{\"recipient_lng\": 116.4}}')"
     f" where {_D} and record_no = 5"),
    ("raw", "destination latitude inside Xihu District",
     f"update raw.sf_orders set payload = json_merge_patch(payload, '{{\"user_lat\": 39.9}}')"
     f" where {_D} and record_no = 5"),
    ("raw", "meituan orders present for the business date", f"delete from raw.meituan_orders where {_D}"),
    ("raw", "quarantine rate under 5% for every source",
     f"update raw.load_audit set quarantined = 10, fetched = loaded + 10 where source = 'meituan' and {_D}"),
    ("raw", "every source loaded for the business date",
     f"delete from raw.load_audit where source = 'stations' and {_D}"),
    ("raw", "fetched = loaded + quarantined", f"update raw.load_audit set fetched = 999 where {_D}"),
    ("raw", "event type is a known type",
     f"update raw.station_events set payload = json_merge_patch(payload, '{{\"type\": \"teleport\"}}')"
     f" where {_D} and record_no = 0"),
    ("raw", "data to validate exists", "drop table raw.shansong_orders"),
    ("marts", "one row per unit and business date",
     "insert into marts.unit_access_daily select * from marts.unit_access_daily"
     f" where {_D} and unit_id = 'U0001'"),
    ("marts", "every share column at most 1",
     f"update marts.unit_access_daily set share_parked_rider_bay = 1.2 where {_D} and unit_id = 'U0002'"),
    ("marts", "every share column at least 0",
     f"update marts.unit_access_daily set share_entry_code_or_nfc = -0.1 where {_D} and unit_id = 'U0002'"),
    ("marts", "last-100-metre minutes at most 120",
     f"update marts.unit_access_daily set p90_last100_min = 130 where {_D} and unit_id = 'U0003'"),
    ("marts", "deliveries never negative",
     f"update marts.unit_access_daily set deliveries = -1 where {_D} and unit_id = 'U0003'"),
    ("marts", "a row flagged suppressed has at least one NULL cell",
     f"update marts.unit_access_daily set deliveries = 1, share_entry_code_or_nfc = 0.5, share_parked_rider_bay = 0.5,"
     f" median_last100_min = 4, p90_last100_min = 5 where {_D} and suppressed"),
    ("marts", "a published delivery count stands on at least K distinct riders",
     f"delete from intermediate.int_orders_matched where {_D} and unit_id = 'U0002' and rider_key <> 'rider-1'"),
    ("marts", "points outstanding never negative",
     "update marts.volunteer_activity_monthly set points_outstanding = -3 where team_id = 'VT-04'"),
    ("marts", "no rider redeemed more points than earned",
     f"update raw.station_events set payload = json_merge_patch(payload, '{{\"points\": 500}}')"
     f" where {_D} and payload->>'type' = 'points_redeem' and record_no = 3"),
]


@pytest.mark.parametrize(("stage", "rule", "breakage"), CRITICAL_RULES, ids=[r[1] for r in CRITICAL_RULES])
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
    assert "1 of 20 rows unexpected, e.g. status=99 order_id=20261128-0007" in summary


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
