"""Per-platform wire encodings of the sandbox's canonical orders (sources.md, section 1).

The World produces platform-neutral orders (docs/internals.md, "World model"); each platform publishes
them under its own field names, codes, time formats and coordinate systems. Encoding here, and nowhere
else, keeps the sandbox faithful to the contract the real clients and dbt staging are written against.
Everything is deterministic per order id, so the same order always looks the same on the wire.
"""

from __future__ import annotations

import hashlib
import math
import random
from datetime import datetime, timedelta, timezone

CST = timezone(timedelta(hours=8))

# Share of sf orders reported in Baidu BD-09 (lbs_type 1) rather than Gaode GCJ-02 (lbs_type 2).
SF_BD09_SHARE = 0.30
# Share of eleme orders whose status_log carries a repeated push (the contract says duplicates happen).
ELEME_DUPLICATE_PUSH_SHARE = 0.10

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


def _unix(t: datetime | None) -> int | None:
    return None if t is None else int(t.timestamp())


def _ms(t: datetime | None) -> int | None:
    return None if t is None else int(t.timestamp() * 1000)


def _local_text(t: datetime | None) -> str:
    return "" if t is None else t.astimezone(CST).strftime("%Y-%m-%d %H:%M:%S")


def _iso(t: datetime | None) -> str | None:
    return None if t is None else t.astimezone(CST).isoformat(timespec="seconds")


# ---------------------------------------------------------------- meituan
_MT_STATUS = {"accepted": 20, "picked_up": 30, "delivered": 50, "cancelled": 99}
MEITUAN_SHOPS = 6000  # the world has no shops; poi_id is a stable synthetic merchant id per shop order


def _poi_id(shop_order_id: str) -> str:
    return f"{int(unit_hash('poi', shop_order_id) * MEITUAN_SHOPS) + 1:05d}"


def meituan(o: dict) -> dict:
    return {
        "order_id": str(o["order_id"]),
        "courier_id": o["rider_id"],
        "courier_phone": o["rider_phone"],
        "poi_id": _poi_id(o["shop_order_id"]),
        "recipient_lng": o["dest_lng"],
        "recipient_lat": o["dest_lat"],
        "recipient_aoi_id": o["aoi_id"],
        "status": _MT_STATUS[o["status"]],
        "platform_order_time": _unix(o["t_ordered"]),
        "grab_time": _unix(o["t_accepted"]),
        "fetch_time": _unix(o["t_picked_up"]),
        "gate_arrive_time": _unix(o["t_gate"]),
        "arrive_time": _unix(o["t_delivered"]),
        "entry_method": o["entry_method"],
        "parking": o["parking"],
        "locker_used": bool(o["locker_used"]),
        "elderly_meal": bool(o["elderly_meal"]),
        "distance_m": int(o["distance_m"]),
        "fee_cents": int(o["fee_cents"]),
    }


# ---------------------------------------------------------------- eleme
_ELM_ENTRY = {None: 0, "code_scan": 1, "nfc_tap": 2, "order_show": 3, "registration": 4}
_ELM_PARKING = {"none": 0, "rider_bay": 1, "roadside": 2}


def _eleme_status(o: dict) -> int:
    if o["status"] == "accepted":
        return 80 if o["t_at_shop"] is not None else 20
    return {"picked_up": 2, "delivered": 3, "cancelled": 4}[o["status"]]


def eleme(o: dict) -> dict:
    pushes = [
        (code, _ms(t))
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
    if rng.random() < ELEME_DUPLICATE_PUSH_SHARE:
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
        "order_status": _eleme_status(o),
        "status_log": [{"order_status": code, "push_time": ms} for code, ms in pushes],
        "gate_arrive_time": _ms(o["t_gate"]),
        "entry_type": _ELM_ENTRY[o["entry_method"]],
        "parking_type": _ELM_PARKING[o["parking"]],
        "cabinet_used": int(bool(o["locker_used"])),
        "is_elder_care": int(bool(o["elderly_meal"])),
        "distance": int(o["distance_m"]),
        "fee": f"{o['fee_cents'] / 100:.2f}",
    }


# ---------------------------------------------------------------- sf
_SF_ENTRY = {
    None: "",
    "code_scan": "扫码",
    "nfc_tap": "碰一碰",
    "order_show": "出示订单",
    "registration": "登记",
}
_SF_PARKING = {"none": "", "rider_bay": "专属车位", "roadside": "路边"}
_YES_NO = {True: "是", False: "否"}


def _sf_status(o: dict) -> int:
    if o["status"] == "accepted":
        return 12 if o["t_at_shop"] is not None else 10
    return {"picked_up": 15, "delivered": 17, "cancelled": 2}[o["status"]]


