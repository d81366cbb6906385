"""The whole pipeline for real: sandbox feeds over HTTP, embedded Airflow running the DAG with
`airflow dags test`, dbt through Cosmos, Great Expectations gates, versioned publish.

One module-scoped world (a data root, an Airflow metadata DB, a sandbox) serves the tests in order:
two good days, the same day again, then a day with bad data that the gate must block; then what the
world wrote is checked: the pages a reader opens, phone numbers, the network, file modes.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import re
import sqlite3
import stat
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import duckdb
import pytest
import requests

from ops import dbt_docs
from ops.demo import DAG_ID, run_day, sandbox
from ops.localenv import PROJECT_ROOT, embedded_env, init_airflow
from ops.scheduler_harness import free_port
from tests.devtools import open_with_storage
from tests.offline_browser import open_offline, outside_references
from tests.requires import needs_chromium

pytestmark = [pytest.mark.slow, needs_chromium]

SEED, SCALE = 11, 0.01
DAY1, DAY2, BAD_DAY = date(2026, 11, 20), date(2026, 11, 21), date(2026, 11, 22)
NETGUARD = PROJECT_ROOT / "tests" / "netguard"


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    data = tmp_path_factory.mktemp("e2e")
    netlog = data / "netguard.log"
    env = embedded_env(data)
    env["XIHU_NETGUARD_LOG"] = str(netlog)
    env["PYTHONPATH"] = f"{NETGUARD}:{env['PYTHONPATH']}"
    init_airflow(env)
    with sandbox(SEED, SCALE) as base_url:
        run_env = {**embedded_env(data, base_url), "XIHU_NETGUARD_LOG": str(netlog), "PYTHONPATH": env["PYTHONPATH"]}
        yield {
            "data": data,
            "env": run_env,
            "base_url": base_url,
            "netlog": netlog,
            "output": data / "airflow-output.log",  # what make demo writes to data/demo.log
            "results": {},
        }


def _current(data: Path) -> str:
    return (data / "published" / "current").resolve().name


def _mart_fingerprints(data: Path) -> dict[str, str]:
    """A content hash per mart of the current published version (order-independent).

    `pipeline_runs` is left out on purpose: it records each run, so a second run adds a row.
    """
    con = duckdb.connect(str(data / "published" / "current" / "marts.duckdb"), read_only=True)
    out = {}
    tables = con.execute(
        "select table_name from information_schema.tables where table_schema = 'main' "
        "and table_name not in ('mart_catalog', 'pipeline_runs')"
    ).fetchall()
    for (table,) in tables:
        cols = [
            c
            for (c,) in con.execute(
                "select column_name from information_schema.columns where table_name = ? order by ordinal_position",
                [table],
            ).fetchall()
        ]
        quoted = ", ".join('"' + c + '"' for c in cols)
        rows = con.execute(f'select {quoted} from "{table}"').fetchall()
        out[table] = hashlib.sha256("\n".join(sorted(map(repr, rows))).encode()).hexdigest()
    con.close()
    return out


def test_two_days_are_published(world):
    for day in (DAY1, DAY2):
        assert run_day(world["env"], day, world["output"]), f"the DAG failed for {day}"
        manifest = json.loads((world["data"] / "published" / "current" / "manifest.json").read_text())
        assert manifest["business_date"] == day.isoformat()
        # The version's own pipeline_runs says its run published it, under its name (named at plan).
        con = duckdb.connect(str(world["data"] / "published" / "current" / "marts.duckdb"), read_only=True)
        own = con.execute(
            "select publication_status, published_version from pipeline_runs where run_id = ? and business_date = ?",
            [manifest["run_id"], day],
        ).fetchall()
        con.close()
        assert own == [("published", manifest["version"])], (day, own)
    world["results"]["version_day2"] = _current(world["data"])
    # How final each published day is: run long after both days, every platform fetch is past its correction
    # window; DAY2's station figures wait for the next day's file, and the day before DAY1 was loaded by
    # DAY1's run (its D-1), with DAY1's file bringing its late events.
    con = duckdb.connect(str(world["data"] / "published" / "current" / "marts.duckdb"), read_only=True)
    statuses = dict(con.execute("select business_date, status from district_daily_kpis").fetchall())
    con.close()
    assert statuses == {date(2026, 11, 19): "final", DAY1: "final", DAY2: "provisional"}, statuses


def test_good_runs_log_no_error_and_every_task_has_its_log_file(world):
    """What `make demo` and `make ui` rely on: a good run's Airflow output holds no ``[error]`` line, every
    task instance of each run has the log file the UI opens, and the runs' recorded durations are theirs
    (minutes, not the days since a past logical date)."""
    output = world["output"].read_text()
    assert "[error" not in output, [ln for ln in output.splitlines() if "[error" in ln][:5]
    home = Path(world["env"]["AIRFLOW_HOME"])
    con = sqlite3.connect(f"file:{home / 'airflow.db'}?mode=ro", uri=True)
    runs = con.execute("select run_id, julianday(end_date) - julianday(start_date) from dag_run").fetchall()
    assert len(runs) == 2 and all(0 < days * 24 < 1 for _, days in runs), runs
    missing = []
    for run_id, task_id, map_index, try_number in con.execute(
        "select run_id, task_id, map_index, try_number from task_instance"
    ).fetchall():
        folder = home / "logs" / f"dag_id={DAG_ID}" / f"run_id={run_id}" / f"task_id={task_id}"
        if map_index >= 0:
            folder /= f"map_index={map_index}"
        log = folder / f"attempt={try_number}.log"
        if not (log.exists() and f"task_id={task_id} map_index={map_index}" in log.read_text()):
            missing.append(str(log))
    con.close()
    assert not missing, missing[:5]


def test_make_ui_serves_the_runs_their_graph_and_task_logs(world):
    """`make ui` (ops/ui.py) on this world's metadata: the runs with their real durations, every dbt model
    a task, a dbt task's log through the REST API the UI reads, and the graph drawn in Chromium."""
    port = free_port()
    env = {k: v for k, v in world["env"].items() if not k.startswith("AIRFLOW_CONN_")}
    cmd = [sys.executable, "-m", "ops.ui", "--data-dir", str(world["data"]), "--port", str(port)]
    server = subprocess.Popen(cmd, env=env, cwd=PROJECT_ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    api = f"http://127.0.0.1:{port}/api/v2/dags/{DAG_ID}"
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                if requests.get(f"http://127.0.0.1:{port}/api/v2/monitor/health", timeout=5).ok:
                    break
            except requests.ConnectionError:
                pass
            assert time.monotonic() < deadline and server.poll() is None, "the UI did not start"
            time.sleep(2)
        runs = requests.get(f"{api}/dagRuns", timeout=30).json()["dag_runs"]
        assert runs and all(r["state"] == "success" and 0 < r["duration"] < 3600 for r in runs), runs
        tasks = {t["task_id"] for t in requests.get(f"{api}/tasks", timeout=30).json()["tasks"]}
        assert "transform.int_orders_matched.run" in tasks and "transform.district_daily_kpis.run" in tasks, tasks
        run_id = requests.utils.quote(runs[-1]["dag_run_id"], safe="")
        log = requests.get(
            f"{api}/dagRuns/{run_id}/taskInstances/transform.int_orders_matched.run/logs/1",
            headers={"Accept": "application/json"},
            timeout=30,
        ).json()
        events = " ".join(str(line.get("event", "")) for line in log["content"])
        assert "[DAG TEST] starting task_id=transform.int_orders_matched.run" in events, events[:500]
        text = open_with_storage(
            f"http://127.0.0.1:{port}/dags/{DAG_ID}",
            {"default_dag_view": '"graph"', f"{DAG_ID}/open-groups": '["transform"]'},
            world["data"] / "ui-graph.png",
        )
        assert "React Flow" in text and "gate_marts" in text and "int_orders_matched" in text, text[:1000]
    finally:
        server.terminate()
        server.wait(timeout=60)


def test_counts_add_up_for_every_load(world):
    con = duckdb.connect(str(world["data"] / "warehouse" / "xihu.duckdb"), read_only=True)
    rows = con.execute(
        "select source, business_date, fetched, loaded, duplicates_removed, quarantined from raw.load_audit"
    ).fetchall()
    assert {r[0] for r in rows} >= {"meituan", "eleme", "sf", "shansong", "union_members", "stations"}
    for source, day, fetched, loaded, duplicates, quarantined in rows:
        assert fetched == loaded + duplicates + quarantined > 0, (source, day)
    con.close()


def test_same_day_twice_gives_identical_marts_and_no_duplicates(world):
    data = world["data"]
    before = _mart_fingerprints(data)
    con = duckdb.connect(str(data / "warehouse" / "xihu.duckdb"), read_only=True)
    raw_counts = con.execute(
        "select count(*), count(distinct (business_date, record_id)) from raw.meituan_orders"
    ).fetchone()
    con.close()
    assert raw_counts[0] == raw_counts[1]
    assert run_day(world["env"], DAY2, world["output"])
    assert _current(data) != world["results"]["version_day2"], "a re-run publishes a new version"
    assert _mart_fingerprints(data) == before
    con = duckdb.connect(str(data / "warehouse" / "xihu.duckdb"), read_only=True)
    assert (
        con.execute("select count(*), count(distinct (business_date, record_id)) from raw.meituan_orders").fetchone()
        == raw_counts
    )
    con.close()


def test_bad_data_is_blocked_and_current_stays(world):
    data = world["data"]
    previous = _current(data)
    requests.put(f"{world['base_url']}/sandbox/faults", json={"malformed": 0.4}, timeout=10).raise_for_status()
    try:
        assert not run_day(world["env"], BAD_DAY, world["output"]), (
            "the gate let a day with 40% malformed records through"
        )
    finally:
        requests.put(f"{world['base_url']}/sandbox/faults", json={}, timeout=10).raise_for_status()
    assert _current(data) == previous
    con = duckdb.connect(str(data / "warehouse" / "xihu.duckdb"), read_only=True)
    failed = con.execute(
        "select count(*) from audit.gate_results where business_date = ? and not success", [BAD_DAY]
    ).fetchone()[0]
    con.close()
    assert failed >= 1


def _sandbox_phones() -> set[str]:
    from sandbox.world import World

    world = World(SEED, SCALE)
    phones = set()
    for day in (DAY1, DAY2, BAD_DAY):
        for platform in ("meituan", "eleme", "sf", "shansong"):
            phones.update(o["rider_phone"] for o in world.orders(platform, day, corrected=True) if o["rider_phone"])
    return phones


def test_no_phone_number_reaches_the_data_root(world):
    phones = _sandbox_phones()
    assert len(phones) > 100
    pattern = re.compile(r"(?<!\d)1[3-9]\d{9}(?!\d)")
    leaked = []
    for path in world["data"].rglob("*"):
        if not path.is_file() or path.suffix in {".duckdb", ".wal", ".db"} or path.name == "netguard.log":
            continue
        raw = path.read_bytes()
        if path.suffix == ".gz":
            raw = gzip.decompress(raw)
        found = set(pattern.findall(raw.decode("utf-8", errors="ignore"))) & phones
        if found:
            leaked.append((str(path), sorted(found)[:3]))
    assert not leaked, leaked
    # Databases are compressed on disk, so ask them: every text column of every table.
    for db in [world["data"] / "warehouse" / "xihu.duckdb", world["data"] / "published" / "current" / "marts.duckdb"]:
        con = duckdb.connect(str(db), read_only=True)
        cols = con.execute(
            "select table_schema, table_name, column_name from information_schema.columns "
            "where data_type in ('VARCHAR', 'JSON')"
        ).fetchall()
        for schema, table, column in cols:
            found = {
                v
                for (v,) in con.execute(
                    f"select distinct unnest(regexp_extract_all(\"{column}\"::varchar, '1[3-9][0-9]{{9}}')) "
                    f'from "{schema}"."{table}"'
                ).fetchall()
            }
            assert not found & phones, f"sandbox phones in {db.name}:{schema}.{table}.{column}"
        con.close()


def test_the_proxy_records_what_a_page_asks_from_outside(tmp_path):
    """The harness of the next test can see a request: a page with one outside image leaves it on record."""
    page = tmp_path / "calls_out.html"
    page.write_text('<html><body><img src="https://cdn.example.org/logo.png"></body></html>')
    opened = open_offline(page, tmp_path / "calls_out.png")
    assert any("cdn.example.org" in r for r in opened.requests), opened.requests


def test_every_page_opens_offline_and_asks_nothing_from_outside(world, tmp_path):
    """The briefing, the Data Docs (index and a validation page) and the dbt docs (as `make demo` writes
    them, ops/dbt_docs.py) open from disk in Chromium asking nothing of the network; the Data Docs and dbt
    docs drawn by their own (local) scripts, the briefing, which has none, with its sections."""
    data = world["data"]
    validation = next((data / "quality" / "data_docs" / "validations").rglob("*.html"))
    pages = {
        "briefing": (data / "published" / "current" / "briefing.html", "各街道目标进度"),
        "data docs": (data / "quality" / "data_docs" / "index.html", "fixed-table-container"),  # bootstrap-table ran
        "validation": (validation, "fixed-table-container"),
        "dbt docs": (dbt_docs.generate(data / "dbt_docs", world["env"]), 'id="welcome-"'),  # markdown rendered
    }
    for name, (page, drawn) in pages.items():
        opened = open_offline(page, tmp_path / f"{name}.png")
        assert not opened.requests, f"{name} asked the network for {opened.requests[:5]}"
        assert drawn in opened.dom, f"{name} did not draw ({drawn!r} missing from its DOM)"
        assert opened.screenshot.stat().st_size > 10_000, f"{name} rendered blank"
    assert "d1fc8wv8zag5ca" not in pages["dbt docs"][0].read_text(), "dbt's tracker loader is in the dbt docs"


def test_the_scan_sees_outside_references_and_allows_loopback():
    page = (
        '<link href="https://cdn.example.org/b.css"><script>i.src="//d1fc8wv8zag5ca.cloudfront.net/sp.js"'
        '</script><style>@import "http://fonts.example.com/f.css"</style><a href="http://127.0.0.1:8080/">'
    )
    assert outside_references(page) == [
        "https://cdn.example.org/b.css",
        "//d1fc8wv8zag5ca.cloudfront.net/sp.js",
        "http://fonts.example.com/f.css",
    ]


def test_no_html_under_the_data_root_points_outside(world):
    """Every page the runs (and the page test's dbt docs) wrote: briefings of every version, Data Docs."""
    pages = sorted(world["data"].rglob("*.html"))
    assert {"briefing.html", "index.html"} <= {p.name for p in pages} and len(pages) > 20
    outside = {
        str(p.relative_to(world["data"])): refs
        for p in pages
        if (refs := outside_references(p.read_text(encoding="utf-8", errors="replace")))
    }
    assert not outside, outside


def test_nothing_reached_outside_loopback(world):
    lines = world["netlog"].read_text().splitlines() if world["netlog"].exists() else []
    assert any(ln.startswith("LOCAL") for ln in lines), "the network guard did not run"
    outside = [ln for ln in lines if ln.startswith("OUTSIDE")]
    assert not outside, outside[:10]


def test_nothing_the_pipeline_wrote_is_world_readable(world):
    # The DAG's task processes write under umask 0o027 (docs/internals.md, "File modes"); the embedded
    # Airflow home under data/airflow is the test harness's, created before any DAG ran, and left out.
    data = world["data"]
    written = [
        p
        for area in ("landing", "warehouse", "quality", "published")
        for p in (data / area).rglob("*")
        if not p.is_symlink()
    ]
    assert len(written) > 20 and any(p.suffix == ".gz" for p in written)
    readable = [str(p.relative_to(data)) for p in written if p.lstat().st_mode & (stat.S_IROTH | stat.S_IWOTH)]
    assert not readable, readable[:10]
    current = (data / "published" / "current").resolve()
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o440 for p in current.rglob("*") if p.is_file())
