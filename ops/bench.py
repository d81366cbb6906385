"""`make bench`: ingest, load, a daily run and dbt at district scale, against the sandbox on 127.0.0.1.

For each platform: fetch one district day (scale 1) into a fresh landing folder, in its own child process so
that its peak RSS is its own, REPEATS times; print the median records/s and the peak RSS. Then, for each
landing in turn, the DuckDB floor (one `read_json` of the same landed pages into an in-memory table: what
reading those bytes costs at best) and the load of the landing into a fresh `raw` with the quarantine rules
(`ingest.load.load_partition`), each in its own child process: their medians, their peak RSS, and the median
of the load/floor ratios taken run by run (floor and load interleaved, so that the machine's drift moves
both). Then district days end to end: REPEATS consecutive daily runs of the DAG under `airflow dags test` at
the same scale into a fresh data root (the first one on an empty warehouse, as a new deployment's first
night): the median wall time of a run, of each task (a mapped task and a task group as one, from Airflow's
metadata), the largest child's peak RSS; then `dbt build` alone, as the transform runs it, REPEATS times on
copies of the warehouse the last run published (with a partial parse from the day before, as a deployment's
transform has: ``dbt_build``). Then the history ratio: a daily `dbt build` with a week of history loaded
against one with a year, at a small scale, and the five dbt nodes whose time grew most (``history_ratio``).
Then a city day: one daily run at scale 10 through `airflow dags test` on an empty warehouse, its tasks and
the largest child's peak RSS (the sandbox holds its days in memory, ~6 GB at that scale; its own memory is
not counted). Before each daily run the sandbox makes the days it will serve (``prepare_sandbox``): real
platforms hold their data, so the fetch times our clients, not the fake generating orders on our cores.
Last, `make demo` itself (70 days of history in one run, then three daily runs, into a temporary data root):
its wall time. One figure a line, `name: value unit`. Figures, not assertions: these machines are shared and
noisy. ``--landing-root`` loads landings fetched before (no fetch, no ingest lines).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from datetime import date, timedelta
from pathlib import Path

import requests

from ingest.registry import ORDER_PLATFORMS, SOURCES
from ingest.settings import DAILY_DBT_FLAGS, dbt_run_env, dbt_vars
from ops import airflow_runs
from ops.demo import DAG_ID, last_complete_dates, run_day, sandbox
from ops.localenv import DEMO_PII_KEY, PROJECT_ROOT, VENV_BIN, embedded_env, init_airflow
from sandbox.credentials import CONNECTIONS

PLATFORMS = ORDER_PLATFORMS
RECORDS_PATH = {p: SOURCES[p].records_path for p in PLATFORMS}

CHILD = r"""
import json, sys, time
from datetime import date
from pathlib import Path
from ingest.clients import Conn, fetch
from ingest.pii import PiiHasher
source, day, base_url, conn_json, key, root, fetch_id = sys.argv[1:8]
c = json.loads(conn_json)
t0 = time.perf_counter()
folder = fetch(source, date.fromisoformat(day), Conn(host=base_url, login=c.get("login", ""),
               password=c.get("password", ""), extra=c.get("extra", {})), PiiHasher(key), fetch_id=fetch_id,
               landing_root=Path(root))
seconds = time.perf_counter() - t0
records = json.loads((Path(folder) / "manifest.json").read_text())["records"]
# VmHWM, not ru_maxrss: Linux keeps ru_maxrss across exec, so it would include the forking parent's size.
hwm = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM:"))
print(json.dumps({"folder": str(folder), "records": records, "seconds": seconds, "max_rss_kib": hwm}))
"""


# The floor and the load, each timed inside its own child (imports excluded), with its peak RSS.
MEASURE_CHILD = r"""
import json, sys, time
from pathlib import Path
kind, folder, source, records_path, warehouse = sys.argv[1:6]
if kind == "floor":
    import duckdb
    t0 = time.perf_counter()
    con = duckdb.connect()
    con.execute(
        f"create table t as select unnest({records_path}) as r from read_json(?, maximum_object_size = 268435456)",
        [f"{folder}/page-*.json.gz"],
    )
    records = con.execute("select count(*) from t").fetchone()[0]
else:
    from ingest.load import load_partition
    t0 = time.perf_counter()
    records = load_partition(warehouse, Path(folder)).fetched