def sf(o: dict) -> dict:
    lng, lat, lbs_type = o["dest_lng"], o["dest_lat"], 2
    if unit_hash("sf-bd09", o["order_id"]) < SF_BD09_SHARE:
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
        "order_status": _sf_status(o),
        "create_time": _local_text(o["t_ordered"]),
        "receive_time": _local_text(o["t_accepted"]),
        "pickup_time": _local_text(o["t_picked_up"]),
        "gate_time": _local_text(o["t_gate"]),
        "complete_time": _local_text(o["t_delivered"]),
        "entry_method": _SF_ENTRY[o["entry_method"]],
        "parking": _SF_PARKING[o["parking"]],
        "locker": _YES_NO[bool(o["locker_used"])],
        "elder_care": _YES_NO[bool(o["elderly_meal"])],
        "distance_km": round(o["distance_m"] / 1000.0, 3),
        "total_price": int(o["fee_cents"]),
    }


# ---------------------------------------------------------------- shansong
_SS_ACCESS = {
    None: None,
    "code_scan": "CODE",
    "nfc_tap": "NFC",
    "order_show": "ORDER",
    "registration": "MANUAL",
}
_SS_PARKING = {"none": "NONE", "rider_bay": "BAY", "roadside": "ROADSIDE"}


def shansong(o: dict) -> dict:
    log = [
        {"status": code, "time": _iso(t)}
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
        "gateTime": _iso(o["t_gate"]),
        "accessMode": _SS_ACCESS[o["entry_method"]],
        "parkingMode": _SS_PARKING[o["parking"]],
        "useLocker": bool(o["locker_used"]),
        "elderCare": bool(o["elderly_meal"]),
        "distance": int(o["distance_m"]),
        "amount": int(o["fee_cents"]),
    }


ENCODERS = {"meituan": meituan, "eleme": eleme, "sf": sf, "shansong": shansong}

# The id field of each platform's record, and what the faults touch (sources.md quarantine rules).
ID_FIELD = {"meituan": "order_id", "eleme": "open_order_code", "sf": "sf_order_id", "shansong": "orderNo"}


def malform(platform: str, rec: dict, kind: int) -> dict:
    """Break one record the way real feeds break, one quarantine reason per ``kind`` (0..3).

    0 missing id, 1 a required field with the wrong JSON type, 2 coordinates outside China,
    3 an order time unparseable in the platform's format.
    """
    rec = dict(rec)
    if kind == 0:
        rec[ID_FIELD[platform]] = "" if platform in ("eleme", "sf") else None
    elif kind == 1:
        if platform == "meituan":
            rec["recipient_lng"] = str(rec["recipient_lng"])
        elif platform == "eleme":
            rec["lng"] = float(rec["lng"])
        elif platform == "sf":
            rec["user_lat"] = str(rec["user_lat"])
        else:
            rec["receiver"] = dict(rec["receiver"], lng=str(rec["receiver"]["lng"]))
    elif kind == 2:
        if platform == "meituan":
            rec["recipient_lng"], rec["recipient_lat"] = 0.0, 0.0
        elif platform == "eleme":
            rec["lng"], rec["lat"] = "0.000000", "0.000000"
        elif platform == "sf":
            rec["user_lng"], rec["user_lat"] = -73.98, 40.75
        else:
            rec["receiver"] = dict(rec["receiver"], lng=151.2, lat=-33.9)
    else:
        if platform == "meituan":
            rec["platform_order_time"] = "1970-01-01T00:00"
        elif platform == "eleme":
            rec["status_log"] = [dict(p, push_time="n/a") if p["order_status"] == 1 else p for p in rec["status_log"]]
        elif platform == "sf":
            rec["create_time"] = "2026/13/45 25:61"
        else:
            rec["statusChangeLog"] = [
                dict(s, time="yesterday evening") if s["status"] == 20 else s for s in rec["statusChangeLog"]
            ]
    return rec


# The optional field each platform's schema drift drops (the AOI id, or sf's gate time).
_DRIFT_DROP = {"meituan": "recipient_aoi_id", "eleme": "aoi_code", "sf": "gate_time"}


def drift(platform: str, rec: dict) -> dict:
    """Schema drift: an unknown field appears and an optional one disappears."""
    rec = dict(rec)
    rec["ext_info_v3"] = {"tag": "drift", "weather_code": 1}
    if platform == "shansong":
        rec["receiver"] = {k: v for k, v in rec["receiver"].items() if k != "aoiId"}
    else:
        rec.pop(_DRIFT_DROP[platform], None)
    return rec
