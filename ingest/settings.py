"""Settings in one place: environment variables with documented defaults.

| variable | default | meaning |
| --- | --- | --- |
| ``XIHU_DATA_DIR`` | ``./data`` | root of everything the pipeline writes (landing, warehouse, quality, published) |
| ``XIHU_K_ANON`` | ``5`` | minimum distinct riders behind a published cell (dbt var ``k_anon``: :func:`dbt_vars`) |
| ``XIHU_KEEP_VERSIONS`` | ``10`` | published versions kept for rollback |
| ``XIHU_CORRECTION_BAND`` | ``0.03`` | how far a replaced partition or a published day may move (share) |
| ``XIHU_WRITER_STALE_SECONDS`` | ``1800`` | a staged warehouse idle this long is abandoned |
| ``XIHU_WRITER_WAIT_SECONDS`` | ``21600`` | how long a run waits for the writer before it fails |
| ``XIHU_LANDING_KEEP_DAYS`` | ``35`` | days landing run folders are kept; the newest complete one of a day stays |
| ``XIHU_DBT_MEMORY_LIMIT`` | ``3GB`` | DuckDB's memory limit in dbt's builds (read by dbt_project/profiles.yml) |

Endpoints and secrets never come from here: they are Airflow Connections (``AIRFLOW_CONN_XIHU_*``).

File modes under the data root: :func:`apply_data_umask` (umask ``0o027``) is called by every entry point
of the pipeline (both DAG files, so every Airflow task process and the dbt children it starts;
``python -m publish``; ``make demo``): files are owner read-write, group read, never world-readable, and
folders group-traversable. The group is the pipeline user's; the analysts' accounts belong to it to read
the published snapshot (docs/internals.md, "File modes").
"""

from __future__ import annotations

import os
from pathlib import Path

TIMEZONE = "Asia/Shanghai"
# DuckDB allows one writing process: every Airflow task that writes the warehouse takes this 1-slot pool, which
# each environment creates (ops/localenv.py, ops/scheduler_harness.py, docker-compose.yml's airflow-init).
WRITER_POOL = "duckdb_writer"
WRITER_POOL_DESCRIPTION = "DuckDB allows one writing process"
# Every telemetry switch of the stack, off (architecture.md: nothing phones home): dbt, Cosmos (its own switch
# and Scarf's), Great Expectations; Airflow 3.3 itself has no usage-data collection left. The embedded
# environment, the scheduler harness and the tests apply it; the Dockerfile and docker-compose.yml carry the
# same values (tests/deploy/test_compose.py checks they match).
TELEMETRY_OFF = {
    "DO_NOT_TRACK": "1",
    "DBT_SEND_ANONYMOUS_USAGE_STATS": "False",
    "AIRFLOW__COSMOS__ENABLE_TELEMETRY": "False",
    "GX_ANALYTICS_ENABLED": "False",
    "SCARF_NO_ANALYTICS": "true",
}
# Nothing under the data root is readable by other users (PIPL: riders' keyed hashes are personal data).
DATA_UMASK = 0o027


def apply_data_umask() -> int:
    """Set the process umask to :data:`DATA_UMASK` (inherited by every child process); returns the old one."""
    return os.umask(DATA_UMASK)


def data_dir() -> Path:
    return Path(os.environ.get("XIHU_DATA_DIR", "data")).resolve()


def landing_dir() -> Path:
    return data_dir() / "landing"


def warehouse_path() -> Path:
    return data_dir() / "warehouse" / "xihu.duckdb"


def quality_dir() -> Path:
    return data_dir() / "quality"


def published_dir() -> Path:
    return data_dir() / "published"


def k_anon() -> int:
    return int(os.environ.get("XIHU_K_ANON", "5"))


def dbt_vars(**run_vars) -> dict:
    """The ``--vars`` of every dbt command the project runs (the DAG's transform, ``make demo``'s docs, the
    tests' builds): K from ``XIHU_K_ANON``, so that the cells dbt suppresses and the cells the marts gate
    recounts use one K. dbt_project.yml's ``k_anon`` is only the fallback of a bare ``dbt`` command;
    left to it, K=10 here would build with 5 and the gate would block every publication."""
    return {"k_anon": k_anon(), **run_vars}


def dbt_run_env(business_date: str, loaded_from: str) -> dict[str, str]:
    """The run's dates as the DAG hands them to dbt: environment variables, which the macro ``run_date``
    (dbt_project/macros/business_date.sql) reads when no ``--vars`` gives them. Not ``--vars``: dbt parses
    the whole project again whenever they change, which is every day (~2 s of each build), while a changed
    environment variable re-parses only the models that read it."""
    return {"XIHU_BUSINESS_DATE": business_date, "XIHU_LOADED_FROM": loaded_from}


# The dbt unit tests check the models' SQL on fixed inputs, not the day's data: like dbt's docs advise, they
# run in development and CI (`make test` builds with them) and not in every daily build (~1.6 s a run). The
# flags of the daily `dbt build` (the DAG's transform, and `make bench` timing it).
DAILY_DBT_FLAGS = ("--exclude-resource-type", "unit_test")


def keep_versions() -> int:
    return int(os.environ.get("XIHU_KEEP_VERSIONS", "10"))


def correction_band() -> float:
    """Largest relative move a replacement may make: record counts, quarantine rate, a published day's key
    figures. sources.md: the platforms correct up to ~1% of D's orders during D+1, and up to 2% of D's
    station events arrive in D+1's file; 3% admits both with margin and refuses a day that lost a tenth."""
    return float(os.environ.get("XIHU_CORRECTION_BAND", "0.03"))


def writer_stale_seconds() -> int:
    """A staged warehouse whose run has not written for this long is taken over by the next run. Longer
    than the DAG's largest retry delay (20 min), so a run waiting for a retry keeps its copy."""
    return int(os.environ.get("XIHU_WRITER_STALE_SECONDS", "1800"))


def writer_wait_seconds() -> int:
    """How long a run queues for the warehouse writer before failing (a backfill can hold it for hours)."""
    return int(os.environ.get("XIHU_WRITER_WAIT_SECONDS", "21600"))


def landing_keep_days() -> int:
    """Days a landing run folder is kept (``ingest.landing.prune_landing``; the newest complete fetch of
    every source and date is kept whatever its age). 35: more than a month, so the re-runs and backfills
    of the past month still find the landings they may reuse or reload."""
    return int(os.environ.get("XIHU_LANDING_KEEP_DAYS", "35"))
