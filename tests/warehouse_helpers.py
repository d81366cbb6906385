"""What every test that builds a warehouse with dbt shares: the dbt executable and project, a run's own
target and log paths under its data root, its environment, and read-only queries of the built file.

Used by tests/dbt (hand-made raw data), tests/integration (the sandbox district) and
tests/integration/daily_builds.py (dbt's Python API in a child process).
"""

from __future__ import annotations

import json
import os
import subprocess
from datetime import date
from pathlib import Path

import duckdb

from ingest.settings import TELEMETRY_OFF, dbt_vars

ROOT = Path(__file__).resolve().parents[1]
DBT_PROJECT = ROOT / "dbt_project"
DBT = ROOT / ".venv" / "bin" / "dbt"


def dbt_paths(data_dir: Path) -> list[str]:
    """Own project, profile, target and log paths: never the repo's dbt_project/target (make's manifest)."""
    return [
        "--project-dir",
        str(DBT_PROJECT),
        "--profiles-dir",
        str(DBT_PROJECT),
        "--target-path",
        str(Path(data_dir) / "dbt" / "target"),
        "--log-path",
        str(Path(data_dir) / "dbt" / "logs"),
    ]


def dbt_env(data_dir: Path) -> dict[str, str]:
    """The process environment of a dbt run against ``data_dir``'s warehouse, telemetry off."""
    return {**os.environ, **TELEMETRY_OFF, "XIHU_DATA_DIR": str(data_dir)}


def dbt_in_memory(out: Path, *args: str, env: dict[str, str] | None = None, quiet: bool = True) -> str:
    """A dbt command against the lint target (an in-memory DuckDB: no warehouse), with ``out``'s target and
    log folders and ``env`` over the process environment; its output."""
    done = subprocess.run(
        [
            str(DBT),
            *args,
            "--profiles-dir",
            str(DBT_PROJECT),
            "--project-dir",
            str(DBT_PROJECT),
            "--target",
            "lint",
            "--target-path",
            str(out / "target"),
            "--log-path",
            str(out / "logs"),
            *(["--quiet"] if quiet else []),
        ],
        cwd=DBT_PROJECT,
        env={**dbt_env(out), **(env or {})},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-3000:]
    return done.stdout


def run_dbt(data_dir: Path, command: str, business_date: date, *extra: str, **run_vars) -> str:
    """One dbt command (``"build"``, ``"source freshness"``) in a subprocess for ``business_date``, with
    ``run_vars`` as further dbt vars; returns its output, raises on failure."""
    cmd = [
        str(DBT),
        *command.split(),
        *dbt_paths(data_dir),
        "--vars",
        json.dumps(dbt_vars(business_date=business_date.isoformat(), **run_vars)),
        *extra,
    ]
    result = subprocess.run(cmd, cwd=DBT_PROJECT, env=dbt_env(data_dir), capture_output=True, text=True, timeout=900)
    if result.returncode != 0:
        raise AssertionError(f"dbt {command} failed:\n{result.stdout[-8000:]}\n{result.stderr[-2000:]}")
    return result.stdout


def warehouse_path(data_dir: Path) -> Path:
    return Path(data_dir) / "warehouse" / "xihu.duckdb"


class WarehouseQueries:
    """Read-only queries of the warehouse at ``self.path``."""

    path: Path

    def query(self, sql: str, params: list | None = None) -> list[tuple]:
        with duckdb.connect(str(self.path), read_only=True) as con:
            return con.execute(sql, params or []).fetchall()

    def rows(self, sql: str, params: list | None = None) -> list[dict]:
        with duckdb.connect(str(self.path), read_only=True) as con:
            cur = con.execute(sql, params or [])
            names = [d[0] for d in cur.description]
            return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]

    def row(self, sql: str, params: list | None = None) -> dict:
        rows = self.rows(sql, params)
        assert len(rows) == 1, f"expected one row, got {len(rows)}: {sql}"
        return rows[0]

    def scalar(self, sql: str, params: list | None = None):
        rows = self.query(sql, params)
        assert len(rows) == 1 and len(rows[0]) == 1, f"expected one value, got {rows!r}: {sql}"
        return rows[0][0]
