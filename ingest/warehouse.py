"""The working warehouse and a run's staged copy: write, audit, publish; one writer at a time.

A run never writes the live warehouse. Its first writer step *stages* it: copies the live file to
``warehouse/staged/xihu.duckdb`` and takes the lease on that copy. Load, the gates and dbt write the copy;
publish promotes it (one ``os.replace``: the live warehouse is the old file or the new one, never a mix)
and only then switches ``current``. A run that fails, or is killed, leaves the live warehouse exactly as it
was; its copy is discarded by its teardown, or by the next run that finds it abandoned.

Under ``$XIHU_DATA_DIR/warehouse/``::

    xihu.duckdb          live: what the last published run built
    staged/xihu.duckdb   the copy the lease holder writes
    staged/lease.json    who holds it: run, host, pid, when staged, last sign of life
    writer.lock          flock held by the one process writing right now; its text names that process

Two locks, because two things must be serialised:

- **The lease** serialises runs: a backfill, a manual trigger and the daily run each stage, write, audit and
  publish in turn, so no run publishes on top of a copy another run has moved past. A run that finds the
  lease held waits (logging ``waiting for the writer held by run X``) until the holder publishes or fails.
  A lease is abandoned, and taken over, when its run shows no sign of life for
  ``XIHU_WRITER_STALE_SECONDS``, or at once when it ran inside an ``airflow dags test`` process that no
  longer exists (that process ran the whole run, so the run is dead).
- **The flock** serialises processes: every step that opens the copy for writing holds it for its
  duration (the kernel drops it when the process dies, so a killed task never leaves it held). dbt takes it
  in its own wrapper process (``ops/dbt_child.py``), which dies with the task that started it.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from ingest import settings
from ingest.files import fsync_path

log = logging.getLogger(__name__)

STAGED_DIR = "staged"
LEASE = "lease.json"
LOCK = "writer.lock"
DBT_DIRS = "dbt_dirs.txt"  # Cosmos' temporary project copies of the lease holder's dbt runs
HEARTBEAT_S = 30
WAIT_LOG_EVERY_S = 60


class WriterUnavailable(RuntimeError):
    """The run cannot write: it lost the lease to another run, or waited longer than it may."""


def live_path() -> Path:
    return settings.warehouse_path()


def staged_dir() -> Path:
    return live_path().parent / STAGED_DIR


def staged_path() -> Path:
    return staged_dir() / live_path().name


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def in_one_process_run() -> bool:
    """True inside ``airflow dags test``, which runs every task of the run in this one process."""
    return sys.argv[1:3] == ["dags", "test"]


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@dataclass(frozen=True)
class Lease:
    run_id: str
    host: str
    pid: int
    one_process: bool
    staged_at: str
    alive_at: str

    @classmethod
    def read(cls) -> Lease | None:
        try:
            return cls(**json.loads((staged_dir() / LEASE).read_text(encoding="utf-8")))
        except FileNotFoundError:
            return None

    def write(self) -> None:
        tmp = staged_dir() / f".{LEASE}.{os.getpid()}"
        tmp.write_text(json.dumps(self.__dict__), encoding="utf-8")
        os.replace(tmp, staged_dir() / LEASE)

    def abandoned(self) -> str | None:
        """Why this lease's run is dead, or None while it may still be running."""
        if self.one_process and self.host == socket.gethostname() and not _pid_alive(self.pid):
            return f"its `airflow dags test` process {self.pid} is gone"
        idle = (datetime.now(UTC) - datetime.fromisoformat(self.alive_at)).total_seconds()
        if idle > settings.writer_stale_seconds():
            return f"no sign of life for {idle:.0f} s (XIHU_WRITER_STALE_SECONDS={settings.writer_stale_seconds()})"
        return None


# ------------------------------------------------------------------------------------------ the flock


@contextlib.contextmanager
def process_lock(who: str) -> Iterator[int]:
    """Hold ``writer.lock`` (blocking; logs who holds it while waiting). Yields the lock's fd."""
    lock_path = live_path().parent / LOCK
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        waited, last_log = 0.0, -WAIT_LOG_EVERY_S
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if waited - last_log >= WAIT_LOG_EVERY_S:
                    holder = os.pread(fd, 4096, 0).decode(errors="replace").strip() or "another process"
                    log.warning("waiting for the warehouse writer held by %s", holder)
                    last_log = waited
                if waited > settings.writer_wait_seconds():
                    raise WriterUnavailable(f"waited {waited:.0f} s for the warehouse writer; giving up") from None
                time.sleep(0.5)
                waited += 0.5
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{who} (pid {os.getpid()} on {socket.gethostname()}, since {_now()})".encode(), 0)
        yield fd
    finally:
        os.close(fd)  # closing the only descriptor releases the flock


# ------------------------------------------------------------------------------------------ the lease


def _heartbeat(lease: Lease, stop: threading.Event) -> None:
    while not stop.wait(HEARTBEAT_S):
        try:
            current = Lease.read()
            if current is None or current.run_id != lease.run_id:
                return
            Lease(**{**current.__dict__, "alive_at": _now()}).write()
        except OSError:  # promoted or discarded meanwhile: nothing left to keep alive
            return


