"""The production path under a real scheduler (ops.scheduler_harness): Postgres metadata, dag-processor,
LocalExecutor tasks through the Execution API, the pool, the REST API, triggerer-side deadline callbacks
and a 3-day backfill.

The DAGs here are trivial stand-ins shaped like the project's daily DAG (01:30 Asia/Shanghai cron, the
business date by ingest.dates, the writer pool, ops.alerts callbacks), so that the harness itself is tested
independently of the pipeline. Needs Debian's postgresql package (apt-get install -y postgresql).
"""

from __future__ import annotations

import json
import socket
import time
from datetime import date

import pytest

from ops.scheduler_harness import SchedulerHarness
from tests.deploy.harness_dags import FAIL_DAG, OK_DAG, write_dags


@pytest.fixture(scope="module")
def deployment(tmp_path_factory, module_webhook):
    """One harness for the module (starting it is the slow part) with a webhook receiver for alerts."""
    root = tmp_path_factory.mktemp("scheduler")
    receiver = module_webhook
    dags = write_dags(root / "dags", harness_ok=OK_DAG, harness_fail=FAIL_DAG)
    env = {
        "XIHU_DATA_DIR": str(root / "data"),
        "AIRFLOW_CONN_XIHU_ALERTS": json.dumps({"conn_type": "http", "host": receiver.url}),
    }
    started = time.monotonic()
    with SchedulerHarness(dags, env) as harness:
        harness.wait_for_dag("harness_ok")
        harness.wait_for_dag("harness_fail")
        yield harness, receiver, root / "data"
        print(f"\nharness timings (s): {harness.timings}, total {time.monotonic() - started:.1f}")
    # Torn down: no component left, the cluster stopped, the folder gone.
    assert all(proc.poll() is not None for proc in harness.processes.values())
    with socket.socket() as sock:
        assert sock.connect_ex(("127.0.0.1", harness.postgres.port)) != 0
    assert not harness.root.exists()


def _alerts(receiver, event: str, run_id: str, timeout: float = 60) -> list[dict]:
    """The alerts of ``event`` for ``run_id``, waiting for the first (callbacks run after the state)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = [
            hit["json"]
            for hit in receiver.received
            if hit["json"]["event"] == event and hit["json"]["run_id"] == run_id
        ]
        if found:
            return found
        time.sleep(1)
    return []


def test_manual_run_through_the_api(deployment):
    harness, receiver, data = deployment
    run_id = harness.trigger("harness_ok", conf={"business_date": "2026-11-20"})
    run = harness.wait_for_run("harness_ok", run_id)
    assert run["state"] == "success", harness.task_instances("harness_ok", run_id)
    assert (data / "markers" / "2026-11-20.txt").read_text() == run_id
    [ti] = harness.task_instances("harness_ok", run_id)
    assert ti["pool"] == "duckdb_writer" and ti["state"] == "success"


def test_deadline_alert_comes_from_the_triggerer(deployment):
    harness, receiver, _ = deployment
    run_id = harness.trigger("harness_ok")
    harness.wait_for_run("harness_ok", run_id)
    alerts = _alerts(receiver, "publication_deadline_missed", run_id)
    assert alerts, receiver.received
    assert alerts[0]["run_type"] == "manual"
    assert alerts[0]["log_url"] == f"{harness.api}/dags/harness_ok/runs/{run_id}"
    # The scheduled run made on unpausing missed the same deadline but was filtered out.
    scheduled = harness.runs("harness_ok", "scheduled")
    assert scheduled and all(r["state"] in ("success", "running", "queued") for r in scheduled)
    deadline_runs = {
        hit["json"]["run_id"] for hit in receiver.received if hit["json"]["event"] == "publication_deadline_missed"
    }
    assert not deadline_runs & {r["dag_run_id"] for r in scheduled}


def test_failure_alert_from_a_real_task(deployment):
    harness, receiver, _ = deployment
    run_id = harness.trigger("harness_fail")
    assert harness.wait_for_run("harness_fail", run_id)["state"] == "failed"
    [alert] = _alerts(receiver, "task_failed", run_id)
    assert alert["dag_id"] == "harness_fail" and alert["task_id"] == "explode"
    assert alert["try_number"] == 1
    assert alert["error"] == "RuntimeError"
    assert alert["log_url"].startswith(f"{harness.api}/dags/harness_fail/runs/")
    assert alert["business_date"]


def test_backfill_three_days(deployment):
    harness, _, data = deployment
    runs = harness.backfill_business_dates("harness_ok", date(2026, 11, 2), date(2026, 11, 4))
    assert len(runs) == 3
    assert {r["state"] for r in runs} == {"success"}
    for day in ("2026-11-02", "2026-11-03", "2026-11-04"):
        assert (data / "markers" / f"{day}.txt").exists(), sorted((data / "markers").iterdir())
