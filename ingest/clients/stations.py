"""Rest-station (暖蜂驿站) usage logs: one gzipped NDJSON file a day, API key (sources.md, section 3).

Landed line by line as received, except that ``rider_phone`` is replaced by its keyed hash. A line that
is not a JSON object (the contract says a few are truncated) is kept for the loader to quarantine, with
every phone-looking number in it hashed, so no clear number reaches disk either way.
"""

from __future__ import annotations

import gzip
import tempfile
import zlib
from datetime import date
from typing import BinaryIO

import msgspec

from ingest.clients.base import Client, Page, spool_body
from ingest.http import NotYetPublished, Retry, SourceError, describe

_GZIP_MAGIC = b"\x1f\x8b"
_decode = msgspec.json.decode
_encode = msgspec.json.encode


class StationsClient(Client):
    source = "stations"
    ext = "ndjson"

    def request_params(self, business_date: date) -> dict:
        return {"file": f"{business_date.isoformat()}.ndjson.gz"}

    def first_state(self) -> dict:
        return {}

    def fetch_page(self, business_date: date, state: dict, page_no: int) -> Page:
        """The day's log, decompressed and landed line by line into a temporary file inside the retry
        loop, so that a gzip stream cut short is simply asked for again."""

        def handle(resp) -> tuple[int, BinaryIO]:
            if resp.status_code == 404:
                raise NotYetPublished(
                    f"stations: the log of {business_date} is not published yet (HTTP 404); retry later"
                )
            if resp.status_code in (401, 403):
                raise SourceError(f"stations: API key refused, check connection xihu_stations: {describe(resp)}")
            landed = tempfile.TemporaryFile()
            try:
                with spool_body(resp, self.source) as spool:
                    # Served as a .gz file; if a proxy already removed a transfer gzip, it is plain text.
                    compressed = spool.read(2) == _GZIP_MAGIC
                    spool.seek(0)
                    with gzip.GzipFile(fileobj=spool, mode="rb") if compressed else spool as plain:
                        records = self._land_lines(plain, landed)
            except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
                landed.close()
                raise Retry(f"gzip body cut short or corrupt ({exc})") from None
            except BaseException:
                landed.close()
                raise
            landed.seek(0)
            return records, landed

        url = f"{self.base_url}/stations/v1/logs/{business_date.isoformat()}.ndjson.gz"
        records, landed = self.http.send(
            "GET",
            url,
            page=page_no,
            stream=True,
            handle=handle,
            build=lambda: {"headers": {"X-Api-Key": self.conn.password or ""}},
        )
        return Page(records, None, landed)

    def _land_lines(self, plain: BinaryIO, landed: BinaryIO) -> int:
        records = 0
        for raw in plain:
            line = raw.rstrip(b"\r\n")
            if not line.strip():
                continue
            landed.write(self.land_line(line))
            landed.write(b"\n")
            records += 1
        return records

    def land_line(self, line: bytes) -> bytes:
        """One line with its rider phone hashed; an unparseable line with phone-looking numbers hashed."""
        try:
            event = _decode(line)
        except msgspec.DecodeError:
            event = None
        if isinstance(event, dict):
            if "rider_phone" in event:
                event["rider_phone"] = self.hash_phone(event["rider_phone"])
            return _encode(event)
        return self.pii.scrub_text(line.decode("utf-8", errors="replace")).encode()
