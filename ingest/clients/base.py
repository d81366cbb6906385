"""What every source client shares: the connection, the page, JSON envelopes and PII replacement.

A client knows its platform's quirks (auth, signing, paging, encodings, where personal data sits) and
nothing else: it lands what the source said, with personal data hashed, and leaves the mapping to
canonical fields to dbt staging.

Speed: a district day is ~180k meituan orders, and the budget is >= 100k records/s. Decoding every record
into Python objects and encoding it again costs more than that budget on its own, so JSON pages are
handled on their bytes: the envelope is decoded with the records left as raw JSON (``msgspec.Raw``, a
validating scan), and each personal-data value is replaced in place by a regular expression whose only
per-record Python work is the (memoised) keyed hash. Whenever a page does not fit that fast path (a key
whose value is an object, a float...), the page is decoded, hashed and re-encoded the slow, sure way.
"""

from __future__ import annotations

import functools
import re
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from typing import BinaryIO, ClassVar

import msgspec
import requests

from ingest.http import HttpClient, Retry, SourceError, describe
from ingest.pii import PiiHasher

CHUNK = 1 << 16


@dataclass(frozen=True)
class Conn:
    """The parts of an Airflow Connection a client needs (the DAG builds it from
    ``BaseHook.get_connection(id)``; ``ingest`` never imports Airflow). ``host`` is the base URL."""

    host: str
    login: str | None = None
    password: str | None = None
    extra: dict = field(default_factory=dict)

    @property
    def base_url(self) -> str:
        if not self.host or "://" not in self.host:
            raise ValueError(f"connection host {self.host!r} must be the source's base URL (http[s]://...)")
        return self.host.rstrip("/")


@dataclass
class Page:
    """One landed page: the records the source sent in it, the paging state after it (None on the last
    page), and its content (bytes, or a temporary file for whole-file sources), PII already hashed."""

    records: int
    next: dict | None
    body: bytes | BinaryIO


class Client:
    """Base of every source client. Subclasses set ``source``/``ext`` and implement the hooks."""

    source: ClassVar[str]
    ext: ClassVar[str] = "json"
    # Phones repeat across a day (a rider delivers dozens of orders): memoising the keyed hash keeps the
    # per-record cost of PII replacement to a dictionary lookup. Bounded, so memory stays flat.
    PII_CACHE_SIZE: ClassVar[int] = 1 << 17

    def __init__(self, conn: Conn, pii: PiiHasher, http: HttpClient, page_size: int | None = None):
        self.conn = conn
        self.base_url = conn.base_url
        self.pii = pii
        self.http = http
        self.page_size = page_size or self.default_page_size()
        self._phone_cached = functools.lru_cache(self.PII_CACHE_SIZE)(pii.phone)

    def hash_phone(self, value: object) -> str | None:
        """Keyed hash of a phone; a value of an odd JSON type (a malformed record) is hashed from its
        text rather than landed in clear."""
        if isinstance(value, str | int):
            return self._phone_cached(value)
        return self.pii.phone(None if value is None else str(value))

    def default_page_size(self) -> int:
        """Page size when the caller gives none (0 for whole-file sources)."""
        return 0

    def request_params(self, business_date: date) -> dict:
        """The fixed request parameters of the whole fetch (recorded in the manifest; no secrets)."""
        raise NotImplementedError

    def first_state(self) -> dict:
        """Paging state of the first page."""
        raise NotImplementedError

    def fetch_page(self, business_date: date, state: dict, page_no: int) -> Page:
        """Fetch the page ``state`` names, complete and with its personal data hashed."""
        raise NotImplementedError

    def close(self) -> None:
        self.http.close()


def decode_envelope(resp: requests.Response, source: str, decoder: msgspec.json.Decoder) -> tuple[bytes, object]:
    """The body and its envelope (records left as raw JSON). A body that does not parse was cut short (a
    reset mid-body) or garbled in transit: ask again. A body that parses into the wrong shape is the
    source breaking its contract: stop."""
    if resp.status_code != 200:
        raise SourceError(f"{source}: {describe(resp)}")
    content = resp.content
    try:
        return content, decoder.decode(content)
    except msgspec.ValidationError as exc:
        raise SourceError(f"{source}: the response does not have the documented shape: {exc}") from None
    except msgspec.DecodeError as exc:
        raise Retry(f"body is not valid JSON ({len(content)} bytes): {exc}") from None


class JsonFieldHasher:
    """Replaces every value of one JSON key in a body by its keyed hash, working on the bytes.

    Handles string, integer and null values (a phone is one of those). :meth:`apply` returns None when
    the key occurs somewhere this could not replace (another value type, odd spacing), so that the caller
    falls back to a full decode: personal data never passes through unhashed. The replacement of each
    distinct raw value is memoised, so a page costs one split, one dictionary lookup a record and a join.
    """

    MEMO_SIZE = 1 << 17

    def __init__(self, key: str, hash_value: Callable[[object], str | None]):
        self._quoted = b'"' + key.encode() + b'"'
        self._prefix = self._quoted + b":"
        self._pattern = re.compile(re.escape(self._quoted) + rb'\s*:\s*("(?:[^"\\]|\\.)*"|-?\d+(?=[,}\s])|null)')
        self._hash = hash_value
        self._memo: dict[bytes, bytes] = {}

    def _replacement(self, value: bytes) -> bytes:
        if value == b"null":
            return self._prefix + b"null"
        if value[:1] == b'"':
            text = msgspec.json.decode(value) if b"\\" in value else value[1:-1].decode()
        else:
            text = value.decode()
        hashed = self._hash(text)
        return self._prefix + (b"null" if hashed is None else b'"' + hashed.encode() + b'"')

    def apply(self, body: bytes) -> bytes | None:
        # split() with one group alternates [text, value, text, value, ..., text].
        parts = self._pattern.split(body)
        if len(parts) // 2 != body.count(self._quoted):
            return None
        memo = self._memo
        if len(memo) > self.MEMO_SIZE:
            memo.clear()
        for i in range(1, len(parts), 2):
            value = parts[i]
            replaced = memo.get(value)
            if replaced is None:
                replaced = memo[value] = self._replacement(value)
            parts[i] = replaced
        return b"".join(parts)


def hash_json_page(
    body: bytes,
    fast: list[JsonFieldHasher],
    slow: Callable[[dict], None],
) -> bytes:
    """The page with its personal data hashed: byte-level replacement when every key fits, otherwise a
    full decode, ``slow(decoded_body)`` in place, and a re-encode."""
    out: bytes | None = body
    for hasher in fast:
        out = hasher.apply(out)
        if out is None:
            decoded = msgspec.json.decode(body)
            slow(decoded)
            return msgspec.json.encode(decoded)
    return out


def hash_field(records: object, key: str, hasher: Callable[[object], str | None]) -> None:
    """Replace ``record[key]`` by its keyed hash in every record that has it (in place)."""
    if not isinstance(records, list):
        return
    for rec in records:
        if isinstance(rec, dict) and key in rec:
            value = rec[key]
            rec[key] = None if value is None else hasher(value)


def spool_body(resp: requests.Response, source: str) -> BinaryIO:
    """Stream a 200 response's body into an anonymous temporary file (whole-file sources: union CSV,
    station logs). Memory stays flat, and a body cut short raises here, inside the retry loop, before
    anything is written to landing."""
    if resp.status_code != 200:
        raise SourceError(f"{source}: {describe(resp)}")
    spool = tempfile.TemporaryFile()
    try:
        for chunk in resp.iter_content(CHUNK):
            spool.write(chunk)
        spool.seek(0)
    except BaseException:
        spool.close()
        raise
    return spool
