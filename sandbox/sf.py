"""SF (顺丰同城) in the sandbox (sources.md 1.3): the order encoding, its faults, and the signed feed API.

Errors sources.md does not spell out: ``error_code`` 1001 (bad dev_id or sign) and 1003 (bad parameter).
sf pages are not snapshot-consistent even without faults (BASELINE_DUPLICATE_PAGES).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from urllib.parse import unquote

from sandbox import faults
from sandbox.credentials import CONNECTIONS
from sandbox.wire import BadRequest, gcj02_to_bd09, int_param, json_page, local_text, parse_day, unit_hash

PLATFORM = "sf"
DEV_ID, DEV_KEY = CONNECTIONS["xihu_sf"]["login"], CONNECTIONS["xihu_sf"]["password"]
MAX_PAGE_SIZE = 500
ID_FIELD = "sf_order_id"
DRIFT_DROP = "gate_time"
# Share of orders reported in Baidu BD-09 (lbs_type 1) rather than Gaode GCJ-02 (lbs_type 2).
BD09_SHARE = 0.30
# This share of pages repeats the last record of the page before; the ``duplicates`` fault raises it.
BASELINE_DUPLICATE_PAGES = 0.02

_ENTRY = {
    None: "",
    "code_scan": "扫码",
    "nfc_tap": "碰一碰",
    "order_show": "出示订单",
    "registration": "登记",
}
_PARKING = {"none": "", "rider_bay": "专属车位", "roadside": "路边"}
_YES_NO = {True: "是", False: "否"}


def _status(o: dict) -> int:
    if o["status"] == "accepted":
        return 12 if o["t_at_shop"] is not None else 10
    return {"picked_up": 15, "delivered": 17, "cancelled": 2}[o["status"]]


def encode(o: dict, bd09: bool | None = None) -> dict:
    """``bd09`` forces the point's system; by default BD09_SHARE of the orders, chosen by order id."""
    lng, lat, lbs_type = o["dest_lng"], o["dest_lat"], 2
    if bd09 if bd09 is not None else unit_hash("sf-bd09", o["order_id"]) < BD09_SHARE:
        lng, lat = gcj02_to_bd09(lng, lat)
        lbs_type = 1
    return {
        "sf_order_id": str(o["order_id"]),
        "shop_order_id": o["shop_order_id"],
        "rider_id": o["rider_id"],
        "operator_phone": o["rider_phone"],
        "user_lng": round(lng, 6),
        "user_lat": round(lat, 6),
        "lbs_type": lbs_type,
        "order_status": _status(o),
        "create_time": local_text(o["t_ordered"]),
        "receive_time": local_text(o["t_accepted"]),
        "pickup_time": local_text(o["t_picked_up"]),
        "gate_time": local_text(o["t_gate"]),
        "complete_time": local_text(o["t_delivered"]),
        "entry_method": _ENTRY[o["entry_method"]],
        "parking": _PARKING[o["parking"]],
        "locker": _YES_NO[bool(o["locker_used"])],
        "elder_care": _YES_NO[bool(o["elderly_meal"])],
        "distance_km": round(o["distance_m"] / 1000.0, 3),
        "total_price": int(o["fee_cents"]),
    }


def malform(rec: dict, kind: int) -> dict:
    """See :func:`sandbox.encode.malform`; ``rec`` is a copy."""
    if kind == 0:
        rec[ID_FIELD] = ""
    elif kind == 1:
        rec["user_lat"] = str(rec["user_lat"])
    elif kind == 2:
        rec["user_lng"], rec["user_lat"] = -73.98, 40.75
    else:
        rec["create_time"] = "2026/13/45 25:61"
    return rec


def serve(h) -> None:
    try:
        req = json.loads(h.body)
        identity = f"sf|{req.get('date')}|{req.get('page')}|{req.get('page_size')}"
    except (ValueError, AttributeError):
        identity = "sf|unparseable"
    h.serve(identity, faults.HTTP_FAULTS, lambda: _page(h))


def _page(h):
    bad = BadRequest(200, {"error_code": 1003, "error_msg": "invalid parameter"})
    refused = BadRequest(200, {"error_code": 1001, "error_msg": "sign error"})
    raw_sign = next((v for k, v in (p.partition("=")[::2] for p in h.raw_query.split("&")) if k == "sign"), "")
    digest = hashlib.md5(h.body + f"&{DEV_ID}&{DEV_KEY}".encode()).digest()
    if not hmac.compare_digest(unquote(raw_sign), base64.b64encode(digest).decode()):
        raise refused
    try:
        req = json.loads(h.body)
    except ValueError:
        raise bad from None
    if not isinstance(req, dict):
        raise bad
    if str(req.get("dev_id")) != DEV_ID:
        raise refused
    day = parse_day(req.get("date"), bad)
    page = int_param(req.get("page", 1), 1, 10**7, bad)
    size = int_param(req.get("page_size", MAX_PAGE_SIZE), 1, MAX_PAGE_SIZE, bad)
    d = h.state.day(PLATFORM, day, h.state.corrected(day))
    total_page = max(1, -(-len(d.blobs) // size))
    recs = h.state.page(PLATFORM, d, day, (page - 1) * size, size, h.rates)
    return json_page(
        b'{"error_code":0,"error_msg":"success","result":{"page":%d,"total_page":%d,"list":[%b]}}'
        % (page, total_page, b",".join(recs))
    )


ROUTES = {("POST", "/sf/open/api/external/listorderfeed"): serve}
