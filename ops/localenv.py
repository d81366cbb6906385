"""The embedded environment: Airflow with SQLite metadata under the data root, sandbox connections.

Used by `make demo` (ops/demo.py), `make ui` and the tests, so all run Airflow exactly the same way, with
every telemetry switch off (ingest.settings.TELEMETRY_OFF).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from ingest.pii import DEMO_PII_KEY, SANDBOX_ENV
from ingest.settings import TELEMETRY_OFF, WRITER_POOL, WRITER_POOL_DESCRIPTION

PROJECT_ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent


def sandbox_connections(base_url: str, pii_key: str = DEMO_PII_KEY) -> dict[str, str]:
    """``AIRFLOW_CONN_*`` variables (JSON form) pointing every source at a sandbox, and ``XIHU_SANDBOX=1``:
    the one signal that lets ingest/pii.py accept the public demo key, set only where the feeds are fake.
    The credentials are the sandbox's own (sandbox/credentials.py), imported here because the production
    image has no sandbox package and needs none of this."""
    from sandbox.credentials import CONNECTIONS

    env = {SANDBOX_ENV: "1"}
    for conn_id, fields in CONNECTIONS.items():
        env[f"AIRFLOW_CONN_{conn_id.upper()}"] = json.dumps({"conn_type": "http", "host": base_url, **fields})
    env["AIRFLOW_CONN_XIHU_PII"] = json.dumps({"conn_type": "generic", "password": pii_key})
    return env


def embedded_env(data_dir: Path, base_url: str | None = None) -> dict[str, str]:
    """The process environment for embedded Airflow, dbt and the pipeline under ``data_dir``."""
    data_dir = Path(data_dir).resolve()
    airflow_home = data_dir / "airflow"
    env = dict(os.environ)
    env.update(TELEMETRY_OFF)
    env.update(
        {
            "XIHU_DATA_DIR": str(data_dir),
            "AIRFLOW_HOME": str(airflow_home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(PROJECT_ROOT / "dags"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{airflow_home / 'airflow.db'}",
            "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(airflow_home / "logs"),
            "AIRFLOW__API__EXPOSE_CONFIG": "False",
            "XIHU_DEADLINE_ALERTS": "off",  # no scheduler in embedded mode (see ops/dag_config.py)
            "PYTHONPATH": os.pathsep.join(filter(None, [str(PROJECT_ROOT), env.get("PYTHONPATH", "")])),
            "PATH": os.pathsep.join([str(VENV_BIN), env.get("PATH", "")]),
            "TZ": "UTC",
        }
    )
    if base_url:
        env.update(sandbox_connections(base_url))
    return env


def airflow(
    env: dict[str, str], *args: str, check: bool = True, capture: bool = False, timeout: float | None = None
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(VENV_BIN / "airflow"), *args],
        env=env,
        check=check,
        text=True,
        capture_output=capture,
        timeout=timeout,
        cwd=PROJECT_ROOT,
    )


def init_airflow(env: dict[str, str]) -> None:
    """Create the metadata database and the writer pool (idempotent)."""
    Path(env["AIRFLOW_HOME"]).mkdir(parents=True, exist_ok=True)
    airflow(env, "db", "migrate", capture=True)
    airflow(env, "pools", "set", WRITER_POOL, "1", WRITER_POOL_DESCRIPTION, capture=True)
