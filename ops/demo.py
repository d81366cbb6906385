"""`make demo`: the whole pipeline on one machine, for the last three complete business dates.

Starts the sandbox feeds on 127.0.0.1, runs the real DAG with `airflow dags test` once per date
(embedded Airflow, SQLite metadata under the data root), stops the sandbox, builds the dbt docs and
prints a summary per date. Exits 0 only when all three dates were published.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from contextlib import contextmanager
from datetime import date, datetime, timedelta
from pathlib import Path

import duckdb

from ingest.dates import LOCAL, run_time_for
from ingest.settings import apply_data_umask, dbt_vars
from ops.localenv import PROJECT_ROOT, airflow, embedded_env, init_airflow

DAG_ID = "xihu_friendly_daily"


@contextmanager
def sandbox(seed: int, scale: float, faults: list[str] = ()):
    """The sandbox server in a child process on a free loopback port; yields its base URL."""
    cmd = [sys.executable, "-m", "ingest.sandbox", "serve", "--host", "127.0.0.1", "--port", "0",
           "--seed", str(seed), "--scale", str(scale)]
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


def summary(data_dir: Path, days: list[date]) -> tuple[str, bool]:
    """A short report per date from the warehouse's audit tables and the published manifests."""
    lines, all_published = [], True
    con = duckdb.connect(str(data_dir / "warehouse" / "xihu.duckdb"), read_only=True)
    published = {}
    for manifest in sorted((data_dir / "published" / "versions").glob("*/manifest.json")):
        m = json.loads(manifest.read_text())
        published[m["business_date"]] = manifest.parent.name
    for day in days:
        lines.append(f"== business date {day}")
        rows = con.execute(
            "select source, fetched, loaded, duplicates_removed, quarantined from raw.load_audit "
            "where business_date = ? "
            "qualify row_number() over (partition by source order by loaded_at desc) = 1 order by source",
            [day]).fetchall()
        for source, fetched, loaded, duplicates, quarantined in rows:
            lines.append(f"   {source:<14} fetched {fetched:>7}  loaded {loaded:>7}  duplicates {duplicates:>5}  "
                         f"quarantined {quarantined:>5}")
        gates = con.execute(
            "select stage, bool_and(success), sum(failed_critical), sum(failed_warning) from audit.gate_results "
            "where business_date = ? group by stage order by stage desc", [day]).fetchall()
        for stage, ok, crit, warn in gates:
            lines.append(f"   gate {stage:<6} {'passed' if ok else 'FAILED'} "
                         f"(critical failures {crit}, warnings {warn})")
        try:
            status = con.execute("select status from marts.district_daily_kpis where business_date = ?",
                                 [day]).fetchone()
        except duckdb.CatalogException:  # no run built the marts
            status = None
        lines.append(f"   district_daily_kpis status now: {status[0] if status else 'no row'} "
                     "(final / provisional / partial: docs/analysts.md)")
        version = published.get(day.isoformat())
        all_published &= version is not None
        lines.append(f"   published: {version or 'NOT PUBLISHED'}")
    con.close()
    lines += [
        "",
        f"Published snapshot: {data_dir / 'published' / 'current'} (marts.duckdb, parquet/, csv/, manifest.json)",
        f"Data Docs:          {data_dir / 'quality' / 'data_docs' / 'index.html'}",
        f"dbt docs:           {data_dir / 'dbt_docs' / 'index.html'}",
        "SQL shell:          make shell",
    ]
    return "\n".join(lines), all_published


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=PROJECT_ROOT / "data")
    parser.add_argument("--days", type=int, default=3)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--scale", type=float, default=0.05, help="0.05 = 1/20 of a district day (~20k orders)")
    args = parser.parse_args(argv)
    apply_data_umask()  # inherited by embedded Airflow and everything it runs

    days = last_complete_dates(args.days)
    env = embedded_env(args.data_dir)
    init_airflow(env)
    with sandbox(args.seed, args.scale) as base_url:
        env = embedded_env(args.data_dir, base_url)
        ok = [run_day(env, day) for day in days]
    subprocess.run([str(Path(sys.executable).parent / "dbt"), "docs", "generate", "--profiles-dir", ".",
                    "--vars", json.dumps(dbt_vars()),
                    "--target-path", str(args.data_dir.resolve() / "dbt_docs"), "--quiet"],
                   cwd=PROJECT_ROOT / "dbt_project", env=env, check=False)
    report, all_published = summary(args.data_dir.resolve(), days)
    print(report)
    if not all(ok) or not all_published:
        print(f"\nNot every date was published: runs {dict(zip(map(str, days), ok, strict=True))}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
