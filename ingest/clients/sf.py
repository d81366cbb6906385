"""SF (顺丰同城) order feed: JSON POST signed over its exact bytes, page numbers (sources.md, "sf").

Pages are not snapshot-consistent (a record may appear on two pages); the loader deduplicates, the
client lands every page as sent.
"""

from __future__ import annotations

import base64
import hashlib
import json
import time
import urllib.parse
from datetime import date

import msgspec

from ingest.clients.base import Client, JsonFieldHasher, Page, decode_envelope, hash_field, hash_json_page
from ingest.http import SourceError


class _Result(msgspec.Struct):
    page: int
    total_page: int
    records: list[msgspec.Raw] = msgspec.field(name="list")


class _Envelope(msgspec.Struct):
    error_code: int | None = None
    error_msg: str | None = None
    result: _Result | None = None


_DECODER = msgspec.json.Decoder(_Envelope)


def sf_sign(body: bytes, dev_id: str, dev_key: str) -> str:
    """URL-encoded base64 of the raw MD5 of ``body + "&" + dev_id + "&" + dev_key`` (body = bytes sent)."""
    digest = hashlib.md5(body + b"&" + dev_id.encode() + b"&" + dev_key.encode()).digest()
    return urllib.parse.quote(base64.b64encode(digest).decode(), safe="")


class SfClient(Client):
    source = "sf"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._phones = [JsonFieldHasher("operator_phone", self.hash_phone)]

    def default_page_size(self) -> int:
        return 500

    def request_params(self, business_date: date) -> dict:
        return {"date": business_date.isoformat(), "page_size": self.page_size}

    def first_state(self) -> dict:
        return {"page": 1}

    def fetch_page(self, business_date: date, state: dict, page_no: int) -> Page:
        dev_id = self.conn.login or ""
        page = int(state["page"])
        endpoint = f"{self.base_url}/sf/open/api/external/listorderfeed"

        def build() -> dict:
            payload = {
                "dev_id": int(dev_id) if dev_id.isdigit() else dev_id,
                "date": business_date.isoformat(),
                "page": page,
                "page_size": self.page_size,
                "push_time": int(time.time()),
            }
            # The signature covers these exact bytes, so they are serialised once and sent as they are.
            body = json.dumps(payload, separators=(",", ":")).encode()
            sign = sf_sign(body, dev_id, self.conn.password or "")
            return {
                "url": f"{endpoint}?sign={sign}",
                "data": body,
                "headers": {"Content-Type": "application/json"},
            }

        def handle(resp) -> tuple[bytes, _Envelope]:
            body, env = decode_envelope(resp, self.source, _DECODER)
            if env.error_code != 0 or env.result is None:
                raise SourceError(f"sf: error_code {env.error_code!r} {env.error_msg!r}")
            return body, env

        body, env = self.http.send("POST", endpoint, page=page_no, build=build, handle=handle)
        body = hash_json_page(
            body,
            self._phones,
            lambda doc: hash_field(doc["result"]["list"], "operator_phone", self.hash_phone),
        )
        more = page < env.result.total_page
        return Page(len(env.result.records), {"page": page + 1} if more else None, body)
