"""The team deployment (docker-compose.yml, Dockerfile, .env.example) as a real compose parser reads it.

There is no Docker daemon here, so the deployment cannot be started; instead Debian's `docker-compose`
(the Python implementation, `apt-get install -y docker-compose`) resolves the file exactly as
`docker compose up` would (anchors, merge keys, ${VAR:?} interpolation, env_file), and the tests assert on
its resolved output: that is what the containers would get.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

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
    path = shutil.which("docker-compose")
    assert path, "docker-compose not installed: apt-get install -y docker-compose"
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
        "python", "-m", "ingest.sandbox", "serve", "--host", "0.0.0.0", "--port", "8765",
        "--seed", "7", "--scale", "0.05",
    ]
    for name in AIRFLOW_SERVICES - {"flower"}:
        assert "profiles" not in services[name], f"{name} must start by default"
    for name, service in services.items():
        if name != "airflow-init":
            assert "healthcheck" in service, f"{name} has no healthcheck"


def test_one_image_for_every_component(resolved):
    services = resolved["services"]
    images = {services[name]["image"] for name in AIRFLOW_SERVICES | {"sandbox"}}
    assert images == {"xihu-friendly:local"}
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
        assert env["DO_NOT_TRACK"] == "1"
        assert env["AIRFLOW__COSMOS__ENABLE_TELEMETRY"] == "False"
        assert env["GX_ANALYTICS_ENABLED"] == "False"
        assert env["DBT_SEND_ANONYMOUS_USAGE_STATS"] == "False"
        assert env["SCARF_NO_ANALYTICS"] == "true"  # read by Cosmos besides its own switch
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
    assert re.search(r'airflow pools set duckdb_writer 1 "', script)
    assert "AIRFLOW_ADMIN_PASSWORD" in script and "SIMPLE_AUTH_MANAGER_PASSWORDS_FILE" in script
    for name in AIRFLOW_SERVICES - {"airflow-init"}:
        depends = resolved["services"][name]["depends_on"]
        assert depends["airflow-init"]["condition"] == "service_completed_successfully"


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
    assert '"password": "demo-pii-key-not-for-production"' in example["AIRFLOW_CONN_XIHU_PII"]
    ignored = (ROOT / ".gitignore").read_text().split()
    assert ".env" in ignored
    assert ".env" in (ROOT / ".dockerignore").read_text().split()


def test_sandbox_connections_match_internals():
    """.env.example carries exactly the sandbox credentials documented in docs/internals.md."""
    rows = [
        [cell.strip().strip("`") for cell in line.strip("|").split("|")]
        for line in (ROOT / "docs" / "internals.md").read_text().splitlines()
        if line.startswith("| `xihu_") and line.count("|") == 5
    ]
    assert len(rows) == 7
    example = _env_file_values(ROOT / ".env.example")
    for conn_id, login, password, extra in rows:
        conn = yaml.safe_load(example[f"AIRFLOW_CONN_{conn_id.upper()}"])
        assert conn["password"] == password
        if conn_id == "xihu_pii":
            continue
        assert conn["host"] == "http://sandbox:8765"
        assert conn.get("login", "") == login
        assert conn.get("extra", {}) == (yaml.safe_load(extra) if extra else {})


def test_dockerfile_builds_like_the_makefile():
    text = (ROOT / "Dockerfile").read_text()
    assert re.search(r"(?m)^FROM python:3\.11-slim$", text)
    assert "uv==0.13.9" in text
    assert "python -m pip install --no-cache-dir --quiet uv==0.13.9" in text
    assert "/opt/venv/bin/uv pip sync --no-cache --python /opt/venv/bin/python requirements.lock" in text
    for folder in ("dags", "ingest", "dbt_project", "expectations", "publish", "ops"):
        assert re.search(rf"(?m)^COPY --chown=xihu:xihu {folder}/ {folder}/$", text), folder
    users = re.findall(r"(?m)^USER (\S+)$", text)
    assert users and users[-1] != "root"
    assert "cd dbt_project && dbt parse --profiles-dir . --quiet && test -s target/manifest.json" in text
    for var in ("DO_NOT_TRACK=1", "GX_ANALYTICS_ENABLED=False", "AIRFLOW__COSMOS__ENABLE_TELEMETRY=False",
                "SCARF_NO_ANALYTICS=true", "DBT_SEND_ANONYMOUS_USAGE_STATS=False"):
        assert var in text
