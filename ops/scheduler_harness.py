"""Run DAGs the way production does: a real scheduler, dag-processor, triggerer and API server on Postgres.

``airflow dags test`` runs a DAG in one process and skips what breaks in production: DAG files parsed by
a separate dag-processor, tasks executed by an executor through the Execution API, pools, the REST API,
triggerer-side callbacks and backfills. This harness starts all of those as subprocesses on a throwaway
PostgreSQL cluster (Debian's ``postgresql`` package; the cluster lives in a temporary folder, runs as the
``postgres`` user when we are root, and listens on 127.0.0.1 on a free port), drives them through the
public REST API (``/api/v2`` with a JWT from SimpleAuthManager's ``/auth/token``) and the ``airflow
backfill`` CLI, and tears everything down on exit, failure included.

Used by ``tests/deploy/test_scheduler.py``; for a DAG of the project::

    python -m ops.scheduler_harness --dags-folder dags --dag-id xihu_friendly_daily \\
        --from-date 2026-11-02 --to-date 2026-11-04 --env AIRFLOW_CONN_XIHU_MEITUAN=...

(``--from-date``/``--to-date`` are business dates; prints a JSON report, exit 1 unless all succeeded.)
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import requests

from ingest.dates import run_time_for
from ingest.settings import TELEMETRY_OFF, WRITER_POOL, WRITER_POOL_DESCRIPTION

ROOT = Path(__file__).resolve().parents[1]
COMPONENTS = ("scheduler", "dag-processor", "triggerer", "api-server")
TERMINAL = {"success", "failed"}


class HarnessError(RuntimeError):
    """The harness or a component did not reach the expected state; the message has the logs' tails."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _pg_bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), key=lambda p: int(p.split("/")[4]))
    if not found:
        raise HarnessError("PostgreSQL server binaries not found: apt-get install -y postgresql")
    return found[-1]