seconds = time.perf_counter() - t0
hwm = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM:"))
print(json.dumps({"records": records, "seconds": seconds, "max_rss_kib": hwm}))
"""


def fetch_once(source: str, day: date, base_url: str, root: Path, fetch_id: str) -> dict:
    conn = CONNECTIONS[f"xihu_{source}"]
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            CHILD,
            source,
            day.isoformat(),
            base_url,
            json.dumps(conn),
            DEMO_PII_KEY,
            str(root),
            fetch_id,
        ],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "XIHU_SANDBOX": "1"},
    )  # the demo key is accepted against the sandbox
    return json.loads(out.stdout.strip().splitlines()[-1])


def measure(kind: str, folder: Path, source: str, warehouse: Path) -> dict:
    """``floor``: DuckDB's own reading of the same gzipped pages into a table of records, the floor the load
    is held to; ``load``: ``load_partition`` of the landing into a fresh warehouse file."""
    out = subprocess.run(
        [sys.executable, "-c", MEASURE_CHILD, kind, str(folder), source, RECORDS_PATH[source], str(warehouse)],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--day", type=date.fromisoformat, default=date(2026, 11, 27))
    parser.add_argument("--no-demo", action="store_true", help="skip timing `make demo` (minutes)")
    parser.add_argument(
        "--no-district-days", action="store_true", help="skip the daily runs through Airflow and `dbt build`"
    )
    parser.add_argument("--no-history", action="store_true", help="skip the week-against-a-year dbt builds")
    parser.add_argument("--history-scale", type=float, default=0.02, help="the scale of the history ratio")
    parser.add_argument("--no-city-day", action="store_true", help="skip the city day (minutes, ~7 GB for the sandbox)")
    parser.add_argument("--city-scale", type=float, default=10.0)
    parser.add_argument(
        "--landing-root",
        type=Path,
        help="measure only the floor and the load, on <root>/<platform>/<day>/<fetch_id>/ landed before",
    )
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="xihu-bench-") as tmp:
        root = Path(tmp)
        print(f"scale: {args.scale} x")
        if args.landing_root is not None:
            for source in PLATFORMS:
                found = sorted((args.landing_root / source / args.day.isoformat()).glob("*/manifest.json"))
                if not found:
                    raise SystemExit(f"no landing of {source} {args.day} under {args.landing_root}")
                folders = [found[i % len(found)].parent for i in range(args.repeats)]
                print(f"{source}_records: {json.loads(found[0].read_text())['records']} records")
                floor_and_load(source, folders, root)
        else:
            with sandbox(7, args.scale) as base_url:
                for source in PLATFORMS:
                    runs = [
                        fetch_once(source, args.day, base_url, root / f"run{i}", f"bench{i}")
                        for i in range(args.repeats)
                    ]
                    rates = [r["records"] / r["seconds"] for r in runs]
                    print(f"{source}_records: {runs[0]['records']} records")
                    print(f"{source}_ingest_rate_median: {statistics.median(rates):,.0f} records/s")
                    print(f"{source}_ingest_peak_rss: {max(r['max_rss_kib'] for r in runs) / 1024:,.0f} MiB")
                    floor = floor_and_load(source, [Path(r["folder"]) for r in runs], root)
                    print(f"{source}_ingest_vs_floor: {statistics.median(rates) / floor:.2f} x")
    print(f"bench_peak_rss_self: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:,.0f} MiB")
    if not args.no_district_days:
        district_days(args.scale, args.repeats)
    if not args.no_history:
        history_ratio(args.history_scale, args.repeats)
    if not args.no_city_day:
        district_days(args.city_scale, 1, label="city_day", dbt_builds=False)
    if not args.no_demo:
        demo_wall()
    return 0


def floor_and_load(source: str, folders: list[Path], root: Path) -> float:
    """Print the floor's and the load's medians, peak RSS and load/floor ratio; return the floor's median."""
    floors, loads = [], []
    for i, folder in enumerate(folders):
        floors.append(measure("floor", folder, source, root / f"floor-{source}{i}.duckdb"))
        loads.append(measure("load", folder, source, root / f"wh-{source}{i}.duckdb"))
    floor_rates = [r["records"] / r["seconds"] for r in floors]
    load_rates = [r["records"] / r["seconds"] for r in loads]
    floor = statistics.median(floor_rates)
    print(f"{source}_duckdb_read_json_floor_median: {floor:,.0f} records/s")
    print(f"{source}_duckdb_read_json_floor_peak_rss: {max(r['max_rss_kib'] for r in floors) / 1024:,.0f} MiB")
    print(f"{source}_load_rate_median: {statistics.median(load_rates):,.0f} records/s")
    print(f"{source}_load_peak_rss: {max(r['max_rss_kib'] for r in loads) / 1024:,.0f} MiB")
    ratios = [load / fl for load, fl in zip(load_rates, floor_rates, strict=True)]
    print(f"{source}_load_vs_floor: {statistics.median(ratios):.2f} x")
    return floor


