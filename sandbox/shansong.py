"""Shansong (闪送) in the sandbox (sources.md 1.4): the order encoding, its faults, and the signed list API.

Shansong always answers HTTP 200, so its rate limit is the body status 40029 (the ``body_rate_limit``
fault), never an HTTP 429. Errors sources.md does not spell out: ``status`` 40003 (bad clientId, shopId
or sign) and 40001 (bad parameter).
"""

from __future__ import annotations

import hashlib
import hmac
import json
from urllib.parse import parse_qsl

from sandbox.credentials import CONNECTIONS
from sandbox.wire import BadRequest, int_param, iso, json_page, parse_day

PLATFORM = "shansong"
_CONN = CONNECTIONS["xihu_shansong"]
CLIENT_ID, SECRET, SHOP_ID = _CONN["login"], _CONN["password"], _CONN["extra"]["shop_id"]
MAX_PAGE_SIZE = 200
ID_FIELD = "orderNo"
TRANSIENT_FAULTS = ("http_5xx", "body_rate_limit", "slow", "reset")

_ACCESS = {
    None: None,
    "code_scan": "CODE",
    "nfc_tap": "NFC",
    "order_show": "ORDER",
    "registration": "MANUAL",
}
_PARKING = {"none": "NONE", "rider_bay": "BAY", "roadside": "ROADSIDE"}


def encode(o: dict) -> dict:
    log = [
        {"status": code, "time": iso(t)}
        for code, t in (
            (20, o["t_ordered"]),
            (30, o["t_accepted"]),
            (40, o["t_picked_up"]),
            (50, o["t_delivered"]),
            (60, o["t_cancelled"]),
        )
        if t is not None
    ]
    return {
        "orderNo": str(o["order_id"]),
        "courier": {"id": o["rider_id"], "mobile": o["rider_phone"], "name": o["rider_name"]},
        "receiver": {"lng": o["dest_lng"], "lat": o["dest_lat"], "aoiId": o["aoi_id"]},
        "statusChangeLog": log,
        "gateTime": iso(o["t_gate"]),
        "accessMode": _ACCESS[o["entry_method"]],
        "parkingMode": _PARKING[o["parking"]],
        "useLocker": bool(o["locker_used"]),
        "elderCare": bool(o["elderly_meal"]),
        "distance": int(o["distance_m"]),
        "amount": int(o["fee_cents"]),
    }


def malform(rec: dict, kind: int) -> dict:
    """See :func:`sandbox.encode.malform`; ``rec`` is a copy."""
    if kind == 0:
        rec[ID_FIELD] = None
    elif kind == 1:
        rec["receiver"] = dict(rec["receiver"], lng=str(rec["receiver"]["lng"]))
    elif kind == 2:
        rec["receiver"] = dict(rec["receiver"], lng=151.2, lat=-33.9)
    else:
        rec["statusChangeLog"] = [
            dict(s, time="yesterday evening") if s["status"] == 20 else s for s in rec["statusChangeLog"]
        ]
    return rec


def drift_drop(rec: dict) -> None:
    """Schema drift's dropped optional field: the AOI id inside ``receiver``."""
    rec["receiver"] = {k: v for k, v in rec["receiver"].items() if k != "aoiId"}


def sign(form: dict) -> str:
    plain = SECRET + "".join(k + form.get(k, "") for k in ("clientId", "data", "shopId", "timestamp"))
    return hashlib.md5(plain.encode()).hexdigest().upper()


def serve(h) -> None:
    h.form = dict(parse_qsl(h.body.decode("utf-8", "replace"), keep_blank_values=True))
    try:
        data = json.loads(h.form.get("data", ""))
        identity = f"shansong|{data.get('date')}|{data.get('pageNo')}|{data.get('pageSize')}"
    except (ValueError, AttributeError):
        identity = "shansong|unparseable"
    h.serve(identity, TRANSIENT_FAULTS, lambda: _page(h))


def _page(h):
    f = h.form
    bad = BadRequest(200, {"status": 40001, "msg": "参数错误"})
    if (
        f.get("clientId") != CLIENT_ID
        or f.get("shopId") != SHOP_ID
        or not hmac.compare_digest(f.get("sign", ""), sign(f))
    ):
        raise BadRequest(200, {"status": 40003, "msg": "签名错误"})
    try:
        data = json.loads(f.get("data", ""))
    except ValueError:
        raise bad from None
    if not isinstance(data, dict):
        raise bad
    day = parse_day(data.get("date"), bad)
    page = int_param(data.get("pageNo", 1), 1, 10**7, bad)
    size = int_param(data.get("pageSize", MAX_PAGE_SIZE), 1, MAX_PAGE_SIZE, bad)
    d = h.state.day(PLATFORM, day, h.state.corrected(day))
    start = (page - 1) * size
    recs = h.state.page(PLATFORM, d, day, start, size, h.rates)
    more = b"true" if start + size < len(d.blobs) else b"false"
    return json_page(
        b'{"status":200,"msg":"OK","data":{"pageNo":%d,"hasMore":%b,"list":[%b]}}' % (page, more, b",".join(recs))
    )


ROUTES = {("POST", "/shansong/openapi/developer/v5/orderList"): serve}
