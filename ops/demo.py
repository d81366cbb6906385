"""`make demo`: the whole pipeline on one machine, ~70 days of history in one run, then three daily runs.

Starts the sandbox feeds on 127.0.0.1 and runs the real DAG with `airflow dags test` (embedded Airflow,
SQLite metadata under the data root): first one history run (params `history_from`/`history_to`) over the
70 dates before the last three complete business dates, then one daily run per remaining date. Stops the
sandbox, builds the dbt docs and prints a summary: the history run's loads, each daily date, the
published `friendly_effect` (DiD saving per unit type with its interval) and the briefing's path.
Exits 0 only when the history run and every daily date were published.

Why 70 days at scale 0.02: `friendly_effect` needs an adoption's before window [a-28, a-1] and after
window [a+7, a+34] inside the loaded dates, 20 deliveries in each, and K riders; 73 loaded days leave
adoptions of ~11 dates with whole windows (and older ones with part of their before window), which the
sandbox's registry fills for at least three unit types; 0.02 of a district day keeps each run short and
still gives a measured unit its 20 deliveries in a few days.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from contextlib import contextmanager
from datetime import date, datetime, timedelta
from pathlib import Path

import duckdb

from ingest.dates import LOCAL, run_time_for
from ingest.settings import apply_data_umask
from ops import airflow_runs, dbt_docs
from ops.localenv import PROJECT_ROOT, airflow, embedded_env, init_airflow
from publish.briefing import CHROMIUM_INSTALL, chromium

DAG_ID = "xihu_friendly_daily"


@contextmanager
def sandbox(seed: int, scale: float, faults: list[str] = ()):
    """The sandbox server in a child process on a free loopback port; yields its base URL."""
    cmd = [
        sys.executable,
        "-m",
        "sandbox",
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        "0",
        "--seed",
        str(seed),
        "--scale",
        str(scale),
    ]
    for fault in faults:
        cmd += ["--fault", fault]
    proc = subprocess.Popen(cmd, cwd=PROJECT_ROOT, stdout=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        if "listening on" not in line:
            raise RuntimeError(f"sandbox did not start: {line!r}")
        yield line.rsplit(" ", 1)[-1].strip()
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def last_complete_dates(n: int, now: datetime | None = None) -> list[date]:
    """The last ``n`` business dates whose scheduled run (D+1 01:30 Asia/Shanghai) has come: a day is
    over at midnight, but its station log is only published at 00:30, so the run waits until 01:30."""
    now = now or datetime.now(LOCAL)
    last = now.astimezone(LOCAL).date() - timedelta(days=1)
    if run_time_for(last) > now:
        last -= timedelta(days=1)
    return [last - timedelta(days=i) for i in range(n - 1, -1, -1)]


def run_dag(env: dict[str, str], params: dict, output: Path | None = None) -> bool:
    """One `airflow dags test` run of the DAG with ``params``; True when it succeeded.

    The logical date is left to Airflow (now) and the day comes as a param, so the run's recorded start
    and duration are real ones (with a past logical date `dags test` records the run as started then,
    and the UI shows days for a minute). Airflow's whole output is appended to ``output`` when given
    (else it goes to the terminal), and cut into the task log files the UI opens (ops/airflow_runs.py).
    """
    cmd = ["dags", "test", "-c", json.dumps(params), DAG_ID]
    if output is None:
        return airflow(env, *cmd, check=False).returncode == 0
    result = airflow(env, *cmd, check=False, capture=True)
    with output.open("a") as log:
        log.write(result.stdout + result.stderr)
    home = Path(env["AIRFLOW_HOME"])
    if run_id := airflow_runs.newest_run_id(home, DAG_ID):
        airflow_runs.write_task_logs(result.stdout, home, DAG_ID, run_id)
    return result.returncode == 0


def run_day(env: dict[str, str], day: date, output: Path | None = None) -> bool:
    """The daily run for ``day``."""
    return run_dag(env, {"business_date": day.isoformat()}, output)


def run_history(env: dict[str, str], first: date, last: date, output: Path | None = None) -> bool:
    """One history run over ``first``..``last``."""
    return run_dag(env, {"history_from": first.isoformat(), "history_to": last.isoformat()}, output)


def friendly_effect_lines(marts: Path) -> list[str]:
    """The published friendly_effect: per unit type, units measured, the DiD saving with its 95% interval
    and the naive before/after saving (minutes per delivery; '-' where NULL: too few units or riders)."""
    con = duckdb.connect(str(marts), read_only=True)
    rows = con.execute(
        "select reporting_date, unit_type, units_measured, did_saving_min, did_saving_ci_low_min, "
        "did_saving_ci_high_min, naive_saving_min from friendly_effect "
        "order by unit_type = 'all', unit_type"
    ).fetchall()
    con.close()

    def minutes(x: float | None) -> str:
        return "-" if x is None else f"{x:+.2f}"

    lines = [f"== friendly_effect as of {rows[0][0] if rows else '-'} (minutes saved per delivery)"]
    for _, unit_type, units, did, low, high, naive in rows:
        lines.append(
            f"   {unit_type:<22} units {units:>3}  DiD {minutes(did):>6}  "
            f"95% [{minutes(low):>6}, {minutes(high):>6}]  naive {minutes(naive):>6}"
        )
    return lines


def headline_lines(marts: Path) -> list[str]:
    """The published headline (district_daily_kpis) of the as-of day, the figures the briefing opens with."""
    con = duckdb.connect(str(marts), read_only=True)
    row = con.execute(
        "select business_date, status, deliveries, share_to_friendly_units, median_last100_min_friendly, "
        "median_last100_min_non_friendly, station_visits, points_earned, union_coverage_rate "
        "from district_daily_kpis order by business_date desc limit 1"
    ).fetchone()
    con.close()
    if row is None:
        return ["== headline: district_daily_kpis has no row"]
    day, status, deliveries, share, friendly, other, visits, points, union = row

    def show(x, fmt: str) -> str:
        return "-" if x is None else format(x, fmt)

    return [
        f"== headline {day} ({status}, district_daily_kpis)",
        f"   deliveries {show(deliveries, ',')}, to friendly units {show(share, '.1%')}; "
        f"last 100 m median {show(friendly, '.1f')} min friendly vs {show(other, '.1f')} min other",
        f"   station visits {show(visits, ',')}, volunteer points earned {show(points, ',')}, "
        f"union coverage {show(union, '.1%')}",
    ]


def history_lines(con: duckdb.DuckDBPyConnection, first: date, last: date) -> list[str]:
    """The history run's loads per source over its range: partitions, fetched / loaded / duplicates /
    quarantined (the latest load of each partition)."""
    lines = [f"== history {first} .. {last} ({(last - first).days + 1} days, one run)"]
    rows = con.execute(
        "select source, count(*), sum(fetched), sum(loaded), sum(duplicates_removed), sum(quarantined) "
        "from (from raw.load_audit where business_date between ? and ? "
        "qualify row_number() over (partition by source, business_date order by loaded_at desc) = 1) "
        "group by source order by source",
        [first, last],
    ).fetchall()
    for source, partitions, fetched, loaded, duplicates, quarantined in rows:
        lines.append(
            f"   {source:<14} {partitions:>3} dates  fetched {fetched:>8}  loaded {loaded:>8}  "
            f"duplicates {duplicates:>5}  quarantined {quarantined:>5}"
        )
    return lines


def summary(data_dir: Path, days: list[date], history: tuple[date, date] | None = None) -> tuple[str, bool]:
    """A short report from the warehouse's audit tables and the published manifests: the history run's
    loads, then each daily date (with the history's last date: its loads, gates and publication), the
    published friendly_effect and where to look. True when every one of those dates was published."""
    lines, all_published = [], True
    con = duckdb.connect(str(data_dir / "warehouse" / "xihu.duckdb"), read_only=True)
    published = {}
    for manifest in sorted((data_dir / "published" / "versions").glob("*/manifest.json")):
        m = json.loads(manifest.read_text())
        published[m["business_date"]] = manifest.parent.name
    if history:
        lines += history_lines(con, *history)
        days = [history[1], *days]
    for day in days:
        version = published.get(day.isoformat())
        all_published &= version is not None
        lines.append(f"== business date {day}: published {version or 'NOT PUBLISHED'}")
        fetched, loaded, duplicates, quarantined = con.execute(
            "select sum(fetched), sum(loaded), sum(duplicates_removed), sum(quarantined) from ("
            "from raw.load_audit where business_date = ? "
            "qualify row_number() over (partition by source order by loaded_at desc) = 1)",
            [day],
        ).fetchone()
        lines.append(
            f"   {fetched or 0:,} records fetched: {loaded or 0:,} loaded, {duplicates or 0:,} duplicates removed, "
            f"{quarantined or 0:,} quarantined"
        )
        gates = con.execute(
            "select stage, bool_and(success), sum(failed_critical), sum(failed_warning) from audit.gate_results "
            "where business_date = ? group by stage order by stage desc",
            [day],
        ).fetchall()
        lines.append(
            "   gates: "
            + "; ".join(
                f"{stage} {'passed' if ok else 'FAILED'} ({crit} critical, {warn} warning failures)"
                for stage, ok, crit, warn in gates
            )
        )
        try:
            status = con.execute(
                "select status from marts.district_daily_kpis where business_date = ?", [day]
            ).fetchone()
        except duckdb.CatalogException:  # no run built the marts
            status = None
        lines.append(
            f"   district_daily_kpis status now: {status[0] if status else 'no row'} "
            "(final / provisional / partial: docs/analysts.md)"
        )
    con.close()
    current = data_dir / "published" / "current"
    if (current / "marts.duckdb").exists():
        lines += headline_lines(current / "marts.duckdb")
        lines += friendly_effect_lines(current / "marts.duckdb")
    briefing = current / "briefing.html"
    lines += [
        "",
        f"Briefing:           {briefing if briefing.exists() else f'none ({briefing} was not written)'}",
        f"Published snapshot: {current} (marts.duckdb, parquet/, csv/, manifest.json)",
        f"Data Docs:          {data_dir / 'quality' / 'data_docs' / 'index.html'}",
        f"dbt docs:           {data_dir / 'dbt_docs' / 'index.html'}",
        "SQL shell:          make shell",
    ]
    return "\n".join(lines), all_published


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=PROJECT_ROOT / "data")
    parser.add_argument("--history-days", type=int, default=70, help="dates of the history run (0: none)")
    parser.add_argument("--days", type=int, default=3, help="daily runs after the history")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--scale", type=float, default=0.02, help="0.02 = 1/50 of a district day (~8k orders)")
    args = parser.parse_args(argv)
    if chromium() is None:  # every run publishes, and publishing prints the briefing's PDF
        print(f"make demo needs Chromium to print the briefing: {CHROMIUM_INSTALL}", file=sys.stderr)
        return 1
    apply_data_umask()  # inherited by embedded Airflow and everything it runs

    dates = last_complete_dates(args.history_days + args.days)
    history = (dates[0], dates[args.history_days - 1]) if args.history_days else None
    days = dates[args.history_days :]
    data_dir = args.data_dir.resolve()
    output = data_dir / "demo.log"  # Airflow's whole output; the terminal gets one line per task
    env = embedded_env(data_dir)
    init_airflow(env)
    output.write_text("")
    plan = ([(f"history {history[0]}..{history[1]}", run_history, history)] if history else []) + [
        (f"daily {day}", run_day, (day,)) for day in days
    ]
    print(f"make demo: {len(plan)} runs of the DAG under `airflow dags test`; Airflow's output: {output}", flush=True)
    failed = []
    with sandbox(args.seed, args.scale) as base_url:
        env = embedded_env(data_dir, base_url)
        for i, (label, run, run_args) in enumerate(plan, 1):
            print(f"[{i}/{len(plan)}] {label}", flush=True)
            start = time.monotonic()
            ok = run(env, *run_args, output)
            if run_id := airflow_runs.newest_run_id(Path(env["AIRFLOW_HOME"]), DAG_ID):
                print("\n".join(airflow_runs.task_lines(Path(env["AIRFLOW_HOME"]), DAG_ID, run_id)))
            print(f"   {'succeeded' if ok else 'FAILED (see ' + str(output) + ')'} in {time.monotonic() - start:.0f} s")
            if not ok:
                failed.append(label)
    try:
        dbt_docs.generate(data_dir / "dbt_docs", env)
    except (subprocess.CalledProcessError, ValueError) as docs_failed:  # the runs' results still stand
        with output.open("a") as log:
            log.write(f"{getattr(docs_failed, 'stdout', '')}{getattr(docs_failed, 'stderr', '')}\n")
        print(f"dbt docs were not generated: {docs_failed} (its output: {output})", file=sys.stderr)
    if not (data_dir / "warehouse" / "xihu.duckdb").exists():
        print(f"\nNo run built the warehouse: see {output}", file=sys.stderr)
        return 1
    report, all_published = summary(data_dir, days, history)
    print(report)
    if failed or not all_published:
        print(f"\nNot every date was published (failed runs: {', '.join(failed) or 'none'})", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