@contextlib.contextmanager
def writing(run_id: str) -> Iterator[Path]:
    """The staged copy of ``run_id``'s lease, held for writing: flock, lease check, heartbeat."""
    with process_lock(f"run {run_id}"):
        lease = Lease.read()
        if lease is None or lease.run_id != run_id:
            held = f"held by run {lease.run_id}" if lease else "released"
            raise WriterUnavailable(
                f"run {run_id} no longer holds the staged warehouse ({held}): it was abandoned and taken "
                f"over, or discarded after a failure. Re-run the business date."
            )
        # Only the sign of life: the pid stays the stager's, the process an `airflow dags test` run lives
        # in (dbt's wrapper, a child that ends before the run does, writes here too).
        lease = Lease(**{**lease.__dict__, "alive_at": _now()})
        lease.write()
        stop = threading.Event()
        beat = threading.Thread(target=_heartbeat, args=(lease, stop), daemon=True)
        beat.start()
        try:
            yield staged_path()
        finally:
            stop.set()
            beat.join()


def stage(run_id: str) -> Path:
    """Take the lease for ``run_id`` (waiting for another run to finish) and copy the live warehouse.

    A retried stage of the same run stages afresh. Leftovers of abandoned runs (their copy, their dbt
    temporary folders, unfinished publication folders) are removed here, before anything is written.
    """
    waited, last_log = 0.0, -WAIT_LOG_EVERY_S
    while True:
        with process_lock(f"run {run_id} (staging)"):
            lease = Lease.read()
            why = lease.abandoned() if lease is not None and lease.run_id != run_id else None
            if lease is None or lease.run_id == run_id or why:
                if why:
                    log.warning("taking over the staged warehouse of run %s: %s", lease.run_id, why)
                _discard_staged()
                _copy_live()
                Lease(run_id, socket.gethostname(), os.getpid(), in_one_process_run(), _now(), _now()).write()
                log.info("staged the warehouse for run %s (%s)", run_id, _size(staged_path()))
                return staged_path()
        if waited - last_log >= WAIT_LOG_EVERY_S:
            log.warning(
                "waiting for the writer held by run %s (staged %s, last alive %s)",
                lease.run_id,
                lease.staged_at,
                lease.alive_at,
            )
            last_log = waited
        if waited > settings.writer_wait_seconds():
            raise WriterUnavailable(
                f"run {lease.run_id} has held the warehouse writer for over "
                f"{settings.writer_wait_seconds()} s; run {run_id} gives up"
            )
        time.sleep(2.0)
        waited += 2.0


def promote(run_id: str) -> None:
    """Make ``run_id``'s staged copy the live warehouse (atomic rename) and release the lease.

    The caller holds :func:`writing` for ``run_id`` and has checkpointed every connection it closed.
    """
    staged = staged_path()
    fsync_path(staged)
    os.replace(staged, live_path())
    fsync_path(live_path().parent)
    _discard_staged()


def release(run_id: str) -> bool:
    """Discard ``run_id``'s staged copy and lease (a failed run's teardown). False when it holds none.

    What the run's checks found is kept: its rows of the ``audit`` tables are copied into the live
    warehouse first, so a blocked day says why (``pipeline_runs``, the demo's summary) while its data
    never reaches the live warehouse.
    """
    with process_lock(f"run {run_id} (release)"):
        lease = Lease.read()
        if lease is None or lease.run_id != run_id:
            return False
        if staged_path().exists():
            _keep_audit(run_id)
        _discard_staged()
        return True


# Audit tables that record a run's checks (not data): kept from a failed run's copy.
KEPT_AUDIT = ("gate_results", "partition_audit")


def _keep_audit(run_id: str) -> None:
    import duckdb

    with duckdb.connect(str(live_path())) as con:
        con.execute(f"attach '{staged_path()}' as staged (read_only)")
        con.execute("create schema if not exists audit")
        present = {
            t
            for (t,) in con.execute(
                "select table_name from duckdb_tables() where database_name = 'staged' and schema_name = 'audit'"
            ).fetchall()
        }
        for table in (t for t in KEPT_AUDIT if t in present):
            con.execute(f"create table if not exists audit.{table} as from staged.audit.{table} limit 0")
            con.execute(f"delete from audit.{table} where run_id = ?", [run_id])
            con.execute(f"insert into audit.{table} by name from staged.audit.{table} where run_id = ?", [run_id])
        con.execute("detach staged")
        con.execute("checkpoint")


def _discard_staged() -> None:
    folder = staged_dir()
    dbt_dirs = folder / DBT_DIRS
    if dbt_dirs.exists():
        for line in dbt_dirs.read_text(encoding="utf-8").splitlines():
            if line.strip():
                shutil.rmtree(line.strip(), ignore_errors=True)
    shutil.rmtree(folder, ignore_errors=True)


def note_dbt_dir(path: Path) -> None:
    """Remember a temporary dbt project folder, so that the run's end (or the next run) removes it."""
    with (staged_dir() / DBT_DIRS).open("a", encoding="utf-8") as f:
        f.write(f"{path}\n")


def _copy_live() -> None:
    folder = staged_dir()
    folder.mkdir(parents=True)
    live = live_path()
    if not live.exists():
        return
    wal = live.with_name(live.name + ".wal")
    if wal.exists():  # a crash of an older writer: let DuckDB replay it into the live file first
        import duckdb

        with duckdb.connect(str(live)) as con:
            con.execute("checkpoint")
    # A reflink (copy-on-write) where the filesystem has them, a plain copy elsewhere.
    subprocess.run(["cp", "--reflink=auto", str(live), str(staged_path())], check=True)


def _size(path: Path) -> str:
    return f"{path.stat().st_size / 2**20:.1f} MiB" if path.exists() else "empty"
