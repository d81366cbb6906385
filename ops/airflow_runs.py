"""What an embedded `airflow dags test` run did, read back from its metadata database and its output.

`airflow dags test` (how `make demo` and the tests run the DAG) runs every task in one process and writes
their logs to its standard output, not to the task log files the Airflow UI reads. :func:`write_task_logs`
cuts that output at its ``[DAG TEST] starting`` / ``end task`` lines into one file per task attempt, at the
path of Airflow's default ``log_filename_template``, so `make ui` opens them. :func:`task_summary` is each task's
state, seconds and what it moved, from the metadata database (task instances and the tasks' returned
values), read-only; :func:`task_lines` prints it as the demo's one line per task, and `make bench` takes
its seconds.
"""

from __future__ import annotations

import json
import re
import sqlite3
from collections import defaultdict
from datetime import datetime
from pathlib import Path

# [DAG TEST] starting task_id=fetch map_index=5 ... / [DAG TEST] end task task_id=fetch map_index=5
_BOUNDARY = re.compile(r"\[DAG TEST\] (starting|end task) task_id=(\S+) map_index=(-?\d+)")
# The DAG's tasks in pipeline order; a task group (transform) is one line.
_ORDER = ("plan", "fetches", "fetch", "stage", "load", "gate_raw", "transform", "gate_marts", "publish", "release")


def _db(airflow_home: Path) -> sqlite3.Connection:
    return sqlite3.connect(f"file:{airflow_home / 'airflow.db'}?mode=ro", uri=True)


def newest_run_id(airflow_home: Path, dag_id: str) -> str | None:
    with _db(airflow_home) as con:
        row = con.execute("select run_id from dag_run where dag_id = ? order by id desc limit 1", [dag_id]).fetchone()
    return row[0] if row else None


def write_task_logs(output: str, airflow_home: Path, dag_id: str, run_id: str) -> int:
    """Split one `airflow dags test` output into per-attempt task log files under ``airflow_home/logs``;
    returns how many were written. A task run again in the same output (a retry) is its next attempt."""
    attempts: dict[tuple[str, int], int] = defaultdict(int)
    current: tuple[str, int] | None = None
    lines: list[str] = []
    written = 0

    def flush() -> None:
        nonlocal written
        task_id, map_index = current
        attempts[current] += 1
        folder = Path(airflow_home) / "logs" / f"dag_id={dag_id}" / f"run_id={run_id}" / f"task_id={task_id}"
        if map_index >= 0:
            folder /= f"map_index={map_index}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"attempt={attempts[current]}.log").write_text("".join(lines))
        written += 1

    for line in output.splitlines(keepends=True):
        match = _BOUNDARY.search(line)
        if match and match[1] == "starting":
            current, lines = (match[2], int(match[3])), [line]
        elif current is not None:
            lines.append(line)
            if match and (match[2], int(match[3])) == current:
                flush()
                current = None
    return written


def _seconds(start: str | None, end: str | None) -> float:
    if not (start and end):
        return 0.0
    return (datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds()


def _returned(con: sqlite3.Connection, dag_id: str, run_id: str, task_id: str):
    row = con.execute(
        "select value from xcom where dag_id = ? and run_id = ? and task_id = ? and key = 'return_value' "
        "and map_index = -1",
        [dag_id, run_id, task_id],
    ).fetchone()
    return json.loads(row[0]) if row and row[0] is not None else None


def _what(task: str, returned, count: int) -> str:
    """What a task moved, from its return value (the DAG's tasks return small summaries)."""
    if task == "fetch":
        return f"{count} partitions"
    if task == "transform":
        return f"{count} dbt tasks"
    if task == "load" and returned:
        total = {k: sum(r[k] for r in returned) for k in ("fetched", "loaded", "duplicates_removed", "quarantined")}
        return (
            f"{total['fetched']:,} fetched: {total['loaded']:,} loaded, {total['duplicates_removed']:,} duplicates, "
            f"{total['quarantined']:,} quarantined"
        )
    if task.startswith("gate_") and returned:
        return returned["summary"].split(": ", 1)[-1]
    if task == "publish" and returned:
        return f"{len(returned['rows'])} marts, {sum(returned['rows'].values()):,} rows: {returned['version']}"
    return ""


def task_summary(airflow_home: Path, dag_id: str, run_id: str) -> list[tuple[str, str, float, str]]:
    """Per task of the run in pipeline order (a mapped task and a task group as one): its name, state, wall
    seconds from its first start to its last end, and what it moved."""
    with _db(airflow_home) as con:
        rows = con.execute(
            "select task_id, state, start_date, end_date from task_instance where dag_id = ? and run_id = ?",
            [dag_id, run_id],
        ).fetchall()
        grouped: dict[str, list] = defaultdict(list)
        for task_id, state, start, end in rows:
            grouped[task_id.split(".", 1)[0]].append((state, start, end))
        summary = []
        for task in sorted(grouped, key=lambda t: _ORDER.index(t) if t in _ORDER else len(_ORDER)):
            instances = grouped[task]
            states = {s for s, _, _ in instances}
            state = "success" if states == {"success"} else "/".join(sorted(str(s) for s in states))
            starts = [s for _, s, _ in instances if s]
            ends = [e for _, _, e in instances if e]
            seconds = _seconds(min(starts, default=None), max(ends, default=None))
            summary.append((task, state, seconds, _what(task, _returned(con, dag_id, run_id, task), len(instances))))
    return summary


def task_lines(airflow_home: Path, dag_id: str, run_id: str) -> list[str]:
    """The demo's one line per task of the run (:func:`task_summary`)."""
    return [
        f"   {task:<11} {state:<8} {seconds:>6.1f} s  {what}".rstrip()
        for task, state, seconds, what in task_summary(airflow_home, dag_id, run_id)
    ]
