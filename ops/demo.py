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
from ops import dbt_docs
from ops.localenv import PROJECT_ROOT, airflow, embedded_env, init_airflow

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


def run_day(env: dict[str, str], day: date) -> bool:
    """One `airflow dags test` run of the DAG for ``day``; True when it succeeded."""
    result = airflow(env, "dags", "test", DAG_ID, run_time_for(day).isoformat(), check=False)
    return result.returncode == 0


def run_history(env: dict[str, str], first: date, last: date) -> bool:
    """One `airflow dags test` history run of the DAG over ``first``..``last``; True when it succeeded."""
    conf = json.dumps({"history_from": first.isoformat(), "history_to": last.isoformat()})
    result = airflow(env, "dags", "test", "-c", conf, DAG_ID, run_time_for(last).isoformat(), check=False)
    return result.returncode == 0


def timed(run, *args) -> tuple[bool, float]:
    """``run(*args)`` and its wall time in seconds."""
    start = time.monotonic()
    return run(*args), time.monotonic() - start


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
        lines.append(f"== business date {day}")
        rows = con.execute(
            "select source, fetched, loaded, duplicates_removed, quarantined from raw.load_audit "
            "where business_date = ? "
            "qualify row_number() over (partition by source order by loaded_at desc) = 1 order by source",
            [day],
        ).fetchall()
        for source, fetched, loaded, duplicates, quarantined in rows:
            lines.append(
                f"   {source:<14} fetched {fetched:>7}  loaded {loaded:>7}  duplicates {duplicates:>5}  "
                f"quarantined {quarantined:>5}"
            )
        gates = con.execute(
            "select stage, bool_and(success), sum(failed_critical), sum(failed_warning) from audit.gate_results "
            "where business_date = ? group by stage order by stage desc",
            [day],
        ).fetchall()
        for stage, ok, crit, warn in gates:
            lines.append(
                f"   gate {stage:<6} {'passed' if ok else 'FAILED'} (critical failures {crit}, warnings {warn})"
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
        version = published.get(day.isoformat())
        all_published &= version is not None
        lines.append(f"   published: {version or 'NOT PUBLISHED'}")
    con.close()
    current = data_dir / "published" / "current"
    if (current / "marts.duckdb").exists():
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
    apply_data_umask()  # inherited by embedded Airflow and everything it runs

    dates = last_complete_dates(args.history_days + args.days)
    history = (dates[0], dates[args.history_days - 1]) if args.history_days else None
    days = dates[args.history_days :]
    env = embedded_env(args.data_dir)
    init_airflow(env)
    with sandbox(args.seed, args.scale) as base_url:
        env = embedded_env(args.data_dir, base_url)
        runs = {}  # label -> (succeeded, seconds)
        if history:
            runs[f"history {history[0]}..{history[1]}"] = timed(run_history, env, *history)
        runs |= {f"daily {day}": timed(run_day, env, day) for day in days}
    try:
        dbt_docs.generate(args.data_dir.resolve() / "dbt_docs", env)
    except (subprocess.CalledProcessError, ValueError) as failed:  # the runs' results still stand
        print(f"dbt docs were not generated: {failed}", file=sys.stderr)
    report, all_published = summary(args.data_dir.resolve(), days, history)
    print(report)
    print("\nRuns (airflow dags test, wall time):")
    for label, (ok, seconds) in runs.items():
        print(f"   {label:<34} {'succeeded' if ok else 'FAILED':<9} {seconds:>5.0f} s")
    if not all(ok for ok, _ in runs.values()) or not all_published:
        print("\nNot every date was published", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
