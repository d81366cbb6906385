"""The Airflow Connection of a source pointed at a sandbox, from the sandbox's own demo credentials."""

from __future__ import annotations

from ingest.clients import CONNECTION_IDS, Conn
from sandbox.credentials import CONNECTIONS


def sandbox_conn(base_url: str, source: str) -> Conn:
    """The Connection the DAG would read for ``source`` (ingest.clients.CONNECTION_IDS), at ``base_url``."""
    fields = CONNECTIONS[CONNECTION_IDS[source]]
    return Conn(
        host=base_url, login=fields.get("login"), password=fields.get("password"), extra=fields.get("extra", {})
    )
