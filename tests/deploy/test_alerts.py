"""ops.alerts against a real HTTP receiver on 127.0.0.1.

The task context is built from the Task SDK's own DagRun model and a task instance carrying the attributes
the callback reads; the same callbacks run for real under the scheduler in test_scheduler.py.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from airflow.sdk import AsyncCallback, DeadlineReference
from airflow.sdk.api.datamodels._generated import DagRun

from ops import alerts

SHANGHAI = ZoneInfo("Asia/Shanghai")


@dataclass
class TaskInstance:
    dag_id: str
    task_id: str
    run_id: str
    try_number: int
    map_index: int
    log_url: str


@pytest.fixture(autouse=True)
def no_alert_config(monkeypatch):
    monkeypatch.delenv("AIRFLOW_CONN_XIHU_ALERTS", raising=False)
    monkeypatch.delenv(alerts.WEBHOOK_ENV, raising=False)


def _dead_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/hook"


def _context(run_type: str = "scheduled", params: dict | None = None) -> dict:
    logical = datetime(2026, 11, 29, 1, 30, tzinfo=SHANGHAI)
    run_id = f"{run_type}__2026-11-28T17:30:00+00:00"
    dag_run = DagRun(
        dag_id="xihu_friendly_daily", run_id=run_id, logical_date=logical,
        data_interval_start=logical - timedelta(days=1), data_interval_end=logical, run_after=logical,
        start_date=logical, end_date=None, run_type=run_type, state="running", consumed_asset_events=[],
        partition_key=None,
    )
    ti = TaskInstance("xihu_friendly_daily", "load_meituan", run_id, 2, -1,
                      f"http://localhost:8080/dags/xihu_friendly_daily/runs/{run_id}/tasks/load_meituan"
                      "?try_number=2")
    return {"ti": ti, "task_instance": ti, "dag_run": dag_run, "params": params or {},
            "exception": ValueError("row 17: phone 13800138000 unparseable")}


def test_failure_alert_posts_the_run_identity(webhook, monkeypatch):
    monkeypatch.setenv(alerts.WEBHOOK_ENV, webhook.url)
    alerts.task_failure_alert(_context())
    [hit] = webhook.received
    assert hit["path"] == "/hook" and hit["content_type"] == "application/json"
    body = hit["json"]
    assert body["event"] == "task_failed"
    assert body["dag_id"] == "xihu_friendly_daily"
    assert body["run_id"] == "scheduled__2026-11-28T17:30:00+00:00"
    assert body["task_id"] == "load_meituan"
    assert body["business_date"] == "2026-11-28"
    assert body["try_number"] == 2
    assert body["run_type"] == "scheduled"
    assert body["log_url"].endswith("/tasks/load_meituan?try_number=2")
    assert body["error"] == "ValueError"
    # The exception text can quote a record: it never leaves the cluster.
    assert "13800138000" not in str(body)


def test_business_date_param_wins(webhook, monkeypatch):
    monkeypatch.setenv(alerts.WEBHOOK_ENV, webhook.url)
    alerts.task_failure_alert(_context(run_type="manual", params={"business_date": "2026-11-01"}))
    assert webhook.received[0]["json"]["business_date"] == "2026-11-01"


def test_connection_wins_over_environment(webhook, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_XIHU_ALERTS", f'{{"conn_type": "http", "host": "{webhook.url}"}}')
    monkeypatch.setenv(alerts.WEBHOOK_ENV, _dead_url())
    assert alerts.webhook_url() == webhook.url
    assert asyncio.run(alerts.webhook_url_async()) == webhook.url
    alerts.task_failure_alert(_context())
    assert len(webhook.received) == 1


def test_webhook_down_never_fails_the_task(monkeypatch, caplog):
    monkeypatch.setenv(alerts.WEBHOOK_ENV, _dead_url())
    with caplog.at_level(logging.ERROR, logger="ops.alerts"):
        assert alerts.task_failure_alert(_context()) is None
    assert "alert webhook unreachable" in caplog.text


def test_webhook_error_status_is_logged(webhook, caplog):
    webhook.status = 500
    with caplog.at_level(logging.ERROR, logger="ops.alerts"):
        assert alerts.post_alert(webhook.url, {"text": "x"}) is False
    assert "HTTP 500" in caplog.text
    assert len(webhook.received) == 1


def test_no_webhook_configured_only_logs(caplog):
    with caplog.at_level(logging.WARNING, logger="ops.alerts"):
        alerts.task_failure_alert(_context())
    assert "no alert webhook configured" in caplog.text


def _deadline_context(run_type: str) -> dict:
    """What Deadline.handle_miss hands the callback: the run as the public API's DAGRunResponse JSON."""
    return {
        "dag_run": {
            "dag_run_id": f"{run_type}__2026-11-28T17:30:00+00:00", "dag_id": "xihu_friendly_daily",
            "logical_date": "2026-11-28T17:30:00Z", "run_after": "2026-11-28T17:30:00Z",
            "queued_at": "2026-11-28T17:30:01Z", "run_type": run_type, "state": "running", "conf": {},
        },
        "deadline": {"id": "0193", "deadline_time": "2026-11-28T22:00:00Z"},
    }


def test_deadline_missed_posts_for_scheduled_runs(webhook, monkeypatch):
    monkeypatch.setenv(alerts.WEBHOOK_ENV, webhook.url)
    asyncio.run(alerts.deadline_missed(context=_deadline_context("scheduled"), run_types=["scheduled"]))
    [hit] = webhook.received
    body = hit["json"]
    assert body["event"] == "publication_deadline_missed"
    assert body["business_date"] == "2026-11-28"
    assert body["run_id"] == "scheduled__2026-11-28T17:30:00+00:00"
    assert datetime.fromisoformat(body["deadline"]).astimezone(SHANGHAI).hour == 6
    assert body["log_url"].endswith("/dags/xihu_friendly_daily/runs/scheduled__2026-11-28T17:30:00+00:00")


def test_deadline_ignores_backfills(webhook, monkeypatch):
    monkeypatch.setenv(alerts.WEBHOOK_ENV, webhook.url)
    asyncio.run(alerts.deadline_missed(context=_deadline_context("backfill"), run_types=["scheduled"]))
    assert webhook.received == []


def test_publish_deadline_is_0600_shanghai():
    deadline = alerts.publish_deadline()
    assert deadline.reference == DeadlineReference.DAGRUN_LOGICAL_DATE
    # The run of D fires at D+1 01:30 Asia/Shanghai; 06:00 is 4h30 later.
    assert deadline.interval == timedelta(hours=4, minutes=30)
    assert isinstance(deadline.callback, AsyncCallback)
    assert deadline.callback.path == "ops.alerts.deadline_missed"
    assert deadline.callback.kwargs == {"run_types": ["scheduled"]}
    with pytest.raises(ValueError):
        alerts.publish_deadline(by=datetime(2026, 1, 1, 1, 0).time())
