"""What every platform module of the sandbox shares: hashing, time and coordinate formats, and the
request plumbing (errors in the platform's own shape, parameter parsing).

Everything is deterministic per input, so the same order always looks the same on the wire.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
from datetime import date, datetime, timedelta, timezone

CST = timezone(timedelta(hours=8))

_X_PI = math.pi * 3000.0 / 180.0


def unit_hash(*parts: object) -> float:
    """A uniform number in [0, 1) from the parts: deterministic, independent of PYTHONHASHSEED."""
    digest = hashlib.blake2b("|".join(map(str, parts)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2.0**64


def gcj02_to_bd09(lng: float, lat: float) -> tuple[float, float]:
    """The standard GCJ-02 -> BD-09 transform (the one Baidu's SDK applies)."""
    z = math.sqrt(lng * lng + lat * lat) + 0.00002 * math.sin(lat * _X_PI)
    theta = math.atan2(lat, lng) + 0.000003 * math.cos(lng * _X_PI)
    return z * math.cos(theta) + 0.0065, z * math.sin(theta) + 0.006


def bd09_to_gcj02(lng: float, lat: float) -> tuple[float, float]:
    """Inverse of :func:`gcj02_to_bd09` (what an sf client must apply to lbs_type 1 points)."""
    x, y = lng - 0.0065, lat - 0.006
    z = math.sqrt(x * x + y * y) - 0.00002 * math.sin(y * _X_PI)
    theta = math.atan2(y, x) - 0.000003 * math.cos(x * _X_PI)
    return z * math.cos(theta), z * math.sin(theta)


def unix(t: datetime | None) -> int | None:
    return None if t is None else int(t.timestamp())


def ms(t: datetime | None) -> int | None:
    return None if t is None else int(t.timestamp() * 1000)


def local_text(t: datetime | None) -> str:
    return "" if t is None else t.astimezone(CST).strftime("%Y-%m-%d %H:%M:%S")


def iso(t: datetime | None) -> str | None:
    return None if t is None else t.astimezone(CST).isoformat(timespec="seconds")


def day_start(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=CST)


def dumps(obj) -> bytes:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"), default=str).encode()


JSON = "application/json; charset=utf-8"


def json_page(body: bytes) -> tuple[int, bytes, str, dict]:
    """An HTTP 200 JSON response as the endpoint functions return it."""
    return 200, body, JSON, {}


def csv_gbk(columns: tuple[str, ...], rows: list[dict]) -> bytes:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\r\n")
    writer.writerow(columns)
    writer.writerows([[row.get(c, "") for c in columns] for row in rows])
    return buf.getvalue().encode("gbk")


class BadRequest(Exception):
    """A request the platform refuses: carries the platform's own error response."""

    def __init__(self, status: int, body: dict, headers: dict | None = None):
        super().__init__(body)
        self.status, self.body, self.headers = status, body, headers or {}


def parse_day(value: str | None, error: BadRequest) -> date:
    try:
        return date.fromisoformat(value or "")
    except ValueError:
        raise error from None


def int_param(value, lo: int, hi: int, error: BadRequest) -> int:
    try:
        n = int(value)
    except (TypeError, ValueError):
        raise error from None
    if not lo <= n <= hi:
        raise error
    return n
