"""Trivial DAGs shaped like the project's daily DAG, for the scheduler harness tests.

They use what production uses (01:30 Asia/Shanghai cron, the business date by ingest.dates, the writer
pool, ops.alerts callbacks), so the harness is proven before and independently of the pipeline's DAG.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

OK_DAG = """
import os
from datetime import timedelta
from pathlib import Path

import pendulum
from airflow.sdk import DAG, AsyncCallback, DeadlineAlert, DeadlineReference, get_current_context, task

from ingest.dates import business_date_for
from ingest.settings import WRITER_POOL
from ops.alerts import deadline_missed, task_failure_alert

with DAG(
    dag_id="harness_ok",
    schedule="30 1 * * *",
    start_date=pendulum.datetime(2026, 11, 1, tz="Asia/Shanghai"),
    catchup=False,
    default_args={"on_failure_callback": task_failure_alert, "retries": 0},
    # Missed by every run (1 s after queueing), alerting only for manual runs: the triggerer path.
    deadline=DeadlineAlert(reference=DeadlineReference.DAGRUN_QUEUED_AT, interval=timedelta(seconds=1),
                           callback=AsyncCallback(deadline_missed, kwargs={"run_types": ["manual"]})),
):
    @task(pool=WRITER_POOL)
    def write_marker():
        ctx = get_current_context()
        run = ctx["dag_run"]
        day = business_date_for(run.logical_date, run.run_after, ctx["params"].get("business_date"))
        out = Path(os.environ["XIHU_DATA_DIR"]) / "markers" / f"{day}.txt"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(run.run_id)

    write_marker()
"""

FAIL_DAG = """
import pendulum
from airflow.sdk import DAG, task

from ops.alerts import task_failure_alert

with DAG(dag_id="harness_fail", schedule=None, start_date=pendulum.datetime(2026, 11, 1, tz="Asia/Shanghai"),
         default_args={"on_failure_callback": task_failure_alert, "retries": 0}):
    @task
    def explode():
        raise RuntimeError("boom")

    explode()
"""


def write_dags(folder: Path, **sources: str) -> Path:
    folder.mkdir()
    for name, source in sources.items():
        (folder / f"{name}.py").write_text(textwrap.dedent(source))
    return folder
