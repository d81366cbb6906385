"""History a bad day cannot damage: the real DAG under `airflow dags test`, faults injected, against a clean
run of the same dates (`make test-faults`; CI runs it after `make test`, it takes minutes).

Every scenario starts from a copy of the clean world after its first day (data root and Airflow metadata)
and ends comparing the *published history* with the clean run's: a hash per mart and per date of the
version `current` serves. `pipeline_runs` is left out (it records the runs themselves, which differ by
construction), and so are `district_daily_kpis`' per-source load counts of a day whose union export or
station file a faulted run never loaded (they describe the runs that loaded the day, not the day).

Each scenario's time goes to `fault_matrix.json` under the module's temporary folder, for the issue note.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import threading
import time
from datetime import date
from pathlib import Path

import duckdb
import pytest
import requests

from ingest.dates import run_time_for
from ops.demo import DAG_ID, sandbox
from ops.localenv import PROJECT_ROOT, VENV_BIN, embedded_env, init_airflow
from tests.requires import needs_chromium

pytestmark = [pytest.mark.slow, pytest.mark.faults, needs_chromium]

SEED, SCALE = 11, 0.01
D1, D2, D3, D4 = (date(2026, 11, d) for d in (16, 17, 18, 19))
TIMES: dict[str, float] = {}


class World:
    """One data root with its embedded Airflow, driven like an operator would."""

    def __init__(self, root: Path, base_url: str):
        self.root, self.base_url = root, base_url
        self.env = {**embedded_env(root, base_url), "XIHU_WRITER_STALE_SECONDS": "1800"}

    def start(self, day: date, conf: dict | None = None) -> subprocess.Popen:
        cmd = [str(VENV_BIN / "airflow"), "dags", "test", DAG_ID, run_time_for(day).isoformat()]
        if conf:
            cmd += ["--conf", json.dumps(conf)]
        log = (self.root / f"run-{day}-{time.monotonic_ns()}.log").open("w")
        return subprocess.Popen(
            cmd,
            env=self.env,
            cwd=PROJECT_ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        ), log

    def run(self, day: date, conf: dict | None = None) -> bool:
        proc, log = self.start(day, conf)
        with log:
            for line in proc.stdout:
                log.write(line)
        return proc.wait() == 0

    def run_killed_at(self, day: date, task_id: str, delay: float) -> None:
        """Start the day's run and SIGKILL its whole process group once ``task_id`` has run ``delay`` s."""
        proc, log = self.start(day)
        started = threading.Event()

        def pump():
            with log:
                for line in proc.stdout:
                    log.write(line)
                    if f"[DAG TEST] starting task_id={task_id} " in line:
                        started.set()

        reader = threading.Thread(target=pump, daemon=True)
        reader.start()
        assert started.wait(300), f"{task_id} never started"
        time.sleep(delay)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        reader.join(10)

    def copy(self, to: Path) -> World:
        shutil.copytree(self.root, to, symlinks=True)
        return World(to, self.base_url)

    def current(self) -> str:
        return (self.root / "published" / "current").resolve().name

    def manifest(self) -> dict:
        return json.loads((self.root / "published" / "current" / "manifest.json").read_text())

    def live_hash(self) -> str:
        """Every raw partition and every mart of the live warehouse, as one digest."""
        con = duckdb.connect(str(self.root / "warehouse" / "xihu.duckdb"), read_only=True)
        try:
            tables = con.execute(
                "select schema_name, table_name from duckdb_tables() where schema_name in "
                "('raw', 'marts') and table_name <> 'load_audit' order by 1, 2"
            ).fetchall()
            digest = hashlib.sha256()
            for schema, table in tables:
                cols = [
                    c
                    for (c,) in con.execute(
                        "select column_name from duckdb_columns() where schema_name = ? and table_name = ? and "
                        "column_name not in ('loaded_at', 'quarantined_at') order by column_index",
                        [schema, table],
                    ).fetchall()
                ]
                rows = con.execute(f'select {_quoted(cols)} from {schema}."{table}"').fetchall()
                digest.update(f"{schema}.{table}".encode())
                digest.update("\n".join(sorted(map(repr, rows))).encode())
            return digest.hexdigest()
        finally:
            con.close()


def _quoted(columns: list[str]) -> str:
    return ", ".join(f'"{c}"' for c in columns)


