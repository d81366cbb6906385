"""The team deployment (docker-compose.yml, Dockerfile, .env.example) as a real compose parser reads it.

There is no Docker daemon here, so the deployment cannot be started; instead Debian's `docker-compose`
(the Python implementation, `apt-get install -y docker-compose`) resolves the file exactly as
`docker compose up` would (anchors, merge keys, ${VAR:?} interpolation, env_file), and the tests assert on
its resolved output: that is what the containers would get.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from ingest.pii import DEMO_PII_KEY
from ingest.settings import TELEMETRY_OFF, WRITER_POOL, WRITER_POOL_DESCRIPTION

ROOT = Path(__file__).resolve().parents[2]
AIRFLOW_SERVICES = {
    "airflow-init",
    "airflow-apiserver",
    "airflow-scheduler",
    "airflow-dag-processor",
    "airflow-triggerer",
    "airflow-worker",
    "flower",
}
SECRET_VARS = ("POSTGRES_PASSWORD", "AIRFLOW_ADMIN_PASSWORD", "AIRFLOW_JWT_SECRET", "AIRFLOW_FERNET_KEY")


def _compose_bin() -> str:
    """Debian's docker-compose, the one real compose parser here (`make test` installs it when root)."""
    path = shutil.which("docker-compose")
    if not path:
        pytest.skip("docker-compose absent: apt-get install -y docker-compose (make test does it as root)")
    return path


def _run_compose(workdir: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [_compose_bin(), "-f", "docker-compose.yml", *args],
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture(scope="module")
def deploy_dir(tmp_path_factory) -> Path:
    """A checkout as an operator prepares it: the compose file plus `cp .env.example .env`."""
    workdir = tmp_path_factory.mktemp("deploy")
    shutil.copy(ROOT / "docker-compose.yml", workdir / "docker-compose.yml")
    shutil.copy(ROOT / ".env.example", workdir / ".env")
    return workdir


@pytest.fixture(scope="module")
def resolved(deploy_dir) -> dict:
    result = _run_compose(deploy_dir, "config")
    assert result.returncode == 0, result.stderr
    return yaml.safe_load(result.stdout)


def _env_file_values(path: Path) -> dict[str, str]:
    values = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip().strip("'")
    return values


def test_compose_file_is_valid(deploy_dir):
    result = _run_compose(deploy_dir, "config", "-q")
    assert result.returncode == 0, result.stderr


def test_missing_secret_refuses_to_resolve(tmp_path):
    """Without a real .env the deployment must not start on some default password."""
    shutil.copy(ROOT / "docker-compose.yml", tmp_path / "docker-compose.yml")
    env = (ROOT / ".env.example").read_text()
    (tmp_path / ".env").write_text(re.sub(r"(?m)^POSTGRES_PASSWORD=.*\n", "", env))
    result = _run_compose(tmp_path, "config", "-q")
    assert result.returncode != 0
    assert "POSTGRES_PASSWORD" in result.stderr


def test_services_and_profiles(resolved):
    services = resolved["services"]
    assert set(services) == AIRFLOW_SERVICES | {"postgres", "redis", "sandbox"}
    assert services["postgres"]["image"] == "postgres:16"
    assert services["redis"]["image"] == "redis:7"
    assert services["flower"]["profiles"] == ["flower"]
    assert services["sandbox"]["profiles"] == ["trial"]
    assert services["sandbox"]["command"] == [
        "python",
        "-m",
        "sandbox",
        "serve",
        "--host",
        "0.0.0.0",
        "--port",
        "8765",
        "--seed",
        "7",
        "--scale",
        "0.05",
    ]
    for name in AIRFLOW_SERVICES - {"flower"}:
        assert "profiles" not in services[name], f"{name} must start by default"
    for name, service in services.items():
        if name != "airflow-init":
            assert "healthcheck" in service, f"{name} has no healthcheck"


def test_one_image_for_every_component(resolved):
    """Every Airflow component runs the Dockerfile's production stage; the sandbox its own stage and image."""
    services = resolved["services"]
    images = {services[name]["image"] for name in AIRFLOW_SERVICES}
    assert images == {"xihu-friendly:local"}
    assert {services[name]["build"]["target"] for name in AIRFLOW_SERVICES} == {"production"}
    assert services["sandbox"]["build"]["target"] == "sandbox"
    assert services["sandbox"]["image"] == "xihu-friendly-sandbox:local"
    commands = {name: services[name].get("command") for name in AIRFLOW_SERVICES}
    assert commands["airflow-apiserver"][:2] == ["airflow", "api-server"]
    assert commands["airflow-scheduler"] == ["airflow", "scheduler"]
    assert commands["airflow-dag-processor"] == ["airflow", "dag-processor"]
    assert commands["airflow-triggerer"] == ["airflow", "triggerer"]
    assert commands["airflow-worker"] == ["airflow", "celery", "worker"]


def test_airflow_environment(resolved):
    for name in AIRFLOW_SERVICES:
        env = resolved["services"][name]["environment"]
        assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
        assert env["AIRFLOW__CORE__LOAD_EXAMPLES"] == "False"
        assert {k: env.get(k) for k in TELEMETRY_OFF} == TELEMETRY_OFF  # the one list: ingest/settings.py
        assert env["XIHU_DATA_DIR"] == "/opt/xihu/data"
        assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].startswith("postgresql+psycopg2://airflow:")
        assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].endswith("@postgres:5432/airflow")
        assert env["AIRFLOW__CELERY__BROKER_URL"] == "redis://redis:6379/0"
        assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == "http://airflow-apiserver:8080/execution/"
        # Connections arrive from .env, PII key included.
        assert env["AIRFLOW_CONN_XIHU_MEITUAN"].startswith('{"conn_type": "http", "host": "http://sandbox:8765"')
        assert "AIRFLOW_CONN_XIHU_PII" in env
        assert "xihu-data:/opt/xihu/data:rw" in resolved["services"][name]["volumes"]
    assert set(resolved["volumes"]) >= {"xihu-data", "postgres-db"}


