"""Meituan in the sandbox (sources.md 1.1): the order encoding, its faults, and the signed order API.

Errors sources.md does not spell out: ``code`` 1003 (bad parameter).
"""

from __future__ import annotations

import hashlib
import hmac
import time

from sandbox import faults
from sandbox.credentials import CONNECTIONS
from sandbox.wire import BadRequest, int_param, json_page, parse_day, unit_hash, unix

PLATFORM = "meituan"
APP_KEY, SECRET = CONNECTIONS["xihu_meituan"]["login"], CONNECTIONS["xihu_meituan"]["password"]
MAX_LIMIT = 1000
MAX_SKEW_S = 300
ID_FIELD = "order_id"
DRIFT_DROP = "recipient_aoi_id"  # the optional field schema drift drops

_STATUS = {"accepted": 20, "picked_up": 30, "delivered": 50, "cancelled": 99}
SHOPS = 6000  # the world has no shops; poi_id is a stable synthetic merchant id per shop order


def _poi_id(shop_order_id: str) -> str:
    return f"{int(unit_hash('poi', shop_order_id) * SHOPS) + 1:05d}"


def encode(o: dict) -> dict:
    return {
        "order_id": str(o["order_id"]),
        "courier_id": o["rider_id"],
        "courier_phone": o["rider_phone"],
        "poi_id": _poi_id(o["shop_order_id"]),
        "recipient_lng": o["dest_lng"],
        "recipient_lat": o["dest_lat"],
        "recipient_aoi_id": o["aoi_id"],
        "status": _STATUS[o["status"]],
        "platform_order_time": unix(o["t_ordered"]),
        "grab_time": unix(o["t_accepted"]),
        "fetch_time": unix(o["t_picked_up"]),
        "gate_arrive_time": unix(o["t_gate"]),
        "arrive_time": unix(o["t_delivered"]),
        "entry_method": o["entry_method"],
        "parking": o["parking"],
        "locker_used": bool(o["locker_used"]),
        "elderly_meal": bool(o["elderly_meal"]),
        "distance_m": int(o["distance_m"]),
        "fee_cents": int(o["fee_cents"]),
    }


def malform(rec: dict, kind: int) -> dict:
    """See :func:`sandbox.encode.malform`; ``rec`` is a copy."""
    if kind == 0:
        rec[ID_FIELD] = None
    elif kind == 1:
        rec["recipient_lng"] = str(rec["recipient_lng"])
    elif kind == 2:
        rec["recipient_lng"], rec["recipient_lat"] = 0.0, 0.0
    else:
        rec["platform_order_time"] = "1970-01-01T00:00"
    return rec


def serve(h) -> None:
    q = h.query
    identity = f"meituan|{q.get('date')}|{q.get('offset')}|{q.get('limit')}"
    h.serve(identity, faults.HTTP_FAULTS, lambda: _page(h))


def _page(h):
    q = h.query
    bad = BadRequest(200, {"code": 1003, "msg": "invalid parameter"})
    signed = sorted((k, v) for k, v in h.query_pairs if k not in ("sign", "sandbox_fault"))
    expected = hashlib.sha1((SECRET + "".join(k + v for k, v in signed)).encode()).hexdigest()
    if q.get("app_key") != APP_KEY or not hmac.compare_digest(q.get("sign", ""), expected):
        raise BadRequest(200, {"code": 1001, "msg": "invalid sign"})
    try:
        skew = abs(time.time() - int(q.get("timestamp", "")))
    except ValueError:
        raise BadRequest(200, {"code": 1002, "msg": "invalid timestamp"}) from None
    if skew > MAX_SKEW_S:
        raise BadRequest(200, {"code": 1002, "msg": "timestamp expired"})
    day = parse_day(q.get("date"), bad)
    offset = int_param(q.get("offset", "0"), 0, 10**9, bad)
    limit = int_param(q.get("limit", "100"), 1, MAX_LIMIT, bad)
    d = h.state.day(PLATFORM, day, h.state.corrected(day))
    recs = h.state.page(PLATFORM, d, day, offset, limit, h.rates)
    return json_page(b'{"code":0,"msg":"ok","data":{"total":%d,"orders":[%b]}}' % (len(d.blobs), b",".join(recs)))


ROUTES = {("GET", "/meituan/v1/orders"): serve}