RUN_COLUMNS = re.compile(r"_(fetched|loaded|duplicates_removed|quarantined)$")


def published_history(world: World, ignore_run_columns_of: frozenset = frozenset()) -> dict:
    """{(mart, date or None): digest} of the version `current` serves."""
    con = duckdb.connect(str(world.root / "published" / "current" / "marts.duckdb"), read_only=True)
    out = {}
    try:
        marts = [
            t
            for (t,) in con.execute(
                "select table_name from duckdb_tables() where schema_name = 'main' "
                "and table_name not in ('mart_catalog', 'pipeline_runs')"
            ).fetchall()
        ]
        for mart in marts:
            columns = con.execute(
                "select column_name, data_type from duckdb_columns() where table_name = ? order by column_index", [mart]
            ).fetchall()
            dated = next((c for c, t in columns if t == "DATE"), None)
            names = [c for c, _ in columns]
            for row in con.execute(f'select {_quoted(names)} from "{mart}"').fetchall():
                record = dict(zip(names, row, strict=True))
                day = record.get(dated) if dated else None
                if mart == "district_daily_kpis" and day in ignore_run_columns_of:
                    record = {k: v for k, v in record.items() if not RUN_COLUMNS.search(k)}
                key = (mart, str(day) if day else None)
                out.setdefault(key, []).append(repr(sorted(record.items())))
    finally:
        con.close()
    return {k: hashlib.sha256("\n".join(sorted(v)).encode()).hexdigest() for k, v in out.items()}


def assert_same_history(world: World, want: dict, ignore_run_columns_of=frozenset()):
    got = published_history(world, frozenset(ignore_run_columns_of))
    differ = sorted(k for k in set(got) | set(want) if got.get(k) != want.get(k))
    assert not differ, f"published history differs from the clean run at {differ[:12]}"


@pytest.fixture(scope="module")
def base_url():
    with sandbox(SEED, SCALE) as url:
        yield url


def set_faults(base_url: str, faults: dict) -> None:
    requests.put(f"{base_url}/sandbox/faults", json=faults, timeout=10).raise_for_status()


@pytest.fixture(scope="module")
def clean(tmp_path_factory, base_url):
    """The clean run: D1..D4, one daily run each. Keeps a copy after D1 and the history after each day."""
    root = tmp_path_factory.mktemp("faults")
    world = World(root / "clean", base_url)
    init_airflow(world.env)
    start = time.monotonic()
    assert world.run(D1)
    after_d1 = world.copy(root / "after_d1")
    history = {}
    for day in (D2, D3, D4):
        assert world.run(day), f"the clean run of {day} failed"
        history[day] = {"version": world.current(), "marts": published_history(world)}
        history[day]["ignoring_d2_runs"] = published_history(world, frozenset({D2}))
    TIMES["clean run, 4 days"] = time.monotonic() - start
    yield {"root": root, "world": world, "after_d1": after_d1, "history": history}
    (root / "fault_matrix.json").write_text(json.dumps(TIMES, indent=2))
    print("\nfault matrix, seconds per scenario:", json.dumps(TIMES, indent=2))


def scenario(clean: dict, name: str) -> World:
    return clean["after_d1"].copy(clean["root"] / name)


def test_a_malformed_day_is_blocked_and_the_next_clean_day_repairs_history(clean, base_url):
    world = scenario(clean, "malformed")
    start = time.monotonic()
    before, live = world.current(), world.live_hash()
    set_faults(base_url, {"malformed": 0.3})
    try:
        assert not world.run(D2), "the raw gate let a day with 30% malformed records through"
    finally:
        set_faults(base_url, {})
    assert world.current() == before and world.live_hash() == live, "a blocked run changed the warehouse"
    con = duckdb.connect(str(world.root / "warehouse" / "xihu.duckdb"), read_only=True)
    blocked = con.execute(
        "select suite from audit.gate_results where business_date = ? and not success", [D2]
    ).fetchall()
    con.close()
    assert blocked, "the blocked day does not say why"
    assert world.run(D3)  # a daily run fetches D-1 again (late corrections): the next clean day repairs D2
    assert world.manifest()["business_date"] == D3.isoformat()
    # D2's union export was only ever loaded by the blocked run: its day's load counts differ by nature.
    assert_same_history(world, clean["history"][D3]["ignoring_d2_runs"], {D2})
    TIMES["malformed 0.3 day, then a clean day"] = time.monotonic() - start