def district_days(scale: float, repeats: int, label: str = "district_day", dbt_builds: bool = True) -> None:
    """``repeats`` consecutive daily runs through `airflow dags test` at ``scale``, then (``dbt_builds``)
    ``repeats`` `dbt build`s of the last date on copies of the warehouse it published: medians, per task, peak
    RSS. Figures named ``<label>_...``."""
    with tempfile.TemporaryDirectory(prefix=f"xihu-bench-{label}-") as tmp:
        data_dir = Path(tmp)
        output = data_dir / "airflow-output.log"
        walls, prepares, tasks, failed = [], [], defaultdict(list), 0
        # ru_maxrss of the children is the largest of every child reaped so far (the fetches and loads
        # before too): the runs' figure is only theirs when it grew past what it was before them. It is read
        # while the sandbox still runs, so that the fake platforms' memory is not the pipeline's.
        earlier_peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        days = last_complete_dates(repeats)
        with sandbox(7, scale) as base_url:
            env = embedded_env(data_dir, base_url)
            init_airflow(env)
            for day in days:
                prepares.append(prepare_sandbox(base_url, [day - timedelta(days=1), day]))
                start = time.monotonic()
                failed += not run_day(env, day, output)
                walls.append(time.monotonic() - start)
                run_id = airflow_runs.newest_run_id(Path(env["AIRFLOW_HOME"]), DAG_ID)
                for task, _, seconds, _ in airflow_runs.task_summary(Path(env["AIRFLOW_HOME"]), DAG_ID, run_id):
                    tasks[task].append(seconds)
            peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        wall = statistics.median(walls)
        print(f"{label}_wall_median: {wall:,.1f} s (airflow dags test, {len(days)} dates, scale {scale})")
        print(f"{label}_failed_runs: {failed}")
        prepare = statistics.median(prepares)
        print(f"{label}_sandbox_prepare_median: {prepare:,.1f} s (before each run, not in its wall)")
        if failed:  # the data root goes with the bench: Airflow's last words go to stderr
            print("".join(output.read_text().splitlines(keepends=True)[-60:]), file=sys.stderr)
        for task, seconds in tasks.items():
            print(f"{label}_task_{task}_median: {statistics.median(seconds):,.1f} s")
        print(
            f"{label}_peak_rss_largest_child: {peak / 1024:,.0f} MiB"
            if peak > earlier_peak
            else f"{label}_peak_rss_largest_child: not above the earlier children's {earlier_peak / 1024:,.0f} MiB"
        )
        if dbt_builds:
            builds = [dbt_build(data_dir, days[-1], i) for i in range(repeats)]
            print(f"dbt_build_median: {statistics.median(builds):,.1f} s (one daily date, {len(days)} dates loaded)")


def prepare_sandbox(base_url: str, days: list[date]) -> float:
    """Have the sandbox make the days a daily run fetches before it starts (``PUT /sandbox/prepare``), so
    that the run's fetch times our clients against platforms that hold their data, as real ones do, and
    not the fake generating it on the same two cores; return the seconds that took."""
    start = time.monotonic()
    for day in days:
        r = requests.put(f"{base_url}/sandbox/prepare", json={"date": day.isoformat()}, timeout=3600)
        r.raise_for_status()
    return time.monotonic() - start


def dbt_build(data_dir: Path, day: date, i: int) -> float:
    """`dbt build` of ``day`` as the transform runs it (its flags, no unit tests; the dates in the
    environment) on a copy of ``data_dir``'s warehouse: seconds. Every copy has the same path and the builds
    share a target folder, as a deployment's runs share the staged path and Cosmos' partial-parse cache:
    the first (``i`` 0) is preceded by an untimed `dbt parse` as of the day before, as the run of the day
    before leaves it, so each timed build re-parses only the models that read the dates."""
    copy, target = data_dir / "dbt-build.duckdb", data_dir / "target-daily"
    shutil.copyfile(data_dir / "warehouse" / "xihu.duckdb", copy)
    if i == 0:
        yesterday = day - timedelta(days=1)
        run_dbt(data_dir, copy, target, "parse", yesterday, yesterday)
    start = time.monotonic()
    run_dbt(data_dir, copy, target, "build", day, day)
    seconds = time.monotonic() - start
    copy.unlink()
    return seconds


