"""ops.alerts against a real HTTP receiver on 127.0.0.1, in each format the channel can have.

The task context is built from the Task SDK's own DagRun model and a task instance carrying the attributes
the notifier reads; the same notifier and deadline callback run for real under the scheduler in
test_scheduler.py. The robot payloads are checked against the DingTalk custom robot's and the WeCom group
robot's published message formats (msgtype markdown; DingTalk's signature recomputed here).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import logging
import socket
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo

import pytest
import structlog
from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.sdk import DAG, AsyncCallback, BaseNotifier, DeadlineReference
from airflow.sdk.api.datamodels._generated import DagRun
from airflow.sdk.execution_time.task_runner import _run_task_state_change_callbacks

from ops import alerts
from ops.dag_config import DEFAULT_ARGS

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
        dag_id="xihu_friendly_daily",
        run_id=run_id,
        logical_date=logical,
        data_interval_start=logical - timedelta(days=1),
        data_interval_end=logical,
        run_after=logical,
        start_date=logical,
        end_date=None,
        run_type=run_type,
        state="running",
        consumed_asset_events=[],
        partition_key=None,
    )
    ti = TaskInstance(
        "xihu_friendly_daily",
        "load_meituan",
        run_id,
        2,
        -1,
        f"http://localhost:8080/dags/xihu_friendly_daily/runs/{run_id}/tasks/load_meituan?try_number=2",
    )
    return {
        "ti": ti,
        "task_instance": ti,
        "dag_run": dag_run,
        "params": params or {},
        "exception": ValueError("row 17: phone 13800138000 unparseable"),
    }


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


def _alerts_connection(monkeypatch, url: str, **extra) -> None:
    conn = {"conn_type": "http", "host": url, **({"extra": extra} if extra else {})}
    monkeypatch.setenv("AIRFLOW_CONN_XIHU_ALERTS", json.dumps(conn))


def test_connection_wins_over_environment(webhook, monkeypatch):
    _alerts_connection(monkeypatch, webhook.url)
    monkeypatch.setenv(alerts.WEBHOOK_ENV, _dead_url())
    assert alerts.alert_channel() == alerts.Channel(webhook.url, "json")
    assert asyncio.run(alerts.alert_channel_async()) == alerts.Channel(webhook.url, "json")
    alerts.task_failure_alert(_context())
    assert len(webhook.received) == 1
    assert webhook.received[0]["json"]["event"] == "task_failed"  # no format in the extra: generic JSON


def test_webhook_down_never_fails_the_task(monkeypatch, caplog):
    monkeypatch.setenv(alerts.WEBHOOK_ENV, _dead_url())
    with caplog.at_level(logging.ERROR, logger="ops.alerts"):
        assert alerts.task_failure_alert(_context()) is None
    assert "alert webhook unreachable" in caplog.text


def test_webhook_error_status_is_logged(webhook, caplog):
    webhook.status = 500
    with caplog.at_level(logging.ERROR, logger="ops.alerts"):
        assert alerts.send(alerts.Channel(webhook.url), {"text": "x"}) is False
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
            "dag_run_id": f"{run_type}__2026-11-28T17:30:00+00:00",
            "dag_id": "xihu_friendly_daily",
            "logical_date": "2026-11-28T17:30:00Z",
            "run_after": "2026-11-28T17:30:00Z",
            "queued_at": "2026-11-28T17:30:01Z",
            "run_type": run_type,
            "state": "running",
            "conf": {},
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


# -- the robots


def _dingtalk_sign(timestamp: str, secret: str) -> str:
    """DingTalk's documented signature, computed independently of ops.alerts."""
    digest = hmac.new(secret.encode(), f"{timestamp}\n{secret}".encode(), hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def _no_record_contents(body: dict) -> None:
    assert "13800138000" not in json.dumps(body, ensure_ascii=False)
    assert "unparseable" not in json.dumps(body, ensure_ascii=False)


def _failure_facts_in(text: str) -> None:
    for fact in (
        "xihu_friendly_daily",
        "load_meituan",
        "2026-11-28",
        "scheduled__2026-11-28T17:30:00+00:00",
        "ValueError",
        "/tasks/load_meituan?try_number=2)",
    ):
        assert fact in text, fact
    assert "尝试 / try: 2" in text


def test_dingtalk_robot_payload(webhook, monkeypatch):
    _alerts_connection(monkeypatch, webhook.url + "?access_token=t0ken", format="dingtalk")
    alerts.task_failure_alert(_context())
    [hit] = webhook.received
    assert urlsplit(hit["path"]).query == "access_token=t0ken"  # unsigned: the URL as configured
    body = hit["json"]
    assert set(body) == {"msgtype", "markdown"} and body["msgtype"] == "markdown"
    assert set(body["markdown"]) == {"title", "text"}
    assert body["markdown"]["title"] == "【西湖新就业群体数据】任务失败 / task failed"
    text = body["markdown"]["text"]
    assert text.startswith("### 【西湖新就业群体数据】任务失败")  # Chinese first
    assert "业务日期 / business date: 2026-11-28" in text
    _failure_facts_in(text)
    _no_record_contents(body)


def test_dingtalk_robot_signature(webhook, monkeypatch):
    secret = "SEC0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcd"
    _alerts_connection(monkeypatch, webhook.url + "?access_token=t0ken", format="dingtalk", secret=secret)
    before = int(time.time() * 1000)
    alerts.task_failure_alert(_context())
    [hit] = webhook.received
    query = parse_qs(urlsplit(hit["path"]).query, strict_parsing=True)
    assert set(query) == {"access_token", "timestamp", "sign"}
    assert query["access_token"] == ["t0ken"]
    [timestamp], [sign] = query["timestamp"], query["sign"]
    assert before <= int(timestamp) <= int(time.time() * 1000)  # milliseconds, now: DingTalk allows 1 h
    assert sign == _dingtalk_sign(timestamp, secret)
    assert secret not in hit["path"] and secret not in json.dumps(hit["json"])


def test_wecom_robot_payload(webhook, monkeypatch):
    _alerts_connection(monkeypatch, webhook.url + "?key=k3y", format="wecom", secret="ignored")
    alerts.task_failure_alert(_context())
    [hit] = webhook.received
    assert urlsplit(hit["path"]).query == "key=k3y"  # WeCom robots are not signed
    body = hit["json"]
    assert set(body) == {"msgtype", "markdown"} and body["msgtype"] == "markdown"
    assert set(body["markdown"]) == {"content"}
    content = body["markdown"]["content"]
    assert content.startswith("### 【西湖新就业群体数据】任务失败 / task failed")
    assert len(content.encode()) <= 4096  # WeCom's limit for markdown content
    _failure_facts_in(content)
    _no_record_contents(body)


@pytest.mark.parametrize("fmt", ["dingtalk", "wecom"])
def test_deadline_alert_in_robot_format(webhook, monkeypatch, fmt):
    """The triggerer's deadline callback uses the same channel code: same format, same facts."""
    _alerts_connection(monkeypatch, webhook.url, format=fmt, secret="SECdeadline")
    asyncio.run(alerts.deadline_missed(context=_deadline_context("scheduled"), run_types=["scheduled"]))
    [hit] = webhook.received
    markdown = hit["json"]["markdown"]
    text = markdown["text"] if fmt == "dingtalk" else markdown["content"]
    assert text.startswith("### 【西湖新就业群体数据】未按时发布 / not published on time")
    assert "截止 / deadline: 2026-11-29 06:00 (Asia/Shanghai)" in text
    assert "业务日期 / business date: 2026-11-28" in text
    assert "/dags/xihu_friendly_daily/runs/scheduled__2026-11-28T17:30:00+00:00)" in text
    if fmt == "dingtalk":
        assert markdown["title"] == "【西湖新就业群体数据】未按时发布 / not published on time"
        query = parse_qs(urlsplit(hit["path"]).query)
        assert query["sign"] == [_dingtalk_sign(query["timestamp"][0], "SECdeadline")]


@pytest.fixture
def refusing_robot():
    """A robot that answers as DingTalk does to a bad signature: HTTP 200, errcode in the JSON."""
    hits = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 - http.server's naming
            hits.append(self.rfile.read(int(self.headers.get("Content-Length", 0))))
            answer = json.dumps({"errcode": 310000, "errmsg": "sign not match"}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/robot/send?access_token=t0ken", hits
    server.shutdown()
    server.server_close()


def test_robot_refusal_is_logged_not_raised(refusing_robot, caplog):
    url, hits = refusing_robot
    with caplog.at_level(logging.ERROR, logger="ops.alerts"):
        assert alerts.send(alerts.Channel(url, "dingtalk", "SECwrong"), alerts.failure_payload(_context())) is False
    assert len(hits) == 1
    assert "refused the message, errcode 310000 (sign not match)" in caplog.text
    assert "t0ken" not in caplog.text  # the robot's URL is a credential: never logged


def test_unknown_format_sends_generic_json(webhook, monkeypatch, caplog):
    _alerts_connection(monkeypatch, webhook.url, format="slack")
    with caplog.at_level(logging.ERROR, logger="ops.alerts"):
        alerts.task_failure_alert(_context())
    assert "unknown alert format 'slack'" in caplog.text
    assert webhook.received[0]["json"]["event"] == "task_failed"


# -- the notifiers


def test_a_notifier_is_wired_into_every_task(webhook, monkeypatch):
    """The DAGs' default_args carry the Airflow notifier, a task built from them gets it, and the Task SDK's
    own failure-callback runner (what a worker calls when a task fails) sends the alert through it."""
    notifier = DEFAULT_ARGS["on_failure_callback"]
    assert notifier is alerts.task_failure_alert
    assert isinstance(notifier, BaseNotifier) and isinstance(notifier, alerts.AlertNotifier)
    with DAG("wiring", default_args=DEFAULT_ARGS, schedule=None):
        task = EmptyOperator(task_id="t")
    assert list(task.on_failure_callback) == [notifier]
    monkeypatch.setenv(alerts.WEBHOOK_ENV, webhook.url)
    _run_task_state_change_callbacks(task, "on_failure_callback", _context(), structlog.get_logger())
    [hit] = webhook.received
    assert hit["json"]["event"] == "task_failed" and hit["json"]["task_id"] == "load_meituan"


def test_fixed_channel_notifiers(webhook):
    alerts.WebhookNotifier(webhook.url)(_context())
    alerts.RobotNotifier(webhook.url, "wecom")(_context())
    alerts.RobotNotifier(webhook.url, "dingtalk", secret="SECfixed")(_context())
    generic, wecom, dingtalk = (hit["json"] for hit in webhook.received)
    assert generic["event"] == "task_failed"
    assert set(wecom["markdown"]) == {"content"}
    assert set(dingtalk["markdown"]) == {"title", "text"}
    assert "sign=" in webhook.received[2]["path"]
    with pytest.raises(ValueError, match="robot must be one of"):
        alerts.RobotNotifier(webhook.url, "json")


def test_notifier_never_raises(webhook, monkeypatch, caplog):
    """Even a context the payload cannot be built from (an alert bug) is logged, not raised."""
    monkeypatch.setenv(alerts.WEBHOOK_ENV, webhook.url)
    with caplog.at_level(logging.ERROR, logger="ops.alerts"):
        assert alerts.task_failure_alert({"dag_run": None}) is None
    assert "failure alert could not be sent" in caplog.text
    assert webhook.received == []