def test_a_truncated_station_file_recovers_with_the_next_runs(clean, base_url):
    world = scenario(clean, "truncated")
    start = time.monotonic()
    set_faults(base_url, {"truncated_lines": 0.3})
    try:
        first = world.run(D2)  # blocked by the raw gate, or published with its bad lines quarantined
    finally:
        set_faults(base_url, {})
    assert world.run(D3), "a truncated file of D2 blocked the next day"
    assert_same_history(
        world,
        clean["history"][D3]["ignoring_d2_runs"] if not first else clean["history"][D3]["marts"],
        {D2} if not first else (),
    )
    TIMES["truncated station file, then a clean day"] = time.monotonic() - start


# Task, and how long after its start the kill comes (mid-way through it on this scale).
KILLS = (("fetch", 0.5), ("load", 0.3), ("transform.dbt_producer_watcher", 4.0), ("gate_raw", 1.0), ("publish", 0.3))


def _dbt_processes(world: World) -> list[int]:
    """dbt builds of this world (its data root in their environment; the machine runs other tests too)."""
    mark = f"XIHU_DATA_DIR={world.root.resolve()}".encode()
    pids = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                cmd = (proc / "cmdline").read_bytes().split(b"\0")
                env = (proc / "environ").read_bytes().split(b"\0")
            except OSError:
                continue
            if any(part.endswith(b"/dbt") for part in cmd) and b"build" in cmd and mark in env:
                pids.append(int(proc.name))
    return pids


def test_killed_runs_leave_nothing_behind_and_the_rerun_publishes_the_same(clean):
    """A chain: each run is killed in another task, the next one has to clear what the last one left."""
    world = scenario(clean, "killed")
    for task_id, delay in KILLS:
        start = time.monotonic()
        before, live = world.current(), world.live_hash()
        world.run_killed_at(D2, task_id, delay)
        time.sleep(1)
        assert not _dbt_processes(world), f"dbt outlived the run killed in {task_id}"
        if task_id != "publish":
            assert world.live_hash() == live, f"the run killed in {task_id} changed the live warehouse"
            assert world.current() == before
        TIMES[f"kill during {task_id}"] = time.monotonic() - start
    start = time.monotonic()
    assert world.run(D2), "the re-run after the kills failed"
    TIMES["re-run after the kills"] = time.monotonic() - start
    assert not list((world.root / "published").glob(".staging/*")), "unfinished publication folders are left"
    assert not (world.root / "warehouse" / "staged").exists()
    assert_same_history(world, clean["history"][D2]["marts"])
    assert world.run(D3), "the day after the kills failed"
    assert_same_history(world, clean["history"][D3]["marts"])


def test_a_backfill_of_old_days_corrects_history_and_current_stays_on_the_newest_day(clean):
    world = clean["world"]  # the clean world, already at D4
    start = time.monotonic()
    newest = world.current()
    for day in (D1, D2, D3):
        assert world.run(day, {"business_date": day.isoformat()}), f"the backfill of {day} failed"
        manifest = world.manifest()
        assert manifest["business_date"] == D4.isoformat(), "current went back to an old day"
        assert day.isoformat() in manifest["corrected_dates"]
    assert world.current() != newest
    assert_same_history(world, clean["history"][D4]["marts"])
    TIMES["backfill of three old days"] = time.monotonic() - start


def test_two_concurrent_runs_queue_for_the_writer(clean):
    world = scenario(clean, "concurrent")
    start = time.monotonic()
    runs = [world.start(day) for day in (D2, D3)]
    outputs = [None, None]

    def drain(i, proc, log):  # both pipes at once: a full pipe would stall the run that holds the writer
        with log:
            out = proc.stdout.read()
            log.write(out)
        outputs[i] = (proc.wait(), out)

    readers = [threading.Thread(target=drain, args=(i, *run)) for i, run in enumerate(runs)]
    for reader in readers:
        reader.start()
    for reader in readers:
        reader.join(900)
    assert [code for code, _ in outputs] == [0, 0], "a concurrent run failed"
    assert any("waiting for the writer held by run" in out for _, out in outputs), "nothing queued"
    assert world.manifest()["business_date"] == D3.isoformat()
    assert_same_history(world, clean["history"][D3]["marts"])
    TIMES["two concurrent runs"] = time.monotonic() - start
