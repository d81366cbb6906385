"""The rider stations in the sandbox (sources.md 3): day D's gzipped NDJSON log behind an API key.

A day's file is published at D+1 00:30 (404 before, and under the ``stations_unpublished`` fault); it
always carries a few truncated lines, more under ``malformed`` or ``truncated_lines``. Errors sources.md
does not spell out: HTTP 401 on a bad ``X-Api-Key``.
"""

from __future__ import annotations

import gzip
import hmac
from datetime import date, timedelta
from urllib.parse import urlsplit

from sandbox import faults
from sandbox.credentials import CONNECTIONS
from sandbox.wire import BadRequest, day_start, dumps, parse_day

API_KEY = CONNECTIONS["xihu_stations"]["password"]
PUBLISHED_AFTER = timedelta(days=1, minutes=30)
BASELINE_TRUNCATED = 0.0005
PATH_PREFIX = "/stations/v1/logs/"


def truncation_rate(rates: dict) -> float:
    return max(BASELINE_TRUNCATED, rates.get("malformed", 0.0), rates.get("truncated_lines", 0.0))


def log_file(world, seed: int, day: date, rate: float) -> bytes:
    """Day D's gzipped NDJSON log, with a deterministic few lines truncated mid-JSON."""
    lines = []
    for i, event in enumerate(world.station_events(day)):
        line = dumps(event)
        if faults.hit(seed, "truncated", f"{day}|{i}", rate):
            line = line[: len(line) // 2]
        lines.append(line)
    return gzip.compress(b"\n".join(lines) + b"\n" if lines else b"", compresslevel=6, mtime=0)


def serve(h) -> None:
    h.serve(f"stations|{urlsplit(h.path).path}", faults.HTTP_FAULTS, lambda: _file(h))


def _file(h):
    if not hmac.compare_digest(h.headers.get("X-Api-Key", ""), API_KEY):
        raise BadRequest(401, {"error": "invalid api key"})
    name = urlsplit(h.path).path.rsplit("/", 1)[-1]
    not_found = BadRequest(404, {"error": "not found", "file": name})
    if not name.endswith(".ndjson.gz"):
        raise not_found
    day = parse_day(name[: -len(".ndjson.gz")], not_found)
    published = h.state.now() >= day_start(day) + PUBLISHED_AFTER
    unpublished = faults.hit(h.state.seed, "stations_unpublished", str(day), h.rates.get("stations_unpublished", 0.0))
    if not published or unpublished:
        raise not_found
    return 200, h.state.station_file(day, h.rates), "application/gzip", {}
