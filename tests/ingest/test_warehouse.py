"""The staged warehouse: a run writes a copy, promotes it whole or leaves the live file untouched; one
writer at a time across processes; abandoned copies are taken over; dbt dies with its task."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta

import duckdb
import pytest

from ingest import warehouse
from ops.localenv import PROJECT_ROOT


@pytest.fixture
def data(tmp_path, monkeypatch):
    monkeypatch.setenv("XIHU_DATA_DIR", str(tmp_path))
    live = warehouse.live_path()
    live.parent.mkdir(parents=True)
    with duckdb.connect(str(live)) as con:
        con.execute("create schema raw; create table raw.t as select 1 as x")
    return tmp_path


def _rows(path, sql="select x from raw.t order by x"):
    with duckdb.connect(str(path), read_only=True) as con:
        return con.execute(sql).fetchall()


def test_a_run_writes_its_copy_and_promotes_it_whole(data):
    staged = warehouse.stage("run-a")
    assert staged != warehouse.live_path() and _rows(staged) == [(1,)]
    with warehouse.writing("run-a") as path, duckdb.connect(str(path)) as con:
        con.execute("insert into raw.t values (2)")
    assert _rows(warehouse.live_path()) == [(1,)], "the live warehouse changed before publish"
    with warehouse.writing("run-a"):
        warehouse.promote("run-a")
    assert _rows(warehouse.live_path()) == [(1,), (2,)]
    assert not warehouse.staged_dir().exists() and warehouse.Lease.read() is None


def test_a_failed_run_leaves_the_live_file_and_keeps_its_check_results(data):
    warehouse.stage("run-b")
    with warehouse.writing("run-b") as path, duckdb.connect(str(path)) as con:
        con.execute("insert into raw.t values (3)")
        con.execute(
            "create schema audit; create table audit.gate_results as "
            "select 'run-b' as run_id, false as success union all select 'other', true"
        )
    assert warehouse.release("run-b")
    assert _rows(warehouse.live_path()) == [(1,)]
    assert _rows(warehouse.live_path(), "select run_id, success from audit.gate_results") == [("run-b", False)]
    assert not warehouse.staged_dir().exists()
    assert not warehouse.release("run-b"), "a second release has nothing to discard"


def test_a_step_of_a_run_that_lost_its_lease_fails_clearly(data):
    warehouse.stage("run-a")
    with pytest.raises(warehouse.WriterUnavailable, match="held by run run-a"), warehouse.writing("run-z"):
        pass


def _lease(**fields):
    lease = warehouse.Lease(**{**warehouse.Lease.read().__dict__, **fields})
    lease.write()


def test_an_abandoned_copy_is_taken_over(data, caplog):
    warehouse.stage("run-dead")
    # Its `airflow dags test` process is gone: taken over at once.
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    _lease(one_process=True, pid=dead.pid)
    warehouse.stage("run-next")
    assert warehouse.Lease.read().run_id == "run-next"
    assert "taking over the staged warehouse of run run-dead" in caplog.text
    # A run in a scheduler (a process per task) is abandoned only after XIHU_WRITER_STALE_SECONDS.
    _lease(
        run_id="run-quiet",
        one_process=False,
        alive_at=(datetime.now(UTC) - timedelta(hours=1)).isoformat(timespec="seconds"),
    )
    warehouse.stage("run-after")
    assert warehouse.Lease.read().run_id == "run-after"


WAITER = """
import logging, sys, time
logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stdout)
from ingest import warehouse
start = time.monotonic()
warehouse.stage("run-second")
print(f"STAGED after {time.monotonic() - start:.1f}", flush=True)
"""


def test_a_second_run_queues_behind_the_first(data):
    warehouse.stage("run-first")
    env = {**os.environ, "XIHU_DATA_DIR": str(data), "PYTHONPATH": str(PROJECT_ROOT)}
    waiter = subprocess.Popen([sys.executable, "-c", WAITER], env=env, stdout=subprocess.PIPE, text=True)
    try:
        first_line = waiter.stdout.readline()
        assert "waiting for the writer held by run run-first" in first_line
        time.sleep(3)
        assert waiter.poll() is None, "the second run did not wait"
        with warehouse.writing("run-first"):
            warehouse.promote("run-first")
        out, _ = waiter.communicate(timeout=60)
        assert "STAGED after" in out and waiter.returncode == 0
        assert warehouse.Lease.read().run_id == "run-second"
    finally:
        waiter.kill()


def test_the_flock_names_its_holder_and_is_released_by_a_killed_process(data):
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from ingest import warehouse; import time\n"
            "with warehouse.process_lock('run-k'):\n print('HELD', flush=True); time.sleep(600)",
        ],
        env={**os.environ, "XIHU_DATA_DIR": str(data), "PYTHONPATH": str(PROJECT_ROOT)},
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout.readline().strip() == "HELD"
    assert "run-k (pid" in (warehouse.live_path().parent / warehouse.LOCK).read_text()
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    with warehouse.process_lock("run-l"):
        pass


CHILD_OF_DEAD_PARENT = """
import subprocess, sys
sys.path.insert(0, {root!r})
from ops.dbt_child import die_with_parent
child = subprocess.Popen(["sleep", "300"], preexec_fn=die_with_parent, start_new_session=True)
print(child.pid, flush=True)
child.wait()
"""


def test_a_child_started_like_dbt_dies_with_its_task(tmp_path):
    """Cosmos starts dbt in its own session; killing the task's process group used to leave it running."""
    parent = subprocess.Popen(
        [sys.executable, "-c", CHILD_OF_DEAD_PARENT.format(root=str(PROJECT_ROOT))],
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    child_pid = int(parent.stdout.readline())
    os.killpg(parent.pid, signal.SIGKILL)
    parent.wait()
    for _ in range(100):
        try:
            os.kill(child_pid, 0)
        except ProcessLookupError:
            return
        if open(f"/proc/{child_pid}/stat").read().split()[2] == "Z":  # a zombie is dead, not yet reaped
            return
        time.sleep(0.05)
    os.kill(child_pid, signal.SIGKILL)
    pytest.fail("the child outlived its parent")


def test_lease_file_is_plain_json(data):
    warehouse.stage("run-j")
    lease = json.loads((warehouse.staged_dir() / warehouse.LEASE).read_text())
    assert lease["run_id"] == "run-j" and lease["pid"] == os.getpid() and lease["one_process"] is False


def test_a_writer_in_a_child_process_does_not_make_the_run_look_dead(data):
    """dbt's wrapper writes for the run and exits; the run (an `airflow dags test` process) lives on."""
    warehouse.stage("run-w")
    _lease(one_process=True)
    env = {**os.environ, "XIHU_DATA_DIR": str(data), "PYTHONPATH": str(PROJECT_ROOT)}
    subprocess.run(
        [sys.executable, "-c", "from ingest import warehouse\nwith warehouse.writing('run-w'): pass"],
        env=env,
        check=True,
    )
    assert warehouse.Lease.read().abandoned() is None
    assert warehouse.Lease.read().pid == os.getpid()
