"""The dashboard extract: a small DuckDB file the district dashboard reads, rebuilt from `current`.

It holds the headline tables at the grain the dashboard shows (district by day, street by month), read
from the published Parquet files of one version, and records which version it came from. It is written
to a temporary file and renamed over the old one, so the dashboard sees the old extract or the new one.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import duckdb

EXTRACT_TABLES = (
    "district_daily_kpis",
    "street_coverage_monthly",
    "service_circle_daily",
    "volunteer_activity_monthly",
    "union_coverage_monthly",
    "dim_streets",
)  # the street names and label points of the streets' street_id


def build_dashboard_extract(current: Path, target: Path) -> dict:
    version_dir = Path(current).resolve()  # pin one version even if `current` moves meanwhile
    manifest = json.loads((version_dir / "manifest.json").read_text())
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(".tmp")
    tmp.unlink(missing_ok=True)
    con = duckdb.connect(str(tmp))
    rows = {}
    for table in EXTRACT_TABLES:
        parquet = version_dir / "parquet" / f"{table}.parquet"
        if parquet.exists():
            con.execute(f"create table {table} as select * from read_parquet(?)", [str(parquet)])
            rows[table] = con.execute(f"select count(*) from {table}").fetchone()[0]
    con.execute(
        "create table extract_source as select ? as version, ? as business_date, now() as built_at",
        [version_dir.name, manifest["business_date"]],
    )
    con.close()
    os.replace(tmp, target)
    return {"version": version_dir.name, "business_date": manifest["business_date"], "rows": rows}