def _wait(
    what: str,
    probe: Callable[[], Any],
    timeout: float,
    interval: float = 1.0,
    on_timeout: Callable[[], str] = lambda: "",
) -> Any:
    """Poll ``probe`` until it returns something truthy; its value is returned."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise HarnessError(f"timed out after {timeout:.0f}s waiting for {what}\n{on_timeout()}")
        time.sleep(interval)


@dataclass
class Postgres:
    """A throwaway cluster in ``root`` (made accessible to the ``postgres`` user when we run as root)."""

    root: Path
    port: int = field(default_factory=free_port)

    def _as_owner(self, *cmd: str) -> list[str]:
        return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else list(cmd)

    @property
    def datadir(self) -> Path:
        return self.root / "pgdata"

    def start(self) -> None:
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres", "postgres")
        subprocess.run(
            self._as_owner(
                _pg_bin("initdb"), "-D", str(self.datadir), "-A", "trust", "-U", "postgres", "-E", "UTF8", "--no-sync"
            ),
            check=True,
            capture_output=True,
            text=True,
        )
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off"
        subprocess.run(
            self._as_owner(
                _pg_bin("pg_ctl"),
                "-D",
                str(self.datadir),
                "-o",
                options,
                "-w",
                "-l",
                str(self.root / "postgres.log"),
                "start",
            ),
            check=True,
            capture_output=True,
            text=True,
        )
        subprocess.run(
            self._as_owner(_pg_bin("createdb"), "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", "airflow"),
            check=True,
            capture_output=True,
            text=True,
        )

    def stop(self) -> None:
        if (self.datadir / "postmaster.pid").exists():
            subprocess.run(
                self._as_owner(_pg_bin("pg_ctl"), "-D", str(self.datadir), "-m", "immediate", "-w", "stop"),
                capture_output=True,
                text=True,
            )

    @property
    def url(self) -> str:
        return f"postgresql+psycopg2://postgres@127.0.0.1:{self.port}/airflow"


class SchedulerHarness:
    """Context manager: Postgres + migrated metadata + pool + Airflow components + an API session."""

    def __init__(self, dags_folder: Path, extra_env: Mapping[str, str] | None = None, startup_timeout: float = 240):
        self.dags_folder = Path(dags_folder).resolve()
        self.extra_env = dict(extra_env or {})
        self.startup_timeout = startup_timeout
        self.root = Path(tempfile.mkdtemp(prefix="xihu-harness-"))
        self.root.chmod(0o711)  # the postgres user must reach its cluster folder inside
        self.home = self.root / "airflow"
        self.logs = self.root / "logs"
        self.postgres = Postgres(self.root / "pg")
        self.api_port = free_port()
        self.api = f"http://127.0.0.1:{self.api_port}"
        self.processes: dict[str, subprocess.Popen] = {}
        self.session = requests.Session()
        self.timings: dict[str, float] = {}
        self._jwt_secret = secrets.token_urlsafe(32)
        self._password = secrets.token_urlsafe(16)

    # --- lifecycle ---------------------------------------------------------------------------------

    def env(self) -> dict[str, str]:
        password_file = self.home / "passwords.json"
        env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW__")}
        env.update(
            {
                "AIRFLOW_HOME": str(self.home),
                "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": self.postgres.url,
                "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
                "AIRFLOW__CORE__PARALLELISM": "4",
                "AIRFLOW__CORE__DAGS_FOLDER": str(self.dags_folder),
                "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
                "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.api}/execution/",
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin",
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(password_file),
                "AIRFLOW__API__BASE_URL": self.api,
                "AIRFLOW__API__HOST": "127.0.0.1",
                "AIRFLOW__API__PORT": str(self.api_port),
                "AIRFLOW__API_AUTH__JWT_SECRET": self._jwt_secret,
                "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(self.logs / "tasks"),
                **TELEMETRY_OFF,
                "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
            }
        )
        env.update(self.extra_env)
        return env

    def __enter__(self) -> SchedulerHarness:
        started = time.monotonic()
        try:
            self.home.mkdir(parents=True)
            self.logs.mkdir()
            (self.home / "passwords.json").write_text(json.dumps({"admin": self._password}))
            self.postgres.root.mkdir()
            self.postgres.start()
            self._mark("postgres", started)
            self.airflow("db", "migrate")
            self.airflow("pools", "set", WRITER_POOL, "1", WRITER_POOL_DESCRIPTION)
            self._mark("migrate", started)
            for name in COMPONENTS:
                self._start(name)
            self._wait_healthy()
            self._mark("healthy", started)
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc_info) -> None:
        for proc in self.processes.values():
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.processes.values():
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        self.postgres.stop()
        self.session.close()
        shutil.rmtree(self.root, ignore_errors=True)

    def _mark(self, name: str, started: float) -> None:
        self.timings[name] = round(time.monotonic() - started, 1)

    def airflow(self, *args: str, timeout: float = 300) -> str:
        """Run an ``airflow`` CLI command against this deployment; its stdout."""
        result = subprocess.run(
            [sys.executable, "-m", "airflow", *args], env=self.env(), capture_output=True, text=True, timeout=timeout
        )
        if result.returncode != 0:
            raise HarnessError(f"airflow {' '.join(args)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")
        return result.stdout

    def _start(self, name: str) -> None:
        log = open(self.logs / f"{name}.log", "wb")  # noqa: SIM115 - owned by the child for its lifetime
        self.processes[name] = subprocess.Popen(
            [sys.executable, "-m", "airflow", name],
            env=self.env(),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        log.close()

    def log_tails(self, lines: int = 40) -> str:
        out = []
        for path in sorted(self.logs.glob("*.log")):
            tail = path.read_text(errors="replace").splitlines()[-lines:]
            out.append(f"--- {path.name} ---\n" + "\n".join(tail))
        return "\n".join(out)

    def _check_alive(self) -> None:
        dead = {name: p.returncode for name, p in self.processes.items() if p.poll() is not None}
        if dead:
            raise HarnessError(f"components exited: {dead}\n{self.log_tails()}")

    def _wait_healthy(self) -> None:
        def healthy():
            self._check_alive()
            try:
                health = requests.get(f"{self.api}/api/v2/monitor/health", timeout=5).json()
            except (requests.RequestException, ValueError):
                return False
            return all(
                health.get(part, {}).get("status") == "healthy"
                for part in ("metadatabase", "scheduler", "triggerer", "dag_processor")
            )

        _wait("all components healthy", healthy, self.startup_timeout, on_timeout=self.log_tails)
        token = requests.post(
            f"{self.api}/auth/token", timeout=10, json={"username": "admin", "password": self._password}
        )
        token.raise_for_status()
        self.session.headers["Authorization"] = f"Bearer {token.json()['access_token']}"

    # --- REST API ----------------------------------------------------------------------------------

    def request(self, method: str, path: str, **kwargs) -> Any:
        response = self.session.request(method, f"{self.api}/api/v2{path}", timeout=30, **kwargs)
        if not response.ok:
            raise HarnessError(f"{method} {path}: HTTP {response.status_code} {response.text[:2000]}")
        return response.json() if response.content else None

    def wait_for_dag(self, dag_id: str, timeout: float = 180) -> dict:
        """Until the dag-processor has parsed ``dag_id``; then unpause it (the scheduler runs nothing
        for a paused DAG, backfills included)."""

        def parsed():
            self._check_alive()
            response = self.session.get(f"{self.api}/api/v2/dags/{dag_id}", timeout=10)
            return response.json() if response.ok else None

        started = time.monotonic()
        dag = _wait(f"DAG {dag_id} to be parsed", parsed, timeout, on_timeout=self.log_tails)
        self._mark(f"parsed:{dag_id}", started)
        errors = self.request("GET", "/importErrors")
        if errors["total_entries"]:
            raise HarnessError(f"import errors: {errors['import_errors']}")
        return self.request("PATCH", f"/dags/{dag_id}", json={"is_paused": False}) or dag

    def trigger(self, dag_id: str, conf: dict | None = None, logical_date: str | None = None) -> str:
        run = self.request("POST", f"/dags/{dag_id}/dagRuns", json={"logical_date": logical_date, "conf": conf or {}})
        return run["dag_run_id"]

    def runs(self, dag_id: str, run_type: str | None = None) -> list[dict]:
        params = {"limit": 100, **({"run_type": run_type} if run_type else {})}
        return self.request("GET", f"/dags/{dag_id}/dagRuns", params=params)["dag_runs"]

    def task_instances(self, dag_id: str, run_id: str) -> list[dict]:
        return self.request("GET", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances")["task_instances"]

    def wait_for_run(self, dag_id: str, run_id: str, timeout: float = 600) -> dict:
        """Until the run is success or failed; the run as the API returns it."""

        def finished():
            self._check_alive()
            run = self.request("GET", f"/dags/{dag_id}/dagRuns/{run_id}")
            return run if run["state"] in TERMINAL else None

        return _wait(
            f"run {run_id} of {dag_id}",
            finished,
            timeout,
            interval=2,
            on_timeout=lambda: f"{self.task_instances(dag_id, run_id)}\n{self.log_tails()}",
        )

    def backfill(self, dag_id: str, from_date: str, to_date: str, timeout: float = 1800) -> list[dict]:
        """``airflow backfill create`` for [from_date, to_date], one run at a time (a backfill does not take
        the DAG's max_active_runs by itself); waits until every run it made finished."""
        before = {r["dag_run_id"] for r in self.runs(dag_id, "backfill")}
        self.airflow(
            "backfill",
            "create",
            "--dag-id",
            dag_id,
            "--from-date",
            from_date,
            "--to-date",
            to_date,
            "--max-active-runs",
            "1",
        )

        def all_finished():
            self._check_alive()
            runs = [r for r in self.runs(dag_id, "backfill") if r["dag_run_id"] not in before]
            return runs if runs and all(r["state"] in TERMINAL for r in runs) else None

        return _wait(
            f"backfill of {dag_id} {from_date}..{to_date}", all_finished, timeout, interval=2, on_timeout=self.log_tails
        )

    def backfill_business_dates(self, dag_id: str, first: date, last: date, timeout: float = 1800) -> list[dict]:
        """Backfill business dates ``first``..``last``. The CLI's window is of logical dates, and the run
        of day D fires at D+1 01:30 Asia/Shanghai (ingest.dates), so plain dates would be read as UTC
        midnights and miss a day; the window is given as those fire times instead."""
        return self.backfill(dag_id, run_time_for(first).isoformat(), run_time_for(last).isoformat(), timeout)


def run_dag(
    dags_folder: Path,
    dag_id: str,
    first: date,
    last: date,
    extra_env: Mapping[str, str] | None = None,
    conf: dict | None = None,
) -> dict:
    """The whole production path for one DAG: a manual run through the API, then a backfill of business
    dates ``first``..``last``. Returns the runs' states and the time each phase took (seconds since the
    harness started)."""
    started = time.monotonic()
    with SchedulerHarness(dags_folder, extra_env) as harness:
        harness.wait_for_dag(dag_id)
        manual = harness.wait_for_run(dag_id, harness.trigger(dag_id, conf))
        harness._mark("manual_run", started)
        backfill = harness.backfill_business_dates(dag_id, first, last)
        harness._mark("backfill", started)
        report = {
            "manual": manual["state"],
            "backfill": {r["logical_date"]: r["state"] for r in backfill},
            "timings_s": dict(harness.timings),
        }
        if manual["state"] != "success" or any(r["state"] != "success" for r in backfill):
            report["failed_tasks"] = {
                run["dag_run_id"]: [
                    ti["task_id"]
                    for ti in harness.task_instances(dag_id, run["dag_run_id"])
                    if ti["state"] != "success"
                ]
                for run in [manual, *backfill]
                if run["state"] != "success"
            }
    report["timings_s"]["teardown"] = round(time.monotonic() - started, 1)
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dags-folder", type=Path, default=ROOT / "dags")
    parser.add_argument("--dag-id", required=True)
    parser.add_argument(
        "--from-date", required=True, type=date.fromisoformat, help="first business date to backfill, YYYY-MM-DD"
    )
    parser.add_argument(
        "--to-date",
        required=True,
        type=date.fromisoformat,
        help="last business date to backfill (inclusive), YYYY-MM-DD",
    )
    parser.add_argument("--conf", type=json.loads, default=None, help="JSON conf of the manual run")
    parser.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra environment for every component (connections, XIHU_DATA_DIR)",
    )
    args = parser.parse_args(argv)
    extra_env = dict(item.split("=", 1) for item in args.env)
    report = run_dag(args.dags_folder, args.dag_id, args.from_date, args.to_date, extra_env, args.conf)
    print(json.dumps(report, indent=2))
    ok = report["manual"] == "success" and all(s == "success" for s in report["backfill"].values())
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
