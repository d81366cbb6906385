"""
### xihu_friendly_daily — one business date of the friendly-society indicators

Runs at 01:30 Asia/Shanghai for the day that just ended (business date D, see `ingest/dates.py`).

1. **plan** — the business date and the fetches: four platforms for D and D-1 (late corrections), the
   union export and the rest stations' log for D.
2. **fetch** — one mapped task per (source, date): HTTP to landing files, PII hashed before disk. Landed
   pages survive a failed run and are not fetched again when the run is retried.
3. **load** — landing to `raw.*`, replacing whole (source, date) partitions; quarantine with reasons;
   fetched = loaded + quarantined is checked before commit. Pool `duckdb_writer`.
4. **gate_raw** — Great Expectations on raw: a critical failure stops the run here.
5. **transform** — dbt (Cosmos watcher mode: one `dbt build`, one task per model).
6. **gate_marts** — Great Expectations on the marts: a critical failure blocks publish.
7. **publish** — a new read-only version (DuckDB, Parquet, CSV, manifest), `current` switched atomically;
   emits one Airflow Asset per mart.

Trigger a given day with the param `business_date` (`YYYY-MM-DD`).
"""

from __future__ import annotations

import pendulum
from airflow.sdk import Param, chain, dag, get_current_context, task
from airflow.sdk.exceptions import AirflowFailException
from cosmos import DbtTaskGroup

from ops.dag_config import (
    DBT_OPERATOR_ARGS,
    DEFAULT_ARGS,
    EXECUTION_CONFIG,
    MART_ASSETS,
    PROFILE_CONFIG,
    PROJECT_CONFIG,
    RENDER_CONFIG,
    WRITER_POOL,
    conn,
    publish_deadline_alert,
    run_consumers_after_producer,
)


@dag(
    dag_id="xihu_friendly_daily",
    schedule="30 1 * * *",
    start_date=pendulum.datetime(2026, 1, 1, tz="Asia/Shanghai"),
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    params={"business_date": Param(None, type=["null", "string"], format="date",
                                   description="Business date to process; default: the day before the run")},
    tags=["xihu", "daily", "publish"],
    deadline=publish_deadline_alert(),  # a scheduled day not published by 06:00 Asia/Shanghai alerts
    doc_md=__doc__,
)
def xihu_friendly_daily():
    @task
    def plan() -> list[dict]:
        """The business date (one rule for every kind of run) and the run key that names this run's
        landing folders and its rows in the audit tables."""
        from ingest.dates import business_date_for, fetch_plan
        from ingest.landing import safe_fetch_id

        ctx = get_current_context()
        day = business_date_for(ctx.get("logical_date"), ctx["dag_run"].run_after, ctx["params"].get("business_date"))
        ctx["ti"].xcom_push(key="business_date", value=day.isoformat())
        ctx["ti"].xcom_push(key="run_key", value=safe_fetch_id(ctx["run_id"]))
        return fetch_plan(day)

    @task(map_index_template="{{ job['source'] }} {{ job['business_date'] }}")
    def fetch(job: dict) -> str:
        from datetime import date

        from ingest.clients import CONNECTION_IDS, PII_CONNECTION_ID, NotYetPublished, SourceError
        from ingest.clients import fetch as fetch_source
        from ingest.pii import PiiHasher

        ctx = get_current_context()
        try:
            folder = fetch_source(
                job["source"],
                date.fromisoformat(job["business_date"]),
                conn(CONNECTION_IDS[job["source"]]),
                PiiHasher(conn(PII_CONNECTION_ID).password),
                fetch_id=ctx["ti"].xcom_pull(task_ids="plan", key="run_key"),
            )
        except NotYetPublished:
            raise  # the station log appears at D+1 00:30: a retry later will find it
        except SourceError as refused:  # wrong credentials or a refused request: retrying cannot help
            raise AirflowFailException(str(refused)) from refused
        return str(folder)

    @task(pool=WRITER_POOL)
    def load(folders: list[str]) -> list[dict]:
        from ingest.load import load_many
        from ingest.settings import warehouse_path

        results = load_many(warehouse_path(), folders)
        return [{"source": r.source, "business_date": r.business_date.isoformat(), "fetched": r.fetched,
                 "loaded": r.loaded, "quarantined": r.quarantined, "by_reason": r.by_reason} for r in results]

    @task(pool=WRITER_POOL)
    def gate(stage: str) -> dict:
        from expectations.gate import GateFailed, run_gate
        from ingest.settings import warehouse_path

        ti = get_current_context()["ti"]
        day, run_key = ti.xcom_pull(task_ids="plan", key="business_date"), ti.xcom_pull(task_ids="plan", key="run_key")
        try:
            result = run_gate(stage, warehouse_path(), day, run_key)
        except GateFailed as failed:  # the data will not change by retrying: fail now, with the summary
            raise AirflowFailException(str(failed)) from failed
        return {"success": result.success, "summary": result.summary}

    transform = DbtTaskGroup(
        group_id="transform",
        project_config=PROJECT_CONFIG,
        profile_config=PROFILE_CONFIG,
        render_config=RENDER_CONFIG,
        execution_config=EXECUTION_CONFIG,
        operator_args={
            **DBT_OPERATOR_ARGS,
            "vars": {"business_date": "{{ ti.xcom_pull(task_ids='plan', key='business_date') }}"},
        },
    )
    run_consumers_after_producer(transform)

    @task(pool=WRITER_POOL, outlets=MART_ASSETS)
    def publish() -> dict:
        from ingest.settings import published_dir, warehouse_path
        from publish import publish_version, record_publication

        ti = get_current_context()["ti"]
        day, run_key = ti.xcom_pull(task_ids="plan", key="business_date"), ti.xcom_pull(task_ids="plan", key="run_key")
        manifest = publish_version(warehouse_path(), published_dir(), day, run_key)
        record_publication(warehouse_path(), manifest)
        return {"version": manifest.version, "business_date": manifest.business_date,
                "rows": {mart: meta["rows"] for mart, meta in manifest.marts.items()}}

    jobs = plan()
    landed = fetch.expand(job=jobs)
    chain(load(landed), gate.override(task_id="gate_raw")("raw"), transform,
          gate.override(task_id="gate_marts")("marts"), publish())


xihu_friendly_daily()
