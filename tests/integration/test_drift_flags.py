"""The drift tolerances against the real sandbox: sixteen ordinary days (weekends +15% included) flag
nothing, and a day served with `schema_drift=0.5` is flagged for the reasons the fault causes.

A fixture of its own, not the 76-day district: 17 days at scale 0.02 fetch, load and build in ~25 s.
"""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from ingest.load import load_many
from sandbox.server import start_sandbox
from tests.integration.conftest import SCALE, SEED, SETTLED_CLOCK, SOURCES, Warehouse, fetch_landing
from tests.warehouse_helpers import run_dbt

DRIFT_DAY = date(2026, 11, 28)  # a Saturday
ORDINARY = [DRIFT_DAY - timedelta(days=n) for n in range(16, 0, -1)]


@pytest.fixture(scope="module")
def drifted(tmp_path_factory) -> Warehouse:
    data_dir = tmp_path_factory.mktemp("drift")
    ordinary_jobs = [(s, d) for d in ORDINARY for s in SOURCES]
    drift_jobs = [(s, DRIFT_DAY) for s in SOURCES]
    with start_sandbox(SEED, SCALE, now=SETTLED_CLOCK) as sandbox:
        folders = fetch_landing(sandbox, ordinary_jobs, data_dir / "landing", "ordinary")
        sandbox.set_faults({"schema_drift": 0.5})
        folders.update(fetch_landing(sandbox, drift_jobs, data_dir / "landing", "drift"))
    (data_dir / "warehouse").mkdir()
    load_many(str(data_dir / "warehouse" / "xihu.duckdb"), [folders[job] for job in ordinary_jobs + drift_jobs])
    run_dbt(data_dir, "build", DRIFT_DAY, "--select", "+pipeline_runs", "--indirect-selection", "cautious")
    return Warehouse(data_dir, SEED, SCALE, [*ORDINARY, DRIFT_DAY], DRIFT_DAY, {})


def test_ordinary_days_weekends_included_flag_nothing(drifted):
    flagged = drifted.rows(
        "select business_date, flag_reason from intermediate.int_drift_measures_daily"
        " where business_date < ? and is_flagged",
        [DRIFT_DAY],
    )
    assert flagged == []
    # Weekends are in the history the medians were taken over, and the saturdays themselves are judged.
    weekends = drifted.scalar(
        "select count(distinct business_date) from intermediate.int_drift_measures_daily"
        " where dayofweek(business_date) in (0, 6) and trailing_median is not null"
    )
    assert weekends >= 4


def test_the_drifted_day_is_flagged_for_what_the_fault_did(drifted):
    flagged = {
        (r["source"], r["measure"]): r
        for r in drifted.rows(
            "select source, measure, observed_value, trailing_median from intermediate.int_drift_measures_daily"
            " where business_date = ? and is_flagged",
            [DRIFT_DAY],
        )
    }
    # Half the AOI ids dropped: AOI-matched orders fall from ~0.8 to ~0.4 on every platform that sends them.
    for platform in ("meituan", "eleme", "shansong"):
        rate = flagged[(platform, "aoi_match_rate")]
        assert rate["trailing_median"] > 0.75 and 0.3 < rate["observed_value"] < 0.55, rate
    # sf's gate time dropped on half the deliveries.
    assert flagged[("sf", "gate_time_missing_rate")]["observed_value"] > 0.4
    for platform in ("meituan", "eleme", "sf", "shansong"):
        assert (platform, "unknown_field_records") in flagged
        assert (platform, "missing_optional_field_records") in flagged
    # Orders still lie inside their units: matched by position instead, deliveries unchanged.
    assert not {m for _, m in flagged} & {"unit_match_rate", "deliveries", "quarantine_rate"}


def test_pipeline_runs_publishes_the_flags_with_the_day(drifted):
    [run] = drifted.rows("select * from marts.pipeline_runs where run_id = 'drift' and business_date = ?", [DRIFT_DAY])
    assert run["drift_flags"] == 3 + 1 + 4 + 4  # AOI x3, sf gate times, unknown and missing fields x4
    assert "meituan aoi_match_rate" in run["flag_reasons"]
    assert "records with fields the staging model does not know (ext_info_v3)" in run["flag_reasons"]
    assert run["meituan_unknown_field_records"] == run["meituan_missing_optional_field_records"] > 0
    assert drifted.scalar("select max(drift_flags) from marts.pipeline_runs where run_id = 'ordinary'") == 0
