"""`make ui`: the Airflow UI over the embedded metadata that `make demo` wrote, on 127.0.0.1 only.

Serves `airflow api-server` (Airflow 3's UI and REST API) with the demo's environment (ops/localenv.py):
the same SQLite metadata, so the demo's runs are there with every dbt model as a task; the task logs are
the files `make demo` cut from `airflow dags test`'s output (ops/airflow_runs.py). Nothing is scheduled
from here: there is no scheduler, the DAG is paused as the demo left it.

Sign-in: Airflow's simple auth manager with every user an admin, because the server listens on the
loopback interface only and serves demo data; a deployment keeps its own auth (docker-compose.yml).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from ops.localenv import PROJECT_ROOT, VENV_BIN, embedded_env

DEFAULT_PORT = 8080


def ui_env(data_dir: Path, port: int) -> dict[str, str]:
    """The embedded environment for the UI: loopback, no login, the demo's metadata and logs."""
    env = embedded_env(data_dir)
    env.update(
        {
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__PORT": str(port),
            "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{port}",
        }
    )
    return env


def command(port: int) -> list[str]:
    return [str(VENV_BIN / "airflow"), "api-server", "--host", "127.0.0.1", "--port", str(port)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=PROJECT_ROOT / "data")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    args = parser.parse_args(argv)
    data_dir = args.data_dir.resolve()
    if not (data_dir / "airflow" / "airflow.db").exists():
        print(f"no Airflow metadata under {data_dir}: run `make demo` first")
        return 1
    print(f"Airflow UI: http://127.0.0.1:{args.port}/dags/xihu_friendly_daily (Ctrl-C stops it)", flush=True)
    os.chdir(PROJECT_ROOT)
    os.execve(command(args.port)[0], command(args.port), ui_env(data_dir, args.port))


if __name__ == "__main__":
    raise SystemExit(main())
