"""Source clients and :func:`fetch`, the one entry point the DAG (and the bench) call.

``fetch`` lands one source's business date page by page into
``<landing_root>/<source>/<date>/<fetch_id>/`` (docs/internals.md, "Landing contract") and returns that
folder once its manifest says ``complete``; the manifest holds the record count. Re-running it with the
same ``fetch_id`` resumes an interrupted fetch after its last verified page, or returns a complete one
without touching the source; a new ``fetch_id`` starts from the pages of an earlier fetch that fetching
now would not improve on (``ingest.landing.reuse_refusal``).

Progress goes to the standard logger ``ingest.clients`` (Airflow shows it in the task log): every page at
DEBUG; at INFO the first and the last page fetched and in between one page line at most every
``PROGRESS_EVERY_S`` seconds or ``PROGRESS_EVERY_PAGES`` pages (not 400 lines for a 400-page day); then
one totals line. Retries are WARNINGs of ``ingest.http``.
"""

from __future__ import annotations

import importlib
import logging
import time
from datetime import date, datetime
from pathlib import Path

import requests

from ingest import settings
from ingest.clients.base import Client, Conn
from ingest.http import HttpClient, NotYetPublished, RetryPolicy, SourceError, SourceUnavailable
from ingest.landing import Landing
from ingest.pii import PiiHasher
from ingest.registry import REGISTRY


def _client_class(path: str) -> type[Client]:
    module, name = path.split(":")
    return getattr(importlib.import_module(module), name)


# Each source's client class and Airflow Connection id, as the registry of sources declares them
# (sources.md; both union exports share one account).
CLIENTS: dict[str, type[Client]] = {s.name: _client_class(s.client) for s in REGISTRY}
CONNECTION_IDS: dict[str, str] = {s.name: s.connection_id for s in REGISTRY}
PII_CONNECTION_ID = "xihu_pii"
PROGRESS_EVERY_S = 10.0
PROGRESS_EVERY_PAGES = 50
log = logging.getLogger(__name__)

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
    now: datetime | None = None,
) -> Path:
    """Land ``source`` for ``business_date`` and return the complete landing folder.

    ``policy`` tunes timeouts and retries, ``page_size`` overrides the client's page size (recorded in
    the manifest, so a resume must use the same), ``session`` lets the caller supply the HTTP session
    (proxies, certificates, instrumentation), ``now`` is the time the fetch starts (default: the clock),
    which decides what earlier fetches may be reused (tests and a sandbox with its own clock set it).
    Raises :class:`NotYetPublished`, :class:`SourceError` (refused: fix configuration) or
    :class:`SourceUnavailable` (retries exhausted: try again later).
    """
    if source not in CLIENTS:
        raise ValueError(f"unknown source {source!r}; known: {sorted(CLIENTS)}")
    day = date.fromisoformat(business_date) if isinstance(business_date, str) else business_date
    root = Path(landing_root) if landing_root is not None else settings.landing_dir()
    label = f"{source} {day.isoformat()}"
    http = HttpClient(source, policy, session, label=label)
    client = CLIENTS[source](conn, pii, http, page_size)
    try:
        with Landing.open(root, source, day, fetch_id, client.request_params(day), now) as landing:
            if landing.complete:
                return landing.folder
            started, state = landing.resume_state()
            if not started:
                state = client.first_state()
            progress = _Progress(label, len(landing.pages), landing.manifest["records"])
            while state is not None:
                page_no = progress.landed_pages + 1
                page = client.fetch_page(day, state, page_no)
                landing.submit(client.ext, state, page.records, page.next, page.body)
                state = page.next
                progress.page(page_no, page.records, last=state is None)
            landing.finish()
            progress.done(http.retries_total)
            return landing.folder
    finally:
        client.close()


class _Progress:
    """The log lines of one fetch's pages (module docstring) and its totals."""

    def __init__(self, label: str, landed_pages: int, landed_records: int):
        self.label = label
        self.landed_pages, self.landed_records = landed_pages, landed_records
        self.landed_before = landed_pages
        self.pages = self.records = 0
        self.started = self.last_info = time.monotonic()
        self.pages_at_last_info = 0

    def page(self, number: int, records: int, last: bool) -> None:
        self.pages += 1
        self.records += records
        self.landed_pages += 1
        self.landed_records += records
        now = time.monotonic()
        loud = (
            self.pages == 1
            or last
            or now - self.last_info >= PROGRESS_EVERY_S
            or self.pages - self.pages_at_last_info >= PROGRESS_EVERY_PAGES
        )
        if loud:
            self.last_info, self.pages_at_last_info = now, self.pages
        log.log(
            logging.INFO if loud else logging.DEBUG,
            "%s page %d%s: %s records (%s so far)",
            self.label,
            number,
            " (last)" if last else "",
            f"{records:,}",
            f"{self.landed_records:,}",
        )

    def done(self, retries: int) -> None:
        seconds = time.monotonic() - self.started
        rate = self.records / seconds if seconds > 0 else 0.0
        before = f"; {_pages(self.landed_before)} were landed before" if self.landed_before else ""
        log.info(
            "%s: fetched %s, %s records, %d retries in %.1f s (%s records/s)%s",
            self.label,
            _pages(self.pages),
            f"{self.records:,}",
            retries,
            seconds,
            f"{rate:,.0f}",
            before,
        )


def _pages(n: int) -> str:
    return "1 page" if n == 1 else f"{n} pages"