def test_init_migrates_creates_admin_and_pool(resolved):
    init = resolved["services"]["airflow-init"]
    script = "\n".join(init["command"])
    assert "airflow db migrate" in script
    assert f'airflow pools set {WRITER_POOL} 1 "{WRITER_POOL_DESCRIPTION}"' in script
    assert "AIRFLOW_ADMIN_PASSWORD" in script and "SIMPLE_AUTH_MANAGER_PASSWORDS_FILE" in script
    for name in AIRFLOW_SERVICES - {"airflow-init"}:
        depends = resolved["services"][name]["depends_on"]
        assert depends["airflow-init"]["condition"] == "service_completed_successfully"


def _init_script(resolved: dict) -> str:
    """The airflow-init script as the container's bash receives it (compose turns ``$$`` into ``$``)."""
    init = resolved["services"]["airflow-init"]
    assert init["entrypoint"] == "/bin/bash" and init["command"][0] == "-c"
    return init["command"][1].replace("$$", "$")


def _run_init(resolved: dict, tmp_path: Path) -> tuple[subprocess.CompletedProcess, list[str]]:
    """Run the init script with the environment compose resolved for it, and stand-ins for ``airflow``
    (records its arguments) and ``python``; returns the result and the ``airflow`` calls."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    calls = tmp_path / "airflow-calls"
    for name, body in {"airflow": f'echo "$*" >> {calls}', "python": f'exec {sys.executable} "$@"'}.items():
        (bin_dir / name).write_text(f"#!/bin/sh\n{body}\n")
        (bin_dir / name).chmod(0o755)
    env = {key: str(value) for key, value in resolved["services"]["airflow-init"]["environment"].items()}
    env.update(
        {
            "PATH": f"{bin_dir}{os.pathsep}/usr/bin{os.pathsep}/bin",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(tmp_path / "passwords.json"),
        }
    )
    result = subprocess.run(["bash", "-c", _init_script(resolved)], env=env, capture_output=True, text=True, timeout=60)
    return result, calls.read_text().splitlines() if calls.exists() else []


def _resolve(tmp_path: Path, env_text: str) -> dict:
    shutil.copy(ROOT / "docker-compose.yml", tmp_path / "docker-compose.yml")
    (tmp_path / ".env").write_text(env_text)
    result = _run_compose(tmp_path, "config")
    assert result.returncode == 0, result.stderr
    return yaml.safe_load(result.stdout)


def test_init_refuses_the_placeholders(resolved, tmp_path):
    """`cp .env.example .env` and `docker compose up` as is: airflow-init fails before touching anything,
    naming every placeholder left, and the other components (waiting for it to succeed) never start."""
    result, calls = _run_init(resolved, tmp_path)
    assert result.returncode != 0
    for var in (*SECRET_VARS, "AIRFLOW_CONN_XIHU_PII"):
        assert re.search(rf"refusing to start: {var} (is|still holds) change-me", result.stderr), result.stderr
    assert "xihu_pii to a random key of at least 32 bytes" in result.stderr
    assert "python -c 'import secrets; print(secrets.token_urlsafe(32))'" in result.stderr
    assert calls == [] and not (tmp_path / "passwords.json").exists()


def _real_env_text() -> str:
    """.env.example with every change-me replaced by a random value, as the operator is told to."""
    return re.sub("change-me", lambda _: secrets.token_urlsafe(32), (ROOT / ".env.example").read_text())


def test_init_starts_once_every_placeholder_is_replaced(tmp_path):
    env_text = _real_env_text()
    result, calls = _run_init(_resolve(tmp_path, env_text), tmp_path)
    assert result.returncode == 0, result.stderr
    assert "refusing" not in result.stderr
    assert calls == ["db migrate", f"pools set {WRITER_POOL} 1 {WRITER_POOL_DESCRIPTION}"]
    admin = _env_file_values(tmp_path / ".env")["AIRFLOW_ADMIN_PASSWORD"]
    assert json.loads((tmp_path / "passwords.json").read_text()) == {"admin": admin}


def test_init_refuses_one_placeholder_left(tmp_path):
    """Any connection still holding change-me is refused, not only the PII key; only names are printed."""
    env_text = _real_env_text().replace('"password": "mt-secret"', '"password": "change-me"')
    env_text = re.sub(r"(?m)^AIRFLOW_JWT_SECRET=.*$", "AIRFLOW_JWT_SECRET=change-me", env_text)
    result, calls = _run_init(_resolve(tmp_path, env_text), tmp_path)
    assert result.returncode != 0 and calls == []
    refused = re.findall(r"refusing to start: (\w+)", result.stderr)
    assert sorted(refused) == ["AIRFLOW_CONN_XIHU_MEITUAN", "AIRFLOW_JWT_SECRET"]
    values = _env_file_values(tmp_path / ".env")
    for var in ("POSTGRES_PASSWORD", "AIRFLOW_ADMIN_PASSWORD", "AIRFLOW_FERNET_KEY"):
        assert values[var] not in result.stderr


def test_no_secret_values_committed():
    """Every secret in the committed files is a ${...} reference or an obvious placeholder."""
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    for name, service in compose["services"].items():
        for key, value in (service.get("environment") or {}).items():
            secret = re.search(r"PASSWORD|SECRET|FERNET|SQL_ALCHEMY_CONN|RESULT_BACKEND", key)
            if secret and not key.endswith("_FILE"):
                assert "${" in str(value), f"{name}: {key} has a literal value"
    example = _env_file_values(ROOT / ".env.example")
    for var in SECRET_VARS:
        assert example[var] == "change-me"
    # No working PII key either, not even the demo one: the sandbox credentials are the only working values.
    assert yaml.safe_load(example["AIRFLOW_CONN_XIHU_PII"]) == {"conn_type": "generic", "password": "change-me"}
    assert DEMO_PII_KEY not in (ROOT / ".env.example").read_text()
    ignored = (ROOT / ".gitignore").read_text().split()
    assert ".env" in ignored
    assert ".env" in (ROOT / ".dockerignore").read_text().split()


def test_sandbox_connections_match_the_sandbox_doc():
    """.env.example carries exactly the sandbox credentials documented in docs/sandbox.md."""
    rows = [
        [cell.strip().strip("`") for cell in line.strip("|").split("|")]
        for line in (ROOT / "docs" / "sandbox.md").read_text().splitlines()
        if line.startswith("| `xihu_") and line.count("|") == 5
    ]
    assert len(rows) == 7
    example = _env_file_values(ROOT / ".env.example")
    for conn_id, login, password, extra in rows:
        conn = yaml.safe_load(example[f"AIRFLOW_CONN_{conn_id.upper()}"])
        if conn_id == "xihu_pii":  # documented: the demo key of `make demo`; never a value of .env
            assert conn["password"] == "change-me"
            continue
        assert conn["password"] == password
        assert conn["host"] == "http://sandbox:8765"
        assert conn.get("login", "") == login
        assert conn.get("extra", {}) == (yaml.safe_load(extra) if extra else {})


def test_dockerfile_builds_like_the_makefile():
    text = (ROOT / "Dockerfile").read_text()
    assert re.search(r"(?m)^FROM python:3\.11-slim AS base$", text)
    assert "uv==0.13.9" in text
    assert "python -m pip install --no-cache-dir --quiet uv==0.13.9" in text
    assert "/opt/venv/bin/uv pip sync --no-cache --python /opt/venv/bin/python requirements.lock" in text
    for folder in ("dags", "ingest", "dbt_project", "expectations", "publish", "ops"):
        assert re.search(rf"(?m)^COPY --chown=xihu:xihu {folder}/ {folder}/$", text), folder
    # The sandbox is not in the production image: only the sandbox stage copies it, and the production
    # stage, the last (the default target), adds nothing to the base.
    stages = re.split(r"(?m)^(?=FROM )", text)
    names = [re.match(r"FROM \S+ AS (\S+)", stage).group(1) for stage in stages if stage.startswith("FROM")]
    assert names == ["base", "sandbox", "production"]
    base, sandbox, production = (stage for stage in stages if stage.startswith("FROM"))
    assert not any("sandbox" in line for line in re.findall(r"(?m)^COPY .*$", base))
    assert re.search(r"(?m)^COPY --chown=xihu:xihu sandbox/ sandbox/$", sandbox)
    assert production.strip() == "FROM base AS production"
    ignored = [line for line in (ROOT / ".dockerignore").read_text().splitlines() if not line.startswith("#")]
    assert not any(line.strip("/") == "sandbox" for line in ignored)
    users = re.findall(r"(?m)^USER (\S+)$", text)
    assert users and users[-1] != "root"
    assert "cd dbt_project && dbt parse --profiles-dir . --quiet && test -s target/manifest.json" in text
    for name, value in TELEMETRY_OFF.items():  # the one list: ingest/settings.py
        assert f"{name}={value}" in text
