"""Meituan order feed: signed GET, offset paging (sources.md, "meituan")."""

from __future__ import annotations

import hashlib
import time
from datetime import date

import msgspec

from ingest.clients.base import Client, JsonFieldHasher, Page, decode_envelope, hash_field, hash_json_page
from ingest.http import Retry, SourceError

MAX_LIMIT = 1000
CODE_BAD_SIGN = 1001
CODE_TIMESTAMP_SKEW = 1002


class _Data(msgspec.Struct):
    total: int
    orders: list[msgspec.Raw]


class _Envelope(msgspec.Struct):
    code: int | None = None
    msg: str | None = None
    data: _Data | None = None


_DECODER = msgspec.json.Decoder(_Envelope)


def meituan_sign(secret: str, params: dict[str, str]) -> str:
    """Lowercase hex SHA-1 of the secret followed by every other parameter as ``key+value``, by key."""
    text = secret + "".join(f"{k}{params[k]}" for k in sorted(params) if k != "sign")
    return hashlib.sha1(text.encode()).hexdigest()


class MeituanClient(Client):
    source = "meituan"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._phones = [JsonFieldHasher("courier_phone", self.hash_phone)]

    def default_page_size(self) -> int:
        return MAX_LIMIT

    def request_params(self, business_date: date) -> dict:
        if not 0 < self.page_size <= MAX_LIMIT:
            raise ValueError(f"meituan limit must be 1..{MAX_LIMIT}, not {self.page_size}")
        return {"date": business_date.isoformat(), "limit": self.page_size}

    def first_state(self) -> dict:
        return {"offset": 0}

    def fetch_page(self, business_date: date, state: dict, page_no: int) -> Page:
        offset = int(state["offset"])
        fixed = {
            "app_key": self.conn.login or "",
            "date": business_date.isoformat(),
            "offset": str(offset),
            "limit": str(self.page_size),
        }

        def build() -> dict:
            # Signed afresh on every attempt: a retry after a long backoff must not carry a stale timestamp.
            params = dict(fixed, timestamp=str(int(time.time())))
            params["sign"] = meituan_sign(self.conn.password or "", params)
            return {"params": params}

        def handle(resp) -> tuple[bytes, _Envelope]:
            body, env = decode_envelope(resp, self.source, _DECODER)
            if env.code == CODE_TIMESTAMP_SKEW:
                raise Retry(f"code 1002, timestamp refused as skewed ({env.msg!r}): signing afresh", immediate=True)
            if env.code == CODE_BAD_SIGN:
                raise SourceError(
                    f"meituan refused the signature (code 1001 {env.msg!r}): check app_key and secret of "
                    "connection xihu_meituan"
                )
            if env.code != 0 or env.data is None:
                raise SourceError(f"meituan: code {env.code!r} {env.msg!r}")
            return body, env

        url = f"{self.base_url}/meituan/v1/orders"
        body, env = self.http.send("GET", url, page=page_no, build=build, handle=handle)
        count, total = len(env.data.orders), env.data.total
        if not count and offset < total:
            raise SourceError(f"meituan: empty page at offset {offset} although total is {total}")
        body = hash_json_page(
            body,
            self._phones,
            lambda doc: hash_field(doc["data"]["orders"], "courier_phone", self.hash_phone),
        )
        # A page may repeat the last record of the page before (the feed is not snapshot-consistent), so
        # the offset advances by what was asked for, never by more.
        after = offset + min(count, self.page_size)
        return Page(count, {"offset": after} if after < total else None, body)
