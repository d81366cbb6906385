"""Eleme order feed: client-credentials token, refreshed on 401; cursor paging (sources.md, "eleme")."""

from __future__ import annotations

import time
from datetime import date

import msgspec

from ingest.clients.base import Client, JsonFieldHasher, Page, decode_envelope, hash_field, hash_json_page
from ingest.http import Retry, SourceError, describe

# Refresh a little before the announced expiry so a token does not die between build and send.
EXPIRY_MARGIN_S = 30.0


class _Token(msgspec.Struct):
    access_token: str
    expires_in: float = 600.0


class _Envelope(msgspec.Struct):
    items: list[msgspec.Raw]
    next_cursor: str | None = None


_TOKEN = msgspec.json.Decoder(_Token)
_DECODER = msgspec.json.Decoder(_Envelope)


class ElemeClient(Client):
    source = "eleme"
    _token: str | None = None
    _token_deadline: float = 0.0

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._phones = [JsonFieldHasher("carrier_driver_phone", self.hash_phone)]

    def default_page_size(self) -> int:
        return 500

    def request_params(self, business_date: date) -> dict:
        return {"date": business_date.isoformat(), "page_size": self.page_size}

    def first_state(self) -> dict:
        return {"cursor": None}

    def token(self) -> str:
        """A valid access token, fetched when there is none or it is about to expire."""
        if self._token and time.monotonic() < self._token_deadline:
            return self._token

        def handle(resp) -> _Token:
            if resp.status_code in (400, 401, 403):
                raise SourceError(f"eleme refused the app_id/app_secret of xihu_eleme: {describe(resp)}")
            return decode_envelope(resp, self.source, _TOKEN)[1]

        form = {
            "grant_type": "client_credentials",
            "app_id": self.conn.login,
            "app_secret": self.conn.password,
        }
        url = f"{self.base_url}/eleme/oauth/token"
        issued = self.http.send("POST", url, page="token", build=lambda: {"data": form}, handle=handle)
        self._token = issued.access_token
        self._token_deadline = time.monotonic() + max(0.0, issued.expires_in - EXPIRY_MARGIN_S)
        return self._token

    def fetch_page(self, business_date: date, state: dict, page_no: int) -> Page:
        cursor = state.get("cursor")
        params = {"date": business_date.isoformat(), "page_size": str(self.page_size)}
        if cursor is not None:
            params["cursor"] = cursor

        def build() -> dict:
            return {"params": params, "headers": {"Authorization": f"Bearer {self.token()}"}}

        def handle(resp) -> tuple[bytes, _Envelope]:
            if resp.status_code == 401:
                self._token = None
                raise Retry("HTTP 401, access token expired or revoked: fetching a new token", immediate=True)
            return decode_envelope(resp, self.source, _DECODER)

        url = f"{self.base_url}/eleme/v2/orders"
        body, env = self.http.send("GET", url, page=page_no, build=build, handle=handle)
        if env.next_cursor is not None and env.next_cursor == cursor:
            raise SourceError(f"eleme: next_cursor {env.next_cursor!r} repeats the requested cursor (would loop)")
        body = hash_json_page(
            body, self._phones, lambda doc: hash_field(doc["items"], "carrier_driver_phone", self.hash_phone)
        )
        nxt = None if env.next_cursor is None else {"cursor": env.next_cursor}
        return Page(len(env.items), nxt, body)
