"""Alerts to the on-call channel: a task that failed, and a business date not published by 06:00.

Both POST one JSON object to a webhook whose URL is the host of Airflow Connection ``xihu_alerts``
(``AIRFLOW_CONN_XIHU_ALERTS='{"conn_type": "http", "host": "https://..."}'``), or the environment variable
``XIHU_ALERT_WEBHOOK`` when no such connection exists. With neither, alerts are only logged.

An alert must never make things worse: a webhook that is down, slow or refusing is logged and swallowed,
so it can neither fail a task nor hold a worker slot for long (10 s timeout, no retries).

Payloads carry identifiers and links, never exception messages or record contents: an exception raised
while parsing a source record can quote the record, and the webhook is outside the district's control.
The log URL leads to the details behind Airflow's own access control.

Wiring in the DAG::

    from ops.alerts import publish_deadline, task_failure_alert

    DAG(..., default_args={"on_failure_callback": task_failure_alert}, deadline=publish_deadline())
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Iterable, Mapping
from datetime import date, datetime, time, timedelta
from typing import Any

import requests
from airflow.sdk import AsyncCallback, BaseHook, DeadlineAlert, DeadlineReference, conf
from airflow.sdk.exceptions import AirflowNotFoundException

from ingest.dates import LOCAL, business_date_for, run_time_for

log = logging.getLogger(__name__)

ALERTS_CONN_ID = "xihu_alerts"
WEBHOOK_ENV = "XIHU_ALERT_WEBHOOK"
TIMEOUT_S = 10
# The district reads the previous day's figures from 06:00 Asia/Shanghai.
PUBLISH_BY = time(6, 0)


def _url_from(conn: Any) -> str | None:
    return conn.host if conn is not None and conn.host else os.environ.get(WEBHOOK_ENV) or None


def webhook_url() -> str | None:
    """The webhook URL: Connection ``xihu_alerts`` (its host) first, then ``XIHU_ALERT_WEBHOOK``."""
    try:
        conn = BaseHook.get_connection(ALERTS_CONN_ID)
    except AirflowNotFoundException:
        conn = None
    return _url_from(conn)


async def webhook_url_async() -> str | None:
    """:func:`webhook_url` for the triggerer, where connections must be fetched without blocking."""
    try:
        conn = await BaseHook.aget_connection(ALERTS_CONN_ID)
    except AirflowNotFoundException:
        conn = None
    return _url_from(conn)


def post_alert(url: str | None, payload: Mapping[str, Any]) -> bool:
    """POST ``payload`` as JSON; True when the webhook answered 2xx. Never raises for a webhook problem."""
    if not url:
        log.warning("no alert webhook configured (Connection %s or %s): %s", ALERTS_CONN_ID, WEBHOOK_ENV,
                    payload.get("text"))
        return False
    try:
        response = requests.post(url, json=dict(payload), timeout=TIMEOUT_S)
    except requests.RequestException as exc:
        log.error("alert webhook unreachable (%s): %s", exc.__class__.__name__, payload.get("text"))
        return False
    if not response.ok:
        log.error("alert webhook answered HTTP %s: %s", response.status_code, payload.get("text"))
        return False
    return True


def _iso(value: Any) -> str | None:
    return value.isoformat() if isinstance(value, (datetime, date)) else value


def _business_date(logical_date: datetime | None, run_after: datetime | None,
                   params: Mapping[str, Any] | None) -> str | None:
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
    text = (f"[xihu] {ti.dag_id}.{ti.task_id} failed (try {ti.try_number}) "
            f"for business date {business_date}: {error}")
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


def task_failure_alert(context: Mapping[str, Any]) -> None:
    """``on_failure_callback`` for every task: post the failure, and never raise."""
    try:
        post_alert(webhook_url(), failure_payload(context))
    except Exception:  # noqa: BLE001 - an alert bug must not hide the task's own failure
        log.exception("failure alert could not be sent")


def _parse_time(value: Any) -> datetime | None:
    return datetime.fromisoformat(value) if isinstance(value, str) else value


def deadline_payload(context: Mapping[str, Any]) -> dict[str, Any]:
    """The alert of a missed publication deadline, from the context the scheduler gives deadline callbacks
    (``{"dag_run": <DAGRunResponse as JSON>, "deadline": {"id", "deadline_time"}}``)."""
    dag_run = context["dag_run"]
    business_date = _business_date(_parse_time(dag_run.get("logical_date")),
                                   _parse_time(dag_run.get("run_after")), dag_run.get("conf"))
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


async def deadline_missed(context: Mapping[str, Any], run_types: Iterable[str] = ("scheduled",)) -> None:
    """Deadline callback (runs in the triggerer). Only ``run_types`` alert: the deadline is counted from
    the logical date, so a backfill of an old day or a manual re-run is "late" the moment it starts, and
    alerting on those would teach people to ignore the channel."""
    dag_run = context["dag_run"]
    if dag_run.get("run_type") not in set(run_types):
        log.info("deadline passed for %s run %s: not alerting",
                 dag_run.get("run_type"), dag_run.get("dag_run_id"))
        return
    try:
        payload = deadline_payload(context)
        await asyncio.to_thread(post_alert, await webhook_url_async(), payload)
    except Exception:  # noqa: BLE001 - same rule as task_failure_alert
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