def run_dbt(data_dir: Path, warehouse: Path, target: Path, command: str, day: date, loaded_from: date) -> None:
    """`dbt <command>` as the transform runs it, on ``warehouse``, for ``day`` (loaded from ``loaded_from``)."""
    subprocess.run(
        [
            str(VENV_BIN / "dbt"),
            command,
            "--profiles-dir",
            ".",
            "--target-path",
            str(target),
            *(DAILY_DBT_FLAGS if command == "build" else ()),
            "--vars",
            json.dumps(dbt_vars()),
        ],
        cwd=PROJECT_ROOT / "dbt_project",
        env={
            **embedded_env(data_dir),
            **dbt_run_env(day.isoformat(), loaded_from.isoformat()),
            "XIHU_DBT_WAREHOUSE": str(warehouse),
        },
        check=True,
        capture_output=True,
    )


def history_ratio(scale: float, repeats: int, lengths: tuple[int, int] = (7, 365)) -> None:
    """A daily `dbt build` with a week of history loaded against one with a year, at ``scale``: for each
    length, the warehouse a run of that many nights leaves (every source fetched for every date, the union's
    exports too, as daily runs fetch them; loaded by ``load_many``, then one `dbt build` of the whole range,
    as a history run builds it), then ``repeats`` daily builds of its last date on copies: their medians
    and the ratio. Fetched and loaded in this process, without Airflow: a year of mapped fetches under
    `airflow dags test` would take the better part of an hour, and the figure is dbt's."""
    from ingest.clients import Conn, fetch
    from ingest.load import load_many
    from ingest.pii import SANDBOX_ENV, PiiHasher
    from ingest.registry import REGISTRY

    os.environ[SANDBOX_ENV] = "1"  # the demo key is accepted against the sandbox
    medians, nodes = {}, {}
    with sandbox(7, scale) as base_url:
        for length in lengths:
            with tempfile.TemporaryDirectory(prefix=f"xihu-bench-history{length}-") as tmp:
                data_dir = Path(tmp)
                days = last_complete_dates(length)
                start = time.monotonic()
                folders = [
                    fetch(
                        s.name,
                        day,
                        _sandbox_conn(Conn, s.connection_id, base_url),
                        PiiHasher(DEMO_PII_KEY),
                        "bench",
                        data_dir / "landing",
                    )
                    for day in days
                    for s in REGISTRY
                ]
                warehouse = data_dir / "warehouse" / "xihu.duckdb"
                load_many(warehouse, folders)
                run_dbt(data_dir, warehouse, data_dir / "target", "build", days[-1], days[0])
                print(f"history_{length}_days_set_up: {time.monotonic() - start:,.0f} s ({len(folders)} fetches)")
                builds, node_runs = [], defaultdict(list)
                for i in range(repeats):
                    builds.append(dbt_build(data_dir, days[-1], i))
                    run_results = json.loads((data_dir / "target-daily" / "run_results.json").read_text())
                    for result in run_results["results"]:
                        node_runs[result["unique_id"]].append(result["execution_time"])
                medians[length] = statistics.median(builds)
                nodes[length] = {node: statistics.median(seconds) for node, seconds in node_runs.items()}
                print(f"history_{length}_days_dbt_build_median: {medians[length]:,.1f} s")
    week, year = lengths
    print(f"history_{year}_vs_{week}_days_dbt_build: {medians[year] / medians[week]:.2f} x (scale {scale})")
    # where the difference is: the nodes (models, tests, hooks) whose median time grew most
    growth = sorted(nodes[year], key=lambda node: nodes[week].get(node, 0.0) - nodes[year][node])
    for node in growth[:5]:
        print(
            f"history_growth_{node.split('.')[2]}: {nodes[year][node] - nodes[week].get(node, 0.0):+.2f} s "
            f"({nodes[week].get(node, 0.0):.2f} -> {nodes[year][node]:.2f} s)"
        )


def _sandbox_conn(conn_class, connection_id: str, base_url: str):
    c = CONNECTIONS[connection_id]
    return conn_class(host=base_url, login=c.get("login", ""), password=c.get("password", ""), extra=c.get("extra", {}))


def demo_wall() -> None:
    """`make demo`'s command on a fresh data root: its wall time (its own report goes to stdout too)."""
    with tempfile.TemporaryDirectory(prefix="xihu-bench-demo-") as tmp:
        start = time.monotonic()
        result = subprocess.run(
            [sys.executable, "-m", "ops.demo", "--data-dir", tmp],
            check=False,
            cwd=Path(__file__).resolve().parent.parent,
        )
        print(f"demo_wall: {time.monotonic() - start:,.0f} s")
        print(f"demo_exit_code: {result.returncode}")


if __name__ == "__main__":
    sys.exit(main())
