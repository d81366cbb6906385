"""The sandbox's demo credentials are defined once (sandbox/credentials.py): the server accepts them, the
embedded environment hands them to Airflow, and .env.example's trial connections are the same values."""

from __future__ import annotations

import json
import re
from pathlib import Path

from ops.localenv import sandbox_connections
from sandbox.credentials import CONNECTIONS

ROOT = Path(__file__).resolve().parents[2]


def _example_connections() -> dict[str, dict]:
    text = (ROOT / ".env.example").read_text()
    return {
        m["name"].lower(): json.loads(m["value"])
        for m in re.finditer(r"(?m)^AIRFLOW_CONN_(?P<name>XIHU_\w+)='(?P<value>.*)'$", text)
    }


def test_env_example_trial_connections_are_the_sandbox_credentials():
    example = {k: v for k, v in _example_connections().items() if k != "xihu_pii"}
    assert set(example) == set(CONNECTIONS)
    for conn_id, fields in CONNECTIONS.items():
        assert example[conn_id] == {"conn_type": "http", "host": "http://sandbox:8765", **fields}, conn_id


def test_embedded_connections_are_the_sandbox_credentials():
    env = sandbox_connections("http://127.0.0.1:1")
    for conn_id, fields in CONNECTIONS.items():
        assert json.loads(env[f"AIRFLOW_CONN_{conn_id.upper()}"]) == {
            "conn_type": "http",
            "host": "http://127.0.0.1:1",
            **fields,
        }
