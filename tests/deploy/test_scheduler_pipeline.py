"""The real DAG under the real scheduler: Postgres metadata, scheduler, dag-processor, triggerer and
api-server started natively (tests/deploy harness), a manual run through the REST API, then a 2-day
backfill with `airflow backfill create` (two days show that a backfill runs its dates one after the other
and publishes each; every further day only adds its ~2-4 minutes). Every run must succeed and every
business date be published: `current` only moves forward, so the runs of older days than the newest
published one (the scheduled run that unpausing creates) publish versions of the newest date listing them
in `corrected_dates`.

Marked `deploy`: it takes several minutes (each task is its own process under LocalExecutor), so `make test`
leaves it out and `make test-deploy` (run by CI after `make test`) runs it.
"""

import json
from datetime import date

import pytest

from ops.demo import sandbox
from ops.localenv import PROJECT_ROOT, sandbox_connections
from ops.scheduler_harness import run_dag
from tests.requires import needs_chromium

pytestmark = [pytest.mark.deploy, needs_chromium]


def test_manual_run_and_backfill_publish_every_day(tmp_path):
    with sandbox(7, 0.005) as base_url:
        report = run_dag(
            PROJECT_ROOT / "dags",
            "xihu_friendly_daily",
            date(2026, 11, 25),
            date(2026, 11, 26),
            {"XIHU_DATA_DIR": str(tmp_path), **sandbox_connections(base_url)},
            conf={"business_date": "2026-11-27"},
        )
    print(json.dumps(report, indent=2))
    assert report["manual"] == "success", report
    assert len(report["backfill"]) == 2 and set(report["backfill"].values()) == {"success"}, report
    manifests = [json.loads(m.read_text()) for m in (tmp_path / "published" / "versions").glob("*/manifest.json")]
    published = {m["business_date"] for m in manifests} | {d for m in manifests for d in m["corrected_dates"]}
    assert {"2026-11-25", "2026-11-26", "2026-11-27"} <= published
    current = json.loads((tmp_path / "published" / "current" / "manifest.json").read_text())
    assert current["business_date"] == max(m["business_date"] for m in manifests), "current moved back"
