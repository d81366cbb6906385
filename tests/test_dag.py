"""DAG integrity: every DAG file parses in a real Airflow, with the settings the demo and deployment use.

Parsing runs in a subprocess with the embedded environment and NO connection variables, so a DAG that read
a Connection or Variable at parse time would fail here instead of hiding behind a patch.
"""

import json
import subprocess
import sys

import pytest

from ops.localenv import PROJECT_ROOT, embedded_env

PARSE = r"""
import json
from airflow.dag_processing.dagbag import DagBag
bag = DagBag(dag_folder=r"{dags}")
out = {"errors": {k: str(v) for k, v in bag.import_errors.items()}, "dags": {}}
for dag_id, dag in bag.dags.items():
    out["dags"][dag_id] = {
        "tags": sorted(dag.tags), "max_active_runs": dag.max_active_runs, "doc": bool(dag.doc_md),
        "deadline": bool(dag.deadline), "params": sorted(dag.params.keys()),
        "schedule": str(getattr(dag.timetable, "expression", "")),
        "timezone": str(getattr(dag.timetable, "timezone", "")),
        "tasks": {t.task_id: {"retries": t.retries, "pool": t.pool, "upstream": sorted(t.upstream_task_ids),
                              "teardown": t.is_teardown,
                              "outlets": [str(getattr(o, "uri", o)) for o in t.outlets]}
                  for t in dag.tasks},
    }
print("PARSED" + json.dumps(out))
"""


@pytest.fixture(scope="module")
def parsed(tmp_path_factory):
    env = embedded_env(tmp_path_factory.mktemp("dagparse"))
    env = {k: v for k, v in env.items() if not k.startswith("AIRFLOW_CONN_")}
    env["XIHU_DEADLINE_ALERTS"] = "on"  # as deployed (the embedded mode switches it off)
    result = subprocess.run(
        [sys.executable, "-c", PARSE.replace("{dags}", str(PROJECT_ROOT / "dags"))],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        cwd=PROJECT_ROOT,
    )
    line = next((ln for ln in result.stdout.splitlines() if ln.startswith("PARSED")), None)
    assert line, f"DAG parsing crashed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return json.loads(line[len("PARSED") :])


def test_no_import_errors(parsed):
    assert parsed["errors"] == {}


def test_daily_dag_shape(parsed):
    dag = parsed["dags"]["xihu_friendly_daily"]
    assert dag["max_active_runs"] == 1 and dag["doc"] and dag["tags"]
    assert dag["deadline"], "no publication deadline alert"
    assert dag["schedule"] == "30 1 * * *" and "Shanghai" in dag["timezone"]
    assert {"business_date", "history_from", "history_to", "accept_replacements"} <= set(dag["params"])
    tasks = dag["tasks"]
    for name in ("plan", "fetch", "load", "gate_raw", "gate_marts", "publish"):
        assert name in tasks, f"missing task {name}"
    # The order of the stages: nothing publishes without both gates upstream of it.
    assert "gate_marts" in tasks["publish"]["upstream"]
    # gate_raw reads the staging tables dbt builds: after the transform (every dbt task upstream of it, the
    # load before those), and before gate_marts.
    dbt_leaves = {t for t in tasks["gate_raw"]["upstream"] if t.startswith("transform.")}
    assert dbt_leaves and "load" not in tasks["gate_raw"]["upstream"]
    assert "load" in tasks["transform.dbt_producer_watcher"]["upstream"]
    assert "gate_raw" in tasks["gate_marts"]["upstream"]
    # Write, audit, publish: every writer works on the copy that stage made; a failed run's is released.
    assert "stage" in tasks["load"]["upstream"] and "fetch" in tasks["stage"]["upstream"]
    assert tasks["release"]["teardown"] and {"publish", "stage"} <= set(tasks["release"]["upstream"])
    dbt_tasks = [t for t in tasks if t.startswith("transform.")]
    assert len(dbt_tasks) > 5, "Cosmos rendered no dbt model tasks"
    assert any(t.endswith("dbt_producer_watcher") for t in dbt_tasks), "dbt is not in watcher mode"


def test_every_task_retries_and_writers_share_the_pool(parsed):
    for dag_id, dag in parsed["dags"].items():
        for task_id, task in dag["tasks"].items():
            assert task["retries"] >= 1, f"{dag_id}.{task_id} has no retries"
            assert task["pool"] in {"default_pool", "duckdb_writer"}, f"{dag_id}.{task_id}: unknown pool"
    tasks = parsed["dags"]["xihu_friendly_daily"]["tasks"]
    writers = ["load", "gate_raw", "gate_marts", "publish", "transform.dbt_producer_watcher"]
    assert {tasks[t]["pool"] for t in writers} == {"duckdb_writer"}
    assert tasks["fetch"]["pool"] == "default_pool", "fetching must not hold the warehouse lock"
    # Cosmos' consumers only read the producer's statuses (a retry's dbt takes the flock in ops/dbt_child.py).
    consumers = [t for t in tasks if t.startswith("transform.") and not t.endswith(("_watcher", "_watcher_done"))]
    assert len(consumers) > 20 and {tasks[t]["pool"] for t in consumers} == {"default_pool"}


def test_publish_emits_one_asset_per_mart(parsed):
    outlets = parsed["dags"]["xihu_friendly_daily"]["tasks"]["publish"]["outlets"]
    assert "xihu://published/unit_access_daily" in outlets
    assert len(outlets) == len(set(outlets)) >= 9
