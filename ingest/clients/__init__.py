"""Source clients and :func:`fetch`, the one entry point the DAG (and the bench) call.

``fetch`` lands one source's business date page by page into
``<landing_root>/<source>/<date>/<fetch_id>/`` (docs/internals.md, "Landing contract") and returns that
folder once its manifest says ``complete``; the manifest holds the record count. Re-running it with the
same ``fetch_id`` resumes an interrupted fetch after its last verified page, or returns a complete one
without touching the source.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import requests

from ingest import settings
from ingest.clients.base import Client, Conn
from ingest.clients.eleme import ElemeClient
from ingest.clients.meituan import MeituanClient
from ingest.clients.sf import SfClient
from ingest.clients.shansong import ShansongClient
from ingest.clients.stations import StationsClient
from ingest.clients.union import UnionMembersClient, UnionOrgsClient
from ingest.http import HttpClient, NotYetPublished, RetryPolicy, SourceError, SourceUnavailable
from ingest.landing import Landing
from ingest.pii import PiiHasher

CLIENTS: dict[str, type[Client]] = {
    "meituan": MeituanClient,
    "eleme": ElemeClient,
    "sf": SfClient,
    "shansong": ShansongClient,
    "union_members": UnionMembersClient,
    "union_orgs": UnionOrgsClient,
    "stations": StationsClient,
}

# Airflow Connection id of each source (sources.md); both union exports share one account.
CONNECTION_IDS: dict[str, str] = {
    "meituan": "xihu_meituan",
    "eleme": "xihu_eleme",
    "sf": "xihu_sf",
    "shansong": "xihu_shansong",
    "union_members": "xihu_union",
    "union_orgs": "xihu_union",
    "stations": "xihu_stations",
}
PII_CONNECTION_ID = "xihu_pii"

__all__ = [
    "CLIENTS",
    "CONNECTION_IDS",
    "PII_CONNECTION_ID",
    "Conn",
    "NotYetPublished",
    "RetryPolicy",
    "SourceError",
    "SourceUnavailable",
    "fetch",
]


def fetch(
    source: str,
    business_date: date | str,
    conn: Conn,
    pii: PiiHasher,
    fetch_id: str,
    landing_root: Path | str | None = None,
    *,
    policy: RetryPolicy | None = None,
    page_size: int | None = None,
    session: requests.Session | None = None,
) -> Path:
    """Land ``source`` for ``business_date`` and return the complete landing folder.

    ``policy`` tunes timeouts and retries, ``page_size`` overrides the client's page size (recorded in
    the manifest, so a resume must use the same), ``session`` lets the caller supply the HTTP session
    (proxies, certificates, instrumentation). Raises :class:`NotYetPublished`, :class:`SourceError`
    (refused: fix configuration) or :class:`SourceUnavailable` (retries exhausted: try again later).
    """
    if source not in CLIENTS:
        raise ValueError(f"unknown source {source!r}; known: {sorted(CLIENTS)}")
    day = date.fromisoformat(business_date) if isinstance(business_date, str) else business_date
    root = Path(landing_root) if landing_root is not None else settings.landing_dir()
    client = CLIENTS[source](conn, pii, HttpClient(source, policy, session), page_size)
    try:
        with Landing.open(root, source, day, fetch_id, client.request_params(day)) as landing:
            if landing.complete:
                return landing.folder
            started, state = landing.resume_state()
            if not started:
                state = client.first_state()
            page_no = len(landing.pages)
            while state is not None:
                page_no += 1
                page = client.fetch_page(day, state, page_no)
                landing.submit(client.ext, state, page.records, page.next, page.body)
                state = page.next
            landing.finish()
            return landing.folder
    finally:
        client.close()
