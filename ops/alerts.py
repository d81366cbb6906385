"""Alerts to the on-call channel: a task that failed, and a business date not published by 06:00.

Both go to the webhook whose URL is the host of Airflow Connection ``xihu_alerts``; its extra says what the
webhook expects:

- ``{"format": "json"}`` (the default): one generic JSON object with the identifiers below;
- ``{"format": "dingtalk", "secret": "SEC..."}``: a DingTalk custom robot (钉钉自定义机器人), a markdown
  message; with ``secret`` (the robot's signing secret) the URL carries ``timestamp`` and ``sign``;
- ``{"format": "wecom"}``: a WeCom group robot (企业微信群机器人), a markdown message.

Without that connection the environment variable ``XIHU_ALERT_WEBHOOK`` is the URL (generic JSON); with
neither, alerts are only logged. The channel is read when an alert fires, never at DAG parse time.

A failed task alerts through an Airflow notifier, ``task_failure_alert`` (an :class:`AlertNotifier`, in
every task's default_args; :class:`WebhookNotifier` and :class:`RobotNotifier` send to a fixed channel). A
missed deadline alerts through an AsyncCallback in the triggerer, :func:`deadline_missed`. Both build the
same payload and send it through :class:`Channel`, so every format carries the same facts.

An alert must never make things worse: a webhook that is down, slow or refusing is logged and swallowed,
so it can neither fail a task nor hold a worker slot for long (10 s timeout, no retries).

Payloads carry identifiers and links, never exception messages or record contents: an exception raised
while parsing a source record can quote the record, and the webhook is outside the district's control.
The log URL leads to the details behind Airflow's own access control. The robots' messages put Chinese
first: the district's on-call staff read them on their phones.

Wiring in the DAG::

    from ops.alerts import publish_deadline, task_failure_alert

    DAG(..., default_args={"on_failure_callback": task_failure_alert}, deadline=publish_deadline())
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import logging
import os
import time as clock
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import requests
from airflow.sdk import AsyncCallback, BaseHook, BaseNotifier, DeadlineAlert, DeadlineReference, conf
from airflow.sdk.exceptions import AirflowNotFoundException

from ingest.dates import LOCAL, business_date_for, run_time_for

log = logging.getLogger(__name__)

ALERTS_CONN_ID = "xihu_alerts"
WEBHOOK_ENV = "XIHU_ALERT_WEBHOOK"
TIMEOUT_S = 10
# The district reads the previous day's figures from 06:00 Asia/Shanghai.
PUBLISH_BY = time(6, 0)
FORMATS = ("json", "dingtalk", "wecom")
ROBOT_BRAND = "【西湖新就业群体数据】"


@dataclass(frozen=True)
class Channel:
    """Where an alert goes and in which shape: ``format`` is one of :data:`FORMATS`."""

    url: str | None
    format: str = "json"
    secret: str | None = None

    def request(self, payload: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
        """The URL and the JSON body to POST for ``payload`` (see :func:`failure_payload`)."""
        if self.format == "json":
            return self.url, dict(payload)
        title, text = robot_markdown(payload)
        if self.format == "wecom":
            return self.url, {"msgtype": "markdown", "markdown": {"content": text}}
        url = dingtalk_signed_url(self.url, self.secret) if self.secret else self.url
        return url, {"msgtype": "markdown", "markdown": {"title": title, "text": text}}


def dingtalk_signed_url(url: str, secret: str) -> str:
    """``url`` with DingTalk's signature: ``timestamp`` (ms) and ``sign``, the base64 HMAC-SHA256 of
    ``"{timestamp}\\n{secret}"`` under ``secret``. The robot rejects a timestamp more than an hour off."""
    timestamp = str(int(clock.time() * 1000))
    digest = hmac.new(secret.encode(), f"{timestamp}\n{secret}".encode(), hashlib.sha256).digest()
    parts = urlsplit(url)
    query = [
        *parse_qsl(parts.query, keep_blank_values=True),
        ("timestamp", timestamp),
        ("sign", base64.b64encode(digest).decode()),
    ]
    return urlunsplit(parts._replace(query=urlencode(query)))


def channel_from(conn: Any) -> Channel:
    """The channel of Connection ``xihu_alerts`` (None when it does not exist), else ``XIHU_ALERT_WEBHOOK``."""
    if conn is None or not conn.host:
        return Channel(os.environ.get(WEBHOOK_ENV) or None)
    extra = conn.extra_dejson or {}
    fmt = extra.get("format") or "json"
    if fmt not in FORMATS:
        # Still send: a generic object the webhook may reject is better than a silent channel.
        log.error(
            "Connection %s: unknown alert format %r (one of %s); sending generic JSON",
            ALERTS_CONN_ID,
            fmt,
            ", ".join(FORMATS),
        )
        fmt = "json"
    return Channel(conn.host, fmt, extra.get("secret") or None)


def alert_channel() -> Channel:
    """The on-call channel, read now (inside the task's failure handling)."""
    try:
        conn = BaseHook.get_connection(ALERTS_CONN_ID)
    except AirflowNotFoundException:
        conn = None
    return channel_from(conn)


async def alert_channel_async() -> Channel:
    """:func:`alert_channel` for the triggerer, where connections must be fetched without blocking."""
    try:
        conn = await BaseHook.aget_connection(ALERTS_CONN_ID)
    except AirflowNotFoundException:
        conn = None
    return channel_from(conn)


def _robot_refusal(response: requests.Response) -> str | None:
    """DingTalk and WeCom answer HTTP 200 also when they refuse (bad signature, bad key): the refusal is a
    non-zero ``errcode`` in the JSON answer."""
    try:
        answer = response.json()
    except ValueError:
        return None
    if isinstance(answer, dict) and answer.get("errcode", 0) != 0:
        return f"errcode {answer.get('errcode')} ({answer.get('errmsg')})"
    return None


def send(channel: Channel, payload: Mapping[str, Any]) -> bool:
    """POST ``payload`` in the channel's format; True when the webhook took it. Never raises for a webhook
    problem. Logs name the alert by its summary, never the URL: robot URLs carry their access token."""
    summary = payload.get("text")
    if not channel.url:
        log.warning("no alert webhook configured (Connection %s or %s): %s", ALERTS_CONN_ID, WEBHOOK_ENV, summary)
        return False
    url, body = channel.request(payload)
    try:
        response = requests.post(url, json=body, timeout=TIMEOUT_S)
    except requests.RequestException as exc:
        log.error("alert webhook unreachable (%s): %s", exc.__class__.__name__, summary)
        return False
    if not response.ok:
        log.error("alert webhook answered HTTP %s: %s", response.status_code, summary)
        return False
    if channel.format != "json" and (refusal := _robot_refusal(response)):
        log.error("alert robot (%s) refused the message, %s: %s", channel.format, refusal, summary)
        return False
    return True


def _iso(value: Any) -> str | None:
    return value.isoformat() if isinstance(value, (datetime, date)) else value


def _business_date(
    logical_date: datetime | None, run_after: datetime | None, params: Mapping[str, Any] | None
) -> str | None:
    """The run's business date by the project's one rule (ingest.dates); None rather than no alert."""
    try:
        return business_date_for(logical_date, run_after, (params or {}).get("business_date")).isoformat()
    except (ValueError, TypeError):
        log.exception("cannot derive the business date for an alert")
        return None


def failure_payload(context: Mapping[str, Any]) -> dict[str, Any]:
    """The alert of a failed task, from the task's Airflow context."""
    ti = context["ti"]
    dag_run = context["dag_run"]
    business_date = _business_date(dag_run.logical_date, dag_run.run_after, context.get("params"))
    exception = context.get("exception")
    error = type(exception).__name__ if exception is not None else None
    text = f"[xihu] {ti.dag_id}.{ti.task_id} failed (try {ti.try_number}) for business date {business_date}: {error}"
    return {
        "event": "task_failed",
        "dag_id": ti.dag_id,
        "run_id": ti.run_id,
        "run_type": getattr(dag_run.run_type, "value", dag_run.run_type),
        "task_id": ti.task_id,
        "map_index": ti.map_index,
        "business_date": business_date,
        "try_number": ti.try_number,
        "error": error,
        "log_url": ti.log_url,
        "text": text,
    }


class ChannelNotifier(BaseNotifier):
    """A notifier that sends a failed task's alert to :meth:`channel`; ``notify`` never raises (the task
    has failed already, and an alert bug must not hide why)."""

    def channel(self) -> Channel:
        raise NotImplementedError

    def notify(self, context: Mapping[str, Any]) -> None:
        try:
            send(self.channel(), failure_payload(context))
        except Exception:  # noqa: BLE001 - see the class docstring
            log.exception("failure alert could not be sent")


class WebhookNotifier(ChannelNotifier):
    """The generic JSON object of :func:`failure_payload`, POSTed to ``url``."""

    def __init__(self, url: str, context: Mapping[str, Any] | None = None):
        super().__init__(context)
        self.url = url

    def channel(self) -> Channel:
        return Channel(self.url)


class RobotNotifier(ChannelNotifier):
    """A markdown message for a chat robot: ``robot`` is "dingtalk" (signed when ``secret`` is given) or
    "wecom"."""

    def __init__(self, url: str, robot: str, secret: str | None = None, context: Mapping[str, Any] | None = None):
        if robot not in FORMATS[1:]:
            raise ValueError(f"robot must be one of {FORMATS[1:]}, not {robot!r}")
        super().__init__(context)
        self.url, self.robot, self.secret = url, robot, secret

    def channel(self) -> Channel:
        return Channel(self.url, self.robot, self.secret)


class AlertNotifier(ChannelNotifier):
    """The on-call notifier of every task: the channel and its format come from Connection ``xihu_alerts``
    when an alert fires, so changing channel is a connection edit, not a DAG change."""

    def channel(self) -> Channel:
        return alert_channel()


# One instance for every task: it holds no state between calls (no template fields to render in place).
task_failure_alert = AlertNotifier()


def _parse_time(value: Any) -> datetime | None:
    return datetime.fromisoformat(value) if isinstance(value, str) else value


def deadline_payload(context: Mapping[str, Any]) -> dict[str, Any]:
    """The alert of a missed publication deadline, from the context the scheduler gives deadline callbacks
    (``{"dag_run": <DAGRunResponse as JSON>, "deadline": {"id", "deadline_time"}}``)."""
    dag_run = context["dag_run"]
    business_date = _business_date(
        _parse_time(dag_run.get("logical_date")), _parse_time(dag_run.get("run_after")), dag_run.get("conf")
    )
    base_url = conf.get("api", "base_url", fallback="http://localhost:8080/").rstrip("/")
    deadline_time = _iso(_parse_time((context.get("deadline") or {}).get("deadline_time")))
    return {
        "event": "publication_deadline_missed",
        "dag_id": dag_run["dag_id"],
        "run_id": dag_run["dag_run_id"],
        "run_type": dag_run.get("run_type"),
        "state": dag_run.get("state"),
        "business_date": business_date,
        "deadline": deadline_time,
        "log_url": f"{base_url}/dags/{dag_run['dag_id']}/runs/{dag_run['dag_run_id']}",
        "text": f"[xihu] business date {business_date} not published by {deadline_time} "
        f"(run {dag_run['dag_run_id']} is {dag_run.get('state')})",
    }


def _local_time(value: str | None) -> str | None:
    return datetime.fromisoformat(value).astimezone(LOCAL).strftime(f"%Y-%m-%d %H:%M ({LOCAL.key})") if value else None


def robot_markdown(payload: Mapping[str, Any]) -> tuple[str, str]:
    """Title and markdown text of an alert for the chat robots, Chinese first, from the same identifiers
    as the JSON payload (one list item each, and the link)."""
    if payload["event"] == "task_failed":
        title = f"{ROBOT_BRAND}任务失败 / task failed"
        task, map_index = payload["task_id"], payload.get("map_index", -1)
        if map_index >= 0:
            task = f"{task}[{map_index}]"
        items = [
            ("DAG", payload["dag_id"]),
            ("任务 / task", task),
            ("业务日期 / business date", payload["business_date"]),
            ("运行 / run", f"{payload['run_id']} ({payload['run_type']})"),
            ("尝试 / try", payload["try_number"]),
            ("错误类型 / error", payload["error"]),
        ]
        link = "日志 / log"
    else:
        title = f"{ROBOT_BRAND}未按时发布 / not published on time"
        items = [
            ("DAG", payload["dag_id"]),
            ("业务日期 / business date", payload["business_date"]),
            ("截止 / deadline", _local_time(payload["deadline"])),
            ("运行 / run", f"{payload['run_id']} ({payload['run_type']}, {payload['state']})"),
        ]
        link = "运行详情 / run details"
    lines = [
        f"### {title}",
        "",
        *(f"- {label}: {value}" for label, value in items),
        f"- [{link}]({payload['log_url']})",
    ]
    return title, "\n".join(lines)


async def deadline_missed(context: Mapping[str, Any], run_types: Iterable[str] = ("scheduled",)) -> None:
    """Deadline callback (runs in the triggerer). Only ``run_types`` alert: the deadline is counted from
    the logical date, so a backfill of an old day or a manual re-run is "late" the moment it starts, and
    alerting on those would teach people to ignore the channel."""
    dag_run = context["dag_run"]
    if dag_run.get("run_type") not in set(run_types):
        log.info("deadline passed for %s run %s: not alerting", dag_run.get("run_type"), dag_run.get("dag_run_id"))
        return
    try:
        payload = deadline_payload(context)
        await asyncio.to_thread(send, await alert_channel_async(), payload)
    except Exception:  # noqa: BLE001 - same rule as the failure notifier
        log.exception("deadline alert could not be sent")


def publish_deadline(by: time = PUBLISH_BY, run_types: Iterable[str] = ("scheduled",)) -> DeadlineAlert:
    """``DAG(deadline=...)``: alert unless business date D is published by ``by`` on D+1 (Asia/Shanghai).

    Airflow 3.3 measures a deadline from a run's logical date; the run of D has logical date
    :func:`ingest.dates.run_time_for` (D+1 01:30), so the interval is the time from then to ``by``. The
    deadline is cleared when the run succeeds, and publish is its last task.
    """
    sample = date(2026, 1, 1)
    interval = datetime.combine(sample + timedelta(days=1), by, LOCAL) - run_time_for(sample)
    if interval <= timedelta(0):
        raise ValueError(f"the deadline {by} is before the daily run at {run_time_for(sample).time()}")
    return DeadlineAlert(
        reference=DeadlineReference.DAGRUN_LOGICAL_DATE,
        interval=interval,
        callback=AsyncCallback(deadline_missed, kwargs={"run_types": list(run_types)}),
        name=f"published_by_{by:%H%M}",
    )
