"""Configuration shared by the project's DAGs, built once: paths, Cosmos configs, defaults, connections.

Nothing here reads a Connection, a Variable or the network at import time (DAG parsing stays cheap and
side-effect free); connections are resolved inside tasks by :func:`conn`.
"""

from __future__ import annotations

import os
import sys
from datetime import timedelta
from pathlib import Path

from airflow.sdk import Asset
from cosmos import ExecutionConfig, ProfileConfig, ProjectConfig, RenderConfig
from cosmos.constants import ExecutionMode, InvocationMode, LoadMode

from ingest.settings import DAILY_DBT_FLAGS, WRITER_POOL
from ops.alerts import publish_deadline, task_failure_alert

PROJECT_ROOT = Path(__file__).resolve().parent.parent  # ops/ sits at the project root
DBT_PROJECT_DIR = PROJECT_ROOT / "dbt_project"
# Written by `dbt parse` (make demo, make test and the Docker build): the DAG renders one task per model from it
# without running dbt at parse time.
DBT_MANIFEST = DBT_PROJECT_DIR / "target" / "manifest.json"


# The published marts (indicators.md); each is an Airflow Asset emitted by publish.
PUBLISHED_MARTS = (
    "unit_access_daily",
    "friendly_effect",
    "friendly_event_study",
    "street_coverage_monthly",
    "station_usage_daily",
    "service_circle_daily",
    "volunteer_activity_monthly",
    "union_coverage_monthly",
    "district_daily_kpis",
    "pipeline_runs",
    # the registries the marts' keys join (models/marts/registry)
    "dim_streets",
    "dim_units",
    "dim_stations",
    "dim_volunteer_teams",
    "dim_union_orgs",
)
MART_ASSETS = [Asset(f"xihu://published/{mart}") for mart in PUBLISHED_MARTS]

DEFAULT_ARGS = {
    "owner": "xihu-data",
    "on_failure_callback": task_failure_alert,
    "retries": 3,
    "retry_delay": timedelta(seconds=30),
    "retry_exponential_backoff": True,
    "max_retry_delay": timedelta(minutes=20),
}

PROJECT_CONFIG = ProjectConfig(
    dbt_project_path=DBT_PROJECT_DIR,
    manifest_path=DBT_MANIFEST,
    install_dbt_deps=False,  # no dbt Hub packages: generic tests are macros in the project
)
PROFILE_CONFIG = ProfileConfig(
    profile_name="xihu",
    target_name="dev",
    profiles_yml_filepath=DBT_PROJECT_DIR / "profiles.yml",
)
# No Airflow Asset per dbt model: the models are built in the run's staged copy, and what readers can use
# is announced by publish, one Asset per published mart (MART_ASSETS), once the gates have passed.
RENDER_CONFIG = RenderConfig(load_method=LoadMode.DBT_MANIFEST, emit_datasets=False)
# dbt runs as a child process, not in the Airflow task's own interpreter: dbt-duckdb keeps its database
# instance open in the process that ran it, which would refuse the gate's read-only connection when tasks
# share a process (`airflow dags test`), and a child also returns dbt's memory when it ends.
# The executable is ops/dbt_child.py: dbt bound to the life of the task (no orphan keeps writing after a
# kill), holding the warehouse writer of the run named by XIHU_RUN_KEY (ingest/warehouse.py). It runs under
# the `python3` first on PATH, so dbt's environment puts this interpreter's bin first, whatever PATH the
# worker was started with (the scheduler harness, a service manager); DAG files add XIHU_RUN_KEY.
DBT_CHILD_ENV = {"PATH": os.pathsep.join(filter(None, [str(Path(sys.executable).parent), os.environ.get("PATH")]))}
EXECUTION_CONFIG = ExecutionConfig(
    execution_mode=ExecutionMode.WATCHER,
    invocation_mode=InvocationMode.SUBPROCESS,
    dbt_executable_path=str(PROJECT_ROOT / "ops" / "dbt_child.py"),
    setup_operator_args={"pool": WRITER_POOL, "retries": 1},
)
# The producer, which runs the one `dbt build`, takes the writer pool (setup_operator_args above). The
# consumers do not: on a first try a consumer only reads its model's status from the producer's XComs, so
# ~70 of them run side by side instead of one by one through the 1-slot pool (measured under the real
# scheduler: ~75 s a run queued behind each other). A retried consumer runs its own model with dbt, and
# ops/dbt_child.py takes the warehouse writer's flock for it, so writes still come one at a time.
# Consumers start after the producer (see run_consumers_after_producer) and find their model's status at
# once: deferring to the triggerer would only add a round trip per model.
DBT_OPERATOR_ARGS = {
    "install_deps": False,
    "deferrable": False,
    "dbt_cmd_flags": list(DAILY_DBT_FLAGS),
}


def publish_deadline_alert():
    """The 06:00 publication deadline, unless ``XIHU_DEADLINE_ALERTS=off``.

    The embedded mode (`make demo`, the tests) runs days with `airflow dags test`: there is no scheduler to
    watch a deadline there, and Airflow 3.3.2's `dags test` crashes when a successful run's DAG has one
    (``DagRun.update_state`` looks the SDK's DeadlineAlert objects up as database ids). So the embedded
    environment switches it off; deployments keep the default.
    """
    if os.environ.get("XIHU_DEADLINE_ALERTS", "on").lower() == "off":
        return None
    return publish_deadline()


def run_consumers_after_producer(group) -> None:
    """Put the Cosmos watcher producer upstream of the group's root model tasks.

    Cosmos does this for a DbtDag but not for a DbtTaskGroup, where the consumers sense the producer's XComs
    in parallel. Under `airflow dags test` (tasks run one by one, deferred triggers inline) a consumer that
    starts first waits forever for a producer that never gets its turn. With the producer upstream, the
    consumers find their model's status at once. ``none_failed`` keeps Cosmos' retry design: a retried
    producer skips (after restoring its XComs) and the consumers still read the statuses; a failed producer
    fails the consumers, so nothing downstream (gate, publish) runs.
    """
    producer = next(t for t in group.iter_tasks() if t.task_id.endswith("dbt_producer_watcher"))
    for root in list(group.get_roots()):
        if root is not producer:
            producer >> root
            root.trigger_rule = "none_failed"


def conn(conn_id: str):
    """An Airflow Connection as the ingest package's plain ``Conn`` (ingest never imports Airflow)."""
    from airflow.sdk import BaseHook

    from ingest.clients import Conn

    c = BaseHook.get_connection(conn_id)
    return Conn(host=c.host or "", login=c.login or "", password=c.password or "", extra=c.extra_dejson or {})
