"""The data_drift suite turns dbt's drift flags (int_drift_measures_daily) into warnings of the marts gate:
a flagged measure is recorded and named with its reason, it never blocks, and an ordinary day warns of
nothing. Whether a day is flagged is dbt's decision, tested on built data in tests/dbt."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import duckdb
import pytest
import yaml

from expectations.gate import run_gate
from tests.quality.conftest import DAY, DRIFT_MEASURES

RUN = "manual__2026-11-29T01:30:00"
ROOT = Path(__file__).resolve().parents[2]


def _flag(warehouse, source: str, measure: str, value: float, reason: str, day: dt.date = DAY) -> None:
    with duckdb.connect(str(warehouse)) as con:
        con.execute(
            "update intermediate.int_drift_measures_daily set observed_value = ?, is_flagged = true,"
            " flag_reason = ? where business_date = ? and source = ? and measure = ?",
            [value, reason, day, source, measure],
        )


def _drift_suite(result):
    [drift] = [s for s in result.suites if s.suite == "data_drift"]
    return drift


def test_an_ordinary_day_warns_of_nothing(warehouse):
    drift = _drift_suite(run_gate("marts", warehouse, DAY, RUN))
    # One expectation per measure, and one that the measures are there at all.
    assert drift.evaluated == len(DRIFT_MEASURES) + 1
    assert drift.failures == ()


@pytest.mark.parametrize(
    ("source", "measure", "value", "reason", "rule"),
    [
        (
            "meituan",
            "aoi_match_rate",
            0.41,
            "meituan aoi_match_rate 0.410 outside [0.650, 0.950] (trailing 7-day median 0.800)",
            "AOI match rate of every platform within tolerance of its trailing 7-day median",
        ),
        (
            "sf",
            "gate_time_missing_rate",
            0.5,
            "sf gate_time_missing_rate 0.500 outside [0.000, 0.130] (trailing 7-day median 0.030)",
            "share of deliveries to units without a gate time within tolerance of its trailing 7-day median",
        ),
        (
            "stations",
            "unknown_station_records",
            3,
            "stations: 3 events at station ids the stations seed does not know (NF-9999)",
            "every station id of the day's station log is in the stations seed",
        ),
    ],
    ids=["aoi match rate halved", "sf gate times missing", "unknown station id"],
)
def test_a_flagged_measure_warns_with_its_reason_and_never_blocks(warehouse, source, measure, value, reason, rule):
    _flag(warehouse, source, measure, value, reason)
    result = run_gate("marts", warehouse, DAY, RUN)
    assert result.success
    drift = _drift_suite(result)
    assert (drift.failed_critical, drift.failed_warning) == (0, 1)
    warnings = result.summary.split(" Warnings: ", 1)[1]
    assert f"data_drift: {rule} [warning" in warnings
    assert f"flag_reason={reason}" in warnings


def test_a_day_without_measures_warns(warehouse):
    with duckdb.connect(str(warehouse)) as con:
        con.execute("delete from intermediate.int_drift_measures_daily where business_date = ?", [DAY])
    result = run_gate("marts", warehouse, DAY, RUN)
    assert result.success
    assert "data_drift: drift measures present for the business date [warning" in result.summary
    assert [f.severity for f in _drift_suite(result).failures] == ["warning"]


def test_a_flag_of_another_day_is_not_this_days_warning(warehouse):
    _flag(warehouse, "meituan", "aoi_match_rate", 0.41, "three days ago", day=DAY - dt.timedelta(days=3))
    assert _drift_suite(run_gate("marts", warehouse, DAY, RUN)).failures == ()


def test_the_suite_has_one_warning_per_measure_of_the_model():
    """A measure dbt adds (its accepted_values in the model's YAML) gets its warning, and only a warning."""
    models = yaml.safe_load((ROOT / "dbt_project/models/intermediate/_intermediate__models.yml").read_text())
    [model] = [m for m in models["models"] if m["name"] == "int_drift_measures_daily"]
    [column] = [c for c in model["columns"] if c["name"] == "measure"]
    [values] = [
        t["accepted_values"]["arguments"]["values"]
        for t in column["data_tests"]
        if isinstance(t, dict) and "accepted_values" in t
    ]
    suite = json.loads((ROOT / "expectations/gx/expectations/data_drift.json").read_text())
    conditions = [
        e["kwargs"]["row_condition"]["parameter"] for e in suite["expectations"] if "row_condition" in e["kwargs"]
    ]
    assert conditions == values
    assert {e["severity"] for e in suite["expectations"]} == {"warning"}
    assert [m for m, _, _ in DRIFT_MEASURES] == values
