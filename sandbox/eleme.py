"""Eleme in the sandbox (sources.md 1.2): the order encoding, its faults, OAuth tokens and the cursor API.

Errors sources.md does not spell out: HTTP 400 ``invalid_request``, HTTP 401 ``invalid_client`` /
``invalid_token``.
"""

from __future__ import annotations

import base64
import json
import random
from urllib.parse import parse_qsl

from sandbox import faults
from sandbox.credentials import CONNECTIONS
from sandbox.wire import BadRequest, dumps, int_param, json_page, ms, parse_day

PLATFORM = "eleme"
APP_ID, APP_SECRET = CONNECTIONS["xihu_eleme"]["login"], CONNECTIONS["xihu_eleme"]["password"]
PAGE_SIZE = 500
TOKEN_TTL_S = 600
ID_FIELD = "open_order_code"
DRIFT_DROP = "aoi_code"
# Share of orders whose status_log carries a repeated push (the contract says duplicates happen).
DUPLICATE_PUSH_SHARE = 0.10

_ENTRY = {None: 0, "code_scan": 1, "nfc_tap": 2, "order_show": 3, "registration": 4}
_PARKING = {"none": 0, "rider_bay": 1, "roadside": 2}


def _status(o: dict) -> int:
    if o["status"] == "accepted":
        return 80 if o["t_at_shop"] is not None else 20
    return {"picked_up": 2, "delivered": 3, "cancelled": 4}[o["status"]]


def encode(o: dict) -> dict:
    pushes = [
        (code, ms(t))
        for code, t in (
            (1, o["t_ordered"]),
            (20, o["t_accepted"]),
            (80, o["t_at_shop"]),
            (2, o["t_picked_up"]),
            (3, o["t_delivered"]),
            (4, o["t_cancelled"]),
        )
        if t is not None
    ]
    # "in any order, duplicates possible": a deterministic shuffle, and a repeated push on some orders.
    rng = random.Random(f"eleme-log|{o['order_id']}")
    if rng.random() < DUPLICATE_PUSH_SHARE:
        pushes.append(rng.choice(pushes))
    rng.shuffle(pushes)
    return {
        "open_order_code": str(o["order_id"]),
        "partner_order_code": o["shop_order_id"],
        "carrier_driver_id": o["rider_id"],
        "carrier_driver_phone": o["rider_phone"],
        "lng": f"{o['dest_lng']:.6f}",
        "lat": f"{o['dest_lat']:.6f}",
        "aoi_code": o["aoi_id"],
        "order_status": _status(o),
        "status_log": [{"order_status": code, "push_time": t} for code, t in pushes],
        "gate_arrive_time": ms(o["t_gate"]),
        "entry_type": _ENTRY[o["entry_method"]],
        "parking_type": _PARKING[o["parking"]],
        "cabinet_used": int(bool(o["locker_used"])),
        "is_elder_care": int(bool(o["elderly_meal"])),
        "distance": int(o["distance_m"]),
        "fee": f"{o['fee_cents'] / 100:.2f}",
    }


def malform(rec: dict, kind: int) -> dict:
    """See :func:`sandbox.encode.malform`; ``rec`` is a copy."""
    if kind == 0:
        rec[ID_FIELD] = ""
    elif kind == 1:
        rec["lng"] = float(rec["lng"])
    elif kind == 2:
        rec["lng"], rec["lat"] = "0.000000", "0.000000"
    else:
        rec["status_log"] = [dict(p, push_time="n/a") if p["order_status"] == 1 else p for p in rec["status_log"]]
    return rec


def serve_token(h) -> None:
    h.serve("eleme|token", faults.HTTP_FAULTS, lambda: _issue_token(h))


def _issue_token(h):
    form = dict(parse_qsl(h.body.decode("utf-8", "replace"), keep_blank_values=True))
    if form.get("grant_type") != "client_credentials":
        raise BadRequest(400, {"error": "unsupported_grant_type"})
    if form.get("app_id") != APP_ID or form.get("app_secret") != APP_SECRET:
        raise BadRequest(401, {"error": "invalid_client"})
    token = h.state.issue_token(h.rates, TOKEN_TTL_S)
    return json_page(dumps({"access_token": token, "token_type": "Bearer", "expires_in": TOKEN_TTL_S}))


def serve(h) -> None:
    q = h.query
    identity = f"eleme|{q.get('date')}|{q.get('cursor')}|{q.get('page_size')}"
    h.serve(identity, faults.HTTP_FAULTS, lambda: _page(h))


def _page(h):
    q = h.query
    bad = BadRequest(400, {"error": "invalid_request"})
    auth = h.headers.get("Authorization", "")
    if not auth.startswith("Bearer "):
        raise BadRequest(401, {"error": "invalid_token"}, {"WWW-Authenticate": "Bearer"})
    problem = h.state.use_token(auth[len("Bearer ") :].strip())
    if problem:
        raise BadRequest(401, {"error": problem}, {"WWW-Authenticate": f'Bearer error="{problem}"'})
    day = parse_day(q.get("date"), bad)
    size = int_param(q.get("page_size", str(PAGE_SIZE)), 1, PAGE_SIZE, bad)
    if q.get("cursor"):
        try:
            cur = json.loads(base64.urlsafe_b64decode(q["cursor"].encode()))
            offset, corrected = int(cur["o"]), bool(cur["c"])
        except (ValueError, KeyError, TypeError):
            raise bad from None
        if cur.get("d") != day.isoformat():
            raise bad
    else:  # the first page pins the version (corrected or not) that the cursor then walks
        offset, corrected = 0, h.state.corrected(day)
    d = h.state.day(PLATFORM, day, corrected)
    recs = h.state.page(PLATFORM, d, day, offset, size, h.rates)
    nxt = None
    if offset + size < len(d.blobs):
        token = dumps({"d": day.isoformat(), "o": offset + size, "c": int(corrected)})
        nxt = base64.urlsafe_b64encode(token).decode()
    return json_page(b'{"items":[%b],"next_cursor":%b}' % (b",".join(recs), dumps(nxt)))


ROUTES = {("POST", "/eleme/oauth/token"): serve_token, ("GET", "/eleme/v2/orders"): serve}
