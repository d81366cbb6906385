"""The dev target (the one the DAG's dbt builds with) bounds DuckDB's memory: XIHU_DBT_MEMORY_LIMIT, with a
default well under DuckDB's own (80% of the machine), which let a city day's build take 8.5 GB."""

from __future__ import annotations

import json
import subprocess

import duckdb

from tests.warehouse_helpers import DBT, DBT_PROJECT, dbt_env, dbt_paths


def limit_in_dbt(data_dir, env: dict[str, str]) -> str:
    """current_setting('memory_limit') as dbt's connection to ``data_dir``'s warehouse has it."""
    (data_dir / "warehouse").mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        [
            str(DBT),
            "show",
            "--inline",
            "select current_setting('memory_limit') as memory_limit",
            "--output",
            "json",
            "--quiet",
            *dbt_paths(data_dir),
        ],
        cwd=DBT_PROJECT,
        env={**dbt_env(data_dir), **env},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-3000:]
    return json.loads(done.stdout[done.stdout.index("{") :])["show"][0]["memory_limit"]


def duckdb_renders(limit: str | None) -> str:
    with duckdb.connect() as con:
        if limit:
            con.execute(f"set memory_limit = '{limit}'")
        return con.execute("select current_setting('memory_limit')").fetchone()[0]


def test_dbt_builds_under_the_memory_limit_of_the_environment(tmp_path, monkeypatch):
    monkeypatch.delenv("XIHU_DBT_MEMORY_LIMIT", raising=False)
    assert limit_in_dbt(tmp_path, {"XIHU_DBT_MEMORY_LIMIT": "512MB"}) == duckdb_renders("512MB")
    default = limit_in_dbt(tmp_path, {})
    assert default != duckdb_renders(None)  # not DuckDB's 80% of the machine
