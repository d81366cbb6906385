"""
### xihu_friendly_daily — one business date of the friendly-society indicators

Runs at 01:30 Asia/Shanghai for the day that just ended (business date D, see `ingest/dates.py`).
Write, audit, publish: nothing this run writes reaches the live warehouse or readers before every check
has looked at it, and a failed run leaves both exactly as they were (`ingest/warehouse.py`).

1. **plan** — the business date, the run key and the fetches: four platforms and the stations' log for
   D and D-1 (late corrections), the union export for D.
2. **fetch** — one mapped task per (source, date): HTTP to landing files, PII hashed before disk.
3. **stage** — takes the warehouse writer for this run (queuing behind another run) and copies the live
   warehouse; every later step writes only that copy. A run for an older day than the newest published
   one is a correction: the marts are rebuilt and published as of the newest date.
4. **load** — landing to the staged `raw.*`, replacing whole (source, date) partitions; quarantine with
   reasons; a replacement that moves a loaded day beyond the correction band is refused.
5. **transform** — dbt (Cosmos watcher mode: one `dbt build`, one task per model) on the staged copy.
6. **gate_raw** — Great Expectations on what staging parsed of the raw data (the `stg_*` tables, so the
   gates never read the payload's JSON a second way; the load audit): a critical failure stops the run
   here. It runs after transform because dbt builds the staging tables; that is still
   write-audit-publish, since dbt wrote only the staged copy and nothing is published before both gates.
7. **gate_marts** — Great Expectations on the marts as of their date, and published days may move only
   within the correction band.
8. **publish** — a new read-only version; its publication recorded, the staged copy promoted to live,
   then `current` switched forward; emits one Airflow Asset per mart.
9. **release** (teardown) — a failed run's staged copy is discarded, its check results kept.

Params: `business_date` (`YYYY-MM-DD`) runs a given day; `accept_replacements` lets a run replace
loaded days beyond the correction band, after an operator has checked the source.

**History run** (params `history_from`, `history_to`, at most 400 days, not with `business_date`): how a
new district onboards its history, and how `make demo` starts. The same write-audit-publish path as a
daily run, once for the whole range: every platform and the stations' log for every date of the range,
the union's member export at each month end in the range and at `history_to`, its organisations at
`history_to` (`ingest.dates.history_plan`); one load, one dbt build with `loaded_from` = `history_from`
(the incremental models rebuild the whole range), one publication as of `history_to`. The raw gate
checks `history_to` with every raw suite, as a daily run checks its day; the range's other dates are
checked as they load (fetched = loaded + duplicates + quarantined, the correction band against a loaded
partition) and by the marts gate as of `history_to` (the union export exists only on its dates, so the
raw suites cannot run on every date as they stand).

Mapping: one fetch instance per (source, date), as in a daily run, so a failed or retried fetch is one
partition, the map index names it, and Celery workers share the range. Measured under `airflow dags test`
on the 2-core machine (make demo, scale 0.02, 70 days = 352 instances): 6 min of fetch at load ~10, ~1.0 s
an instance, of which ~0.3 s is Airflow's (start, rendering, XCom push) and the rest the sandbox making
and serving the day; on a quiet machine ~0.25 s an instance. Chunking dates per source would save at most
that overhead (~2 min loaded, ~1 min quiet) and lose the per-partition retries.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pendulum
from airflow.sdk import Param, chain, dag, get_current_context, task
from airflow.sdk.exceptions import AirflowFailException
from cosmos import DbtTaskGroup

from ingest.settings import apply_data_umask, dbt_run_env, dbt_vars
from ops.dag_config import (
    DBT_CHILD_ENV,
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

log = logging.getLogger(__name__)


def whole(mapped) -> list:
    """A mapped task's results in one request: iterating Airflow's lazy sequence asks for them one by one
    and logs an ``[error] XCom not found`` for the index past the end."""
    return list(mapped[:])


# every task process (and the dbt children it starts) writes the data root under umask 0o027
apply_data_umask()


@dag(
    dag_id="xihu_friendly_daily",
    schedule="30 1 * * *",
    start_date=pendulum.datetime(2026, 1, 1, tz="Asia/Shanghai"),
    catchup=False,
    max_active_runs=1,
    default_args=DEFAULT_ARGS,
    params={
        "business_date": Param(
            None,
            type=["null", "string"],
            format="date",
            description="Business date to process; default: the day before the run",
        ),
        "history_from": Param(
            None,
            type=["null", "string"],
            format="date",
            description="First date of a history run (with history_to; not with business_date)",
        ),
        "history_to": Param(
            None,
            type=["null", "string"],
            format="date",
            description="Last date of a history run, its as-of date (at most 400 days)",
        ),
        "accept_replacements": Param(
            False,
            type="boolean",
            description="Replace loaded days even beyond the correction band "
            "(XIHU_CORRECTION_BAND), after checking the source",
        ),
    },
    tags=["xihu", "daily", "publish"],
    deadline=publish_deadline_alert(),  # a scheduled day not published by 06:00 Asia/Shanghai alerts
    doc_md=__doc__,
)
def xihu_friendly_daily():
    @task(multiple_outputs=True)
    def plan() -> dict:
        """The business date (one rule for every kind of run; ``history_to`` for a history run), the
        oldest date the run loads (``loaded_from``, dbt's start of the rebuilt dates), the run key that
        names this run's landing folders, audit rows and staged warehouse, and whether it is a history
        run."""
        from ingest.dates import business_date_for, history_dates
        from ingest.landing import safe_fetch_id

        ctx = get_current_context()
        params = ctx["params"]
        try:
            history = history_dates(params.get("history_from"), params.get("history_to"), params.get("business_date"))
        except ValueError as refused:  # a bad range is the caller's: no retry can fix it
            raise AirflowFailException(f"refused params: {refused}") from refused
        if history:
            first, day = history[0], history[-1]
        else:
            first = day = business_date_for(
                ctx.get("logical_date"), ctx["dag_run"].run_after, params.get("business_date")
            )
        return {
            "business_date": day.isoformat(),
            "loaded_from": first.isoformat(),
            "run_key": safe_fetch_id(ctx["run_id"]),
            "history": bool(history),
        }

    @task
    def fetches(business_date: str, loaded_from: str, history: bool) -> list[dict]:
        """One fetch per (source, date), from the plan: Airflow maps only over a task's whole return value."""
        from datetime import date

        from ingest.dates import fetch_plan, history_dates, history_plan

        return (
            history_plan(history_dates(loaded_from, business_date))
            if history
            else fetch_plan(date.fromisoformat(business_date))
        )

    @task(map_index_template="{{ job['source'] }} {{ job['business_date'] }}")
    def fetch(job: dict, run_key: str) -> str:
        from datetime import date

        from ingest.clients import CONNECTION_IDS, PII_CONNECTION_ID, NotYetPublished, SourceError
        from ingest.clients import fetch as fetch_source
        from ingest.landing import LandingRejected
        from ingest.pii import PiiHasher

        try:
            pii = PiiHasher(conn(PII_CONNECTION_ID).password)
        except ValueError as refused:  # no key, a short or the public demo key: configuration, not luck
            raise AirflowFailException(str(refused)) from refused

        def land(fetch_id: str) -> str:
            return str(
                fetch_source(
                    job["source"],
                    date.fromisoformat(job["business_date"]),
                    conn(CONNECTION_IDS[job["source"]]),
                    pii,
                    fetch_id=fetch_id,
                )
            )

        try:
            try:
                folder = land(run_key)
            except LandingRejected:  # this run was blocked and is being run again (cleared): fetch anew
                try_number = get_current_context()["ti"].try_number
                log.warning(
                    "%s %s: this run's landing was rejected by a gate; fetching it again as try %s",
                    job["source"],
                    job["business_date"],
                    try_number,
                )
                folder = land(f"{run_key}-try{try_number}")
        except NotYetPublished:
            raise  # the station log appears at D+1 00:30: a retry later will find it
        except SourceError as refused:  # wrong credentials or a refused request: retrying cannot help
            raise AirflowFailException(str(refused)) from refused
        return folder

    @task(multiple_outputs=True)  # no pool: it queues for the writer itself; the slot is the holder's
    def stage(business_date: str, run_key: str) -> dict:
        """Take the writer, copy the live warehouse, and clear what interrupted runs left behind: a
        publication between its folder and its switch, unfinished builds, old landing folders.

        Decides, once the writer is this run's (a run queued behind another sees what that one published),
        the date the marts are built and published as of: the run's day, or the newest published day when
        that is later (the run corrects history; ``current`` never moves back); and the name of the version
        it will publish, recorded in the copy as intended, so the ``pipeline_runs`` mart dbt builds shows
        this run published in it. A run that fails discards the copy and the intention with it.
        """
        from ingest import warehouse
        from ingest.landing import prune_landing
        from ingest.settings import landing_dir, landing_keep_days, published_dir
        from publish.publisher import (
            newest_business_date,
            record_intended_publication,
            recorded_versions,
            recover,
            version_name,
        )
        from publish.verify import verify_published

        warehouse.stage(run_key)
        settled = recover(published_dir(), lambda v: v in recorded_versions(warehouse.live_path()))
        if settled:
            log.warning("%s", settled)
        verified = verify_published(published_dir())  # a version whose files changed is withdrawn (publish/verify.py)
        (log.warning if verified.damaged else log.info)("%s", verified.summary())
        pruned = prune_landing(landing_dir(), pendulum.now("UTC"), landing_keep_days())
        if pruned:
            log.info("landing retention: %d old fetch folders deleted", len(pruned))
        newest = newest_business_date(published_dir())
        as_of = max(business_date, newest or "")
        if as_of != business_date:
            log.info(
                "%s is older than the newest published day %s: a correction, published as of %s",
                business_date,
                newest,
                as_of,
            )
        started = get_current_context()["dag_run"].start_date or pendulum.now("UTC")
        version = version_name(started, as_of, run_key)  # from the run's start: a retried stage names the same
        with warehouse.writing(run_key) as staged:
            record_intended_publication(staged, run_key, as_of, version)
        return {"as_of": as_of, "version": version}

    @task(pool=WRITER_POOL)
    def load(folders: list[str], run_key: str) -> list[dict]:
        from ingest import warehouse
        from ingest.load import load_many

        accept = bool(get_current_context()["params"].get("accept_replacements"))
        with warehouse.writing(run_key) as staged:
            results = load_many(staged, whole(folders), run_id=run_key, accept_replacements=accept)
        for folder, r in zip(whole(folders), results, strict=True):
            if r.verdict == "refused":
                from ingest.corrections import WHAT_TO_DO
                from ingest.landing import mark_rejected

                mark_rejected(Path(folder), f"replacement outside the correction band: {r.change}")
                log.warning(
                    "refused to replace %s %s: %s. The loaded partition stays. %s",
                    r.source,
                    r.business_date,
                    r.change,
                    WHAT_TO_DO,
                )
            elif r.verdict in ("repaired", "accepted"):
                log.warning("%s %s %s: %s", r.source, r.business_date, r.verdict, r.change)
        return [
            {
                "source": r.source,
                "business_date": r.business_date.isoformat(),
                "fetched": r.fetched,
                "loaded": r.loaded,
                "duplicates_removed": r.duplicates_removed,
                "quarantined": r.quarantined,
                "by_reason": r.by_reason,
                "verdict": r.verdict,
            }
            for r in results
        ]

    @task(pool=WRITER_POOL)
    def gate(stage: str, business_date: str, run_key: str, folders: list[str] | None = None) -> dict:
        from expectations.gate import GateFailed, run_gate
        from ingest import warehouse
        from ingest.corrections import CorrectionRefused, audit_published_days
        from ingest.landing import mark_rejected

        with warehouse.writing(run_key) as staged:
            try:
                result = run_gate(stage, staged, business_date, run_key)
                if stage == "marts":
                    audit_published_days(staged, warehouse.live_path(), business_date, run_key)
            except (GateFailed, CorrectionRefused) as failed:  # retrying cannot change the data: fail now
                for folder in whole(folders or ()):  # a blocked day's landings are never reused by a later run
                    mark_rejected(Path(folder), f"gate {stage} blocked run {run_key}")
                raise AirflowFailException(str(failed)) from failed
        return {"success": result.success, "summary": result.summary}

    @task(pool=WRITER_POOL, outlets=MART_ASSETS)
    def publish(as_of: str, run_key: str, loads: list[dict], version: str) -> dict:
        from ingest import warehouse
        from ingest.settings import published_dir
        from publish import publish_version, record_publication

        # Older days this version changes: re-pulled, corrected or backfilled (anything loaded but the as-of day).
        corrected = sorted({r["business_date"] for r in loads if r["verdict"] != "refused"} - {as_of})
        with warehouse.writing(run_key) as staged:

            def commit(manifest):  # recorded in the copy, the copy made live, and only then current switched
                record_publication(staged, manifest)
                warehouse.promote(run_key)

            manifest = publish_version(
                staged,
                published_dir(),
                as_of,
                run_key,
                corrected_dates=corrected,
                before_switch=commit,
                version=version,
            )
        return {
            "version": manifest.version,
            "business_date": manifest.business_date,
            "corrected_dates": manifest.corrected_dates,
            "rows": {mart: meta["rows"] for mart, meta in manifest.marts.items()},
        }

    @task
    def release(run_key: str) -> None:
        from ingest import warehouse

        if warehouse.release(run_key):
            log.warning(
                "run %s did not publish: its staged warehouse was discarded, the live one is unchanged", run_key
            )

    run = plan()
    landed = fetch.partial(run_key=run["run_key"]).expand(
        job=fetches(run["business_date"], run["loaded_from"], run["history"])
    )
    staged = stage(run["business_date"], run["run_key"])  # the as-of date and the version's name
    loads = load(landed, run["run_key"])
    transform = DbtTaskGroup(
        group_id="transform",
        project_config=PROJECT_CONFIG,
        profile_config=PROFILE_CONFIG,
        render_config=RENDER_CONFIG,
        execution_config=EXECUTION_CONFIG,
        operator_args={
            **DBT_OPERATOR_ARGS,
            # The run's values as templates, not TaskFlow arguments: an argument from `stage` would make every
            # model task its direct downstream, and a setup task's direct downstreams must have the
            # all_success rule, which the consumers cannot keep (run_consumers_after_producer).
            # ops/dbt_child.py writes the staged copy that this run holds. The dates go in the environment,
            # not in --vars, so that dbt keeps its partial parse from the day before (dbt_run_env).
            "env": {
                **DBT_CHILD_ENV,
                "XIHU_RUN_KEY": "{{ ti.xcom_pull(task_ids='plan', key='run_key') }}",
                **dbt_run_env(
                    business_date="{{ ti.xcom_pull(task_ids='stage', key='as_of') }}",
                    loaded_from="{{ ti.xcom_pull(task_ids='plan', key='loaded_from') }}",
                ),
            },
            # K from XIHU_K_ANON, read where the task runs (the DAG file is parsed again there), as the gate
            # reads it: one K for what dbt suppresses and what the marts gate recounts.
            "vars": dbt_vars(),
        },
    )
    run_consumers_after_producer(transform)
    gate_raw = gate.override(task_id="gate_raw")("raw", run["business_date"], run["run_key"], landed)
    # The marts are checked as of the date they are built as of (a correction's changes to older days are
    # the published-days audit's to judge).
    gate_marts = gate.override(task_id="gate_marts")("marts", staged["as_of"], run["run_key"])
    published = publish(staged["as_of"], run["run_key"], loads, staged["version"])
    # gate_raw reads the staging tables the transform builds (docstring, step 6): after it, before gate_marts.
    chain(landed, staged, loads, transform, gate_raw, gate_marts, published)
    published >> release(run["run_key"]).as_teardown(setups=staged)


xihu_friendly_daily()
