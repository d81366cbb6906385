"""Settings in one place: environment variables with documented defaults.

| variable | default | meaning |
| --- | --- | --- |
| ``XIHU_DATA_DIR`` | ``./data`` | root of everything the pipeline writes (landing, warehouse, quality, published) |
| ``XIHU_K_ANON`` | ``5`` | minimum distinct riders behind a published cell (dbt var ``k_anon``) |
| ``XIHU_KEEP_VERSIONS`` | ``10`` | published versions kept for rollback |

Endpoints and secrets never come from here: they are Airflow Connections (``AIRFLOW_CONN_XIHU_*``).
"""

from __future__ import annotations

import os
from pathlib import Path

TIMEZONE = "Asia/Shanghai"


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


def keep_versions() -> int:
    return int(os.environ.get("XIHU_KEEP_VERSIONS", "10"))
