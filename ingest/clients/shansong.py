"""Shansong (闪送) order feed: signed form POST, page numbers, rate limit in the body (sources.md)."""

from __future__ import annotations

import functools
import hashlib
import json
import time
from datetime import date

import msgspec

from ingest.clients.base import Client, Page, decode_envelope
from ingest.http import Retry, SourceError

STATUS_OK = 200
STATUS_RATE_LIMITED = 40029


# Couriers' names and phones sit one level down (courier.name, courier.mobile), and shansong is 8 % of
# the volume: its pages are decoded whole, hashed as objects and re-encoded.
_DECODER = msgspec.json.Decoder(dict)


def shansong_sign(secret: str, client_id: str, data: str, shop_id: str, timestamp: str) -> str:
    """Uppercase hex MD5 of secret + clientId.. + data.. + shopId.. + timestamp.. (names then values)."""
    text = f"{secret}clientId{client_id}data{data}shopId{shop_id}timestamp{timestamp}"
    return hashlib.md5(text.encode()).hexdigest().upper()


class ShansongClient(Client):
    source = "shansong"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._hash_name = functools.lru_cache(self.PII_CACHE_SIZE)(functools.partial(self.pii.hash, kind="name"))

    def default_page_size(self) -> int:
        return 200

    def request_params(self, business_date: date) -> dict:
        return {"date": business_date.isoformat(), "pageSize": self.page_size}

    def first_state(self) -> dict:
        return {"pageNo": 1}

    def hash_name(self, value: object) -> str | None:
        if value is None:
            return None
        return self._hash_name(value if isinstance(value, str) else str(value))

    def fetch_page(self, business_date: date, state: dict, page_no: int) -> Page:
        page = int(state["pageNo"])
        client_id, shop_id = self.conn.login or "", str(self.conn.extra.get("shop_id", ""))
        data = json.dumps(
            {"date": business_date.isoformat(), "pageNo": page, "pageSize": self.page_size},
            separators=(",", ":"),
            ensure_ascii=False,
        )

        def build() -> dict:
            timestamp = str(int(time.time() * 1000))
            sign = shansong_sign(self.conn.password or "", client_id, data, shop_id, timestamp)
            form = {
                "clientId": client_id,
                "shopId": shop_id,
                "timestamp": timestamp,
                "data": data,
                "sign": sign,
            }
            return {"data": form}

        def handle(resp) -> dict:
            body = decode_envelope(resp, self.source, _DECODER)[1]
            status = body.get("status")
            if status == STATUS_RATE_LIMITED:
                raise Retry(f"body status 40029, rate limited ({body.get('msg')!r})")
            if status != STATUS_OK:
                raise SourceError(f"shansong: status {status!r} {body.get('msg')!r}")
            data = body.get("data")
            if not isinstance(data, dict) or not isinstance(data.get("list"), list):
                raise SourceError("shansong: response without data.list")
            return body

        endpoint = f"{self.base_url}/shansong/openapi/developer/v5/orderList"
        body = self.http.send("POST", endpoint, page=page_no, build=build, handle=handle)
        records = body["data"]["list"]
        for item in records:
            courier = item.get("courier") if isinstance(item, dict) else None
            if isinstance(courier, dict):
                if "mobile" in courier:
                    courier["mobile"] = self.hash_phone(courier["mobile"])
                if "name" in courier:
                    courier["name"] = self.hash_name(courier["name"])
        more = body["data"].get("hasMore") is True
        return Page(len(records), {"pageNo": page + 1} if more else None, msgspec.json.encode(body))
