"""The sandbox serves every contract of sources.md over real HTTP, faults included, deterministically.

Encoders are checked on hand-written canonical orders; the server is checked end to end with the real
World on 127.0.0.1 (port 0), using plain ``requests`` calls that sign exactly as sources.md says.
"""

from __future__ import annotations

import base64
import csv
import gzip
import hashlib
import io
import json
import os
import subprocess
import sys
import time
from datetime import date, datetime, timedelta
from pathlib import Path
from urllib.parse import quote

import pytest
import requests

from sandbox import eleme, encode, faults, meituan, sf, shansong, wire
from sandbox.credentials import CONNECTIONS as CRED
from sandbox.server import SandboxHandle, make_server
from sandbox.wire import CST
from sandbox.world import World

ROOT = Path(__file__).resolve().parents[2]
UNION_AUTH = (CRED["xihu_union"]["login"], CRED["xihu_union"]["password"])
DAY = date(2026, 11, 18)
SEED, SCALE = 7, 0.01
AFTER_RUN = datetime(2026, 11, 19, 1, 30, tzinfo=CST)  # D+1 01:30: the daily run's time, before corrections
TIMEOUT = 10


# ------------------------------------------------------------------ canonical orders for the encoders
def _order(**overrides) -> dict:
    t0 = datetime(2026, 11, 18, 11, 58, 7, tzinfo=CST)
    order = {
        "order_id": "900001",
        "shop_order_id": "SO2026111812345678",
        "rider_id": "R0042",
        "rider_phone": "13812345678",
        "rider_name": "王小明",
        "dest_lng": 120.131234,
        "dest_lat": 30.271234,
        "aoi_id": "AOI-17",
        "status": "delivered",
        "t_ordered": t0,
        "t_accepted": t0 + timedelta(minutes=1),
        "t_at_shop": t0 + timedelta(minutes=9),
        "t_picked_up": t0 + timedelta(minutes=14),
        "t_gate": t0 + timedelta(minutes=31),
        "t_delivered": t0 + timedelta(minutes=35),
        "t_cancelled": None,
        "entry_method": "nfc_tap",
        "parking": "rider_bay",
        "locker_used": False,
        "elderly_meal": True,
        "distance_m": 2450,
        "fee_cents": 650,
    }
    order.update(overrides)
    return order


def test_meituan_encoding_unix_seconds_and_codes():
    rec = meituan.encode(_order())
    assert rec["order_id"] == "900001" and rec["courier_phone"] == "13812345678"
    assert rec["status"] == 50
    assert rec["platform_order_time"] == int(datetime(2026, 11, 18, 3, 58, 7, tzinfo=CST.utc).timestamp())
    assert rec["arrive_time"] - rec["gate_arrive_time"] == 240
    assert (rec["entry_method"], rec["parking"], rec["elderly_meal"]) == ("nfc_tap", "rider_bay", True)
    assert (rec["recipient_lng"], rec["recipient_aoi_id"]) == (120.131234, "AOI-17")
    cancelled = meituan.encode(
        _order(
            status="cancelled",
            t_picked_up=None,
            t_gate=None,
            t_delivered=None,
            t_cancelled=datetime(2026, 11, 18, 12, 1, tzinfo=CST),
        )
    )
    assert cancelled["status"] == 99 and cancelled["arrive_time"] is None and cancelled["fetch_time"] is None


def test_eleme_encoding_status_log_strings_and_yuan():
    rec = eleme.encode(_order())
    assert (rec["lng"], rec["lat"], rec["fee"]) == ("120.131234", "30.271234", "6.50")
    assert (rec["order_status"], rec["entry_type"], rec["parking_type"]) == (3, 2, 1)
    assert (rec["cabinet_used"], rec["is_elder_care"]) == (0, 1)
    firsts = {}
    for push in rec["status_log"]:
        firsts[push["order_status"]] = min(push["push_time"], firsts.get(push["order_status"], 10**15))
    o = _order()
    assert firsts == {
        1: int(o["t_ordered"].timestamp() * 1000),
        20: int(o["t_accepted"].timestamp() * 1000),
        80: int(o["t_at_shop"].timestamp() * 1000),
        2: int(o["t_picked_up"].timestamp() * 1000),
        3: int(o["t_delivered"].timestamp() * 1000),
    }
    assert rec["gate_arrive_time"] == int(o["t_gate"].timestamp() * 1000)
    # "in any order, duplicates possible": across many orders both happen, deterministically.
    logs = [eleme.encode(_order(order_id=str(i)))["status_log"] for i in range(300)]
    assert any(len(log) == 6 for log in logs)
    assert any([p["push_time"] for p in log] != sorted(p["push_time"] for p in log) for log in logs)
    assert logs == [eleme.encode(_order(order_id=str(i)))["status_log"] for i in range(300)]


def test_sf_encoding_local_times_labels_and_bd09_share():
    rec = sf.encode(_order(t_gate=None, status="picked_up", t_delivered=None))
    assert rec["create_time"] == "2026-11-18 11:58:07"
    assert (rec["gate_time"], rec["complete_time"]) == ("", "")
    assert (rec["order_status"], rec["entry_method"], rec["parking"]) == (15, "碰一碰", "专属车位")
    assert (rec["locker"], rec["elder_care"], rec["distance_km"], rec["total_price"]) == (
        "否",
        "是",
        2.45,
        650,
    )
    recs = [sf.encode(_order(order_id=str(i))) for i in range(2000)]
    bd = [r for r in recs if r["lbs_type"] == 1]
    assert 0.25 < len(bd) / len(recs) < 0.35
    assert {r["lbs_type"] for r in recs} == {1, 2}
    for r in bd[:50]:
        lng, lat = wire.bd09_to_gcj02(r["user_lng"], r["user_lat"])
        assert abs(lng - 120.131234) < 2e-6 and abs(lat - 30.271234) < 2e-6
        assert 0.005 < r["user_lng"] - 120.131234 < 0.008  # BD-09 sits ~0.0065 east of GCJ-02


def test_gcj02_to_bd09_matches_the_standard_formula_reference_point():
    # The reference pair used by the common coordinate-transform libraries (coordtransform, hutool).
    lng, lat = wire.gcj02_to_bd09(116.404, 39.915)
    assert abs(lng - 116.41036949371029) < 1e-9 and abs(lat - 39.92133699351021) < 1e-9
    back = wire.bd09_to_gcj02(lng, lat)
    assert abs(back[0] - 116.404) < 1e-5 and abs(back[1] - 39.915) < 1e-5


def test_shansong_encoding_nested_iso_and_modes():
    rec = shansong.encode(_order(entry_method=None, parking="none"))
    assert rec["courier"] == {"id": "R0042", "mobile": "13812345678", "name": "王小明"}
    assert rec["receiver"] == {"lng": 120.131234, "lat": 30.271234, "aoiId": "AOI-17"}
    assert rec["statusChangeLog"][0] == {"status": 20, "time": "2026-11-18T11:58:07+08:00"}
    assert [s["status"] for s in rec["statusChangeLog"]] == [20, 30, 40, 50]
    assert (rec["accessMode"], rec["parkingMode"], rec["gateTime"]) == (
        None,
        "NONE",
        "2026-11-18T12:29:07+08:00",
    )


@pytest.mark.parametrize("platform", sorted(encode.ENCODERS))
def test_malform_covers_each_quarantine_reason_and_drift_drops_optional(platform):
    good = encode.ENCODERS[platform](_order())
    broken = [encode.malform(platform, good, kind) for kind in range(4)]
    assert len({json.dumps(b, sort_keys=True) for b in broken}) == 4
    assert all(b != good for b in broken)
    assert broken[0][encode.ID_FIELD[platform]] in (None, "")
    drifted = encode.drift(platform, good)
    assert "ext_info_v3" in drifted
    assert len(json.dumps(drifted)) != len(json.dumps(good))
    assert encode.ENCODERS[platform](_order()) == good  # faults never alter the cached original


def test_fault_parsing_and_deterministic_decisions():
    assert faults.parse_cli(["http_5xx=0.1", "slow=1"]) == {"http_5xx": 0.1, "slow": 1.0}
    assert faults.parse_query("reset:0.5,malformed:0.01") == {"reset": 0.5, "malformed": 0.01}
    with pytest.raises(ValueError):
        faults.parse_cli(["nonsense=0.1"])
    with pytest.raises(ValueError):
        faults.parse_query("http_5xx:2")
    hits = [faults.hit(7, "http_5xx", f"page{i}", 0.2) for i in range(5000)]
    assert 0.17 < sum(hits) / len(hits) < 0.23
    assert hits == [faults.hit(7, "http_5xx", f"page{i}", 0.2) for i in range(5000)]
    assert hits != [faults.hit(8, "http_5xx", f"page{i}", 0.2) for i in range(5000)]


# ------------------------------------------------------------------ the server, with the real World
@pytest.fixture(scope="module")
def world():
    return World(SEED, SCALE)


@pytest.fixture
def sandbox(world):
    handle = SandboxHandle(make_server(world, SEED, now=AFTER_RUN))
    yield handle
    handle.stop()


class Clients:
    """Minimal signed requests per platform, written from sources.md (not from the server code)."""

    def __init__(self, base: str):
        self.base = base
        self.http = requests.Session()
        self.token = None

    def meituan(
        self, offset=0, limit=1000, day=DAY, secret=CRED["xihu_meituan"]["password"], ts=None, extra=None, **kw
    ):
        params = {
            "app_key": CRED["xihu_meituan"]["login"],
            "timestamp": str(int(ts or time.time())),
            "date": day.isoformat(),
            "offset": str(offset),
            "limit": str(limit),
        }
        params["sign"] = hashlib.sha1((secret + "".join(k + v for k, v in sorted(params.items()))).encode()).hexdigest()
        params.update(extra or {})
        return self.http.get(f"{self.base}/meituan/v1/orders", params=params, timeout=kw.pop("timeout", TIMEOUT), **kw)

    def meituan_all(self, day=DAY, extra=None):
        pages, offset = [], 0
        while True:
            data = self.meituan(offset, day=day, extra=extra).json()["data"]
            pages.append(data["orders"])
            offset += 1000
            if offset >= data["total"]:
                return pages, data["total"]

    def eleme_token(self, secret=CRED["xihu_eleme"]["password"]):
        return self.http.post(
            f"{self.base}/eleme/oauth/token",
            timeout=TIMEOUT,
            data={"grant_type": "client_credentials", "app_id": CRED["xihu_eleme"]["login"], "app_secret": secret},
        )

    def eleme(self, cursor=None, token=None, extra=None):
        params = {
            "date": DAY.isoformat(),
            "page_size": "500",
            **({"cursor": cursor} if cursor else {}),
            **(extra or {}),
        }
        return self.http.get(
            f"{self.base}/eleme/v2/orders",
            params=params,
            timeout=TIMEOUT,
            headers={"Authorization": f"Bearer {token or self.token}"},
        )

    def eleme_all(self, extra=None):
        """Pages until next_cursor is null, refreshing the token on 401; returns (pages, refreshes)."""
        pages, cursor, refreshes = [], None, 0
        self.token = self.eleme_token().json()["access_token"]
        while True:
            r = self.eleme(cursor, extra=extra)
            if r.status_code == 401:
                refreshes += 1
                self.token = self.eleme_token().json()["access_token"]
                continue
            body = r.json()
            pages.append(body["items"])
            cursor = body["next_cursor"]
            if cursor is None:
                return pages, refreshes

    def sf(self, page=1, key=CRED["xihu_sf"]["password"], body=None, send=None, extra=""):
        """Signs ``body`` (default: a fresh request for ``page``) and sends ``send`` (default: the same)."""
        raw = (
            body
            or json.dumps(
                {
                    "dev_id": int(CRED["xihu_sf"]["login"]),
                    "date": DAY.isoformat(),
                    "page": page,
                    "page_size": 500,
                    "push_time": int(time.time()),
                }
            ).encode()
        )
        sign = quote(
            base64.b64encode(hashlib.md5(raw + f"&{CRED['xihu_sf']['login']}&{key}".encode()).digest()).decode(),
            safe="",
        )
        return self.http.post(
            f"{self.base}/sf/open/api/external/listorderfeed?sign={sign}{extra}",
            data=send or raw,
            headers={"Content-Type": "application/json"},
            timeout=TIMEOUT,
        )

    def shansong(self, page=1, secret=CRED["xihu_shansong"]["password"], extra=""):
        form = {
            "clientId": CRED["xihu_shansong"]["login"],
            "shopId": CRED["xihu_shansong"]["extra"]["shop_id"],
            "timestamp": str(int(time.time() * 1000)),
            "data": json.dumps({"date": DAY.isoformat(), "pageNo": page, "pageSize": 200}),
        }
        plain = (
            secret
            + "clientId"
            + form["clientId"]
            + "data"
            + form["data"]
            + "shopId"
            + form["shopId"]
            + "timestamp"
            + form["timestamp"]
        )
        form["sign"] = hashlib.md5(plain.encode()).hexdigest().upper()
        return self.http.post(f"{self.base}/shansong/openapi/developer/v5/orderList{extra}", data=form, timeout=TIMEOUT)


@pytest.fixture
def clients(sandbox):
    return Clients(sandbox.base_url)


def _ids(pages, field):
    return [rec[field] for page in pages for rec in page]


def test_meituan_signing_timestamp_and_limit(clients):
    assert clients.meituan().json()["code"] == 0
    assert clients.meituan(secret="wrong").json()["code"] == 1001
    assert clients.meituan(extra={"app_key": "someone-else"}).json()["code"] == 1001
    assert clients.meituan(extra={"offset": "1000"}).json()["code"] == 1001  # a parameter changed after signing
    assert clients.meituan(ts=time.time() - 301).json()["code"] == 1002
    assert clients.meituan(ts=time.time() + 250).json()["code"] == 0
    assert clients.meituan(limit=1001).json()["code"] == 1003
    # the fault parameter is never part of the signature
    assert clients.meituan(extra={"sandbox_fault": "duplicates:0"}).json()["code"] == 0


def test_meituan_paging_is_the_worlds_day(clients, world):
    pages, total = clients.meituan_all()
    truth = world.orders("meituan", DAY, corrected=False)
    ids = _ids(pages, "order_id")
    assert total == len(truth) == len(ids) == len(set(ids)) > 1000
    assert set(ids) == {str(o["order_id"]) for o in truth}
    assert all(len(p) == 1000 for p in pages[:-1])


def test_eleme_token_cursor_paging_and_auth_errors(clients, world):
    assert clients.eleme_token(secret="wrong").status_code == 401
    assert clients.eleme(token="not-a-token").status_code == 401
    pages, refreshes = clients.eleme_all()
    ids = _ids(pages, "open_order_code")
    assert refreshes == 0 and len(ids) == len(set(ids)) == len(world.orders("eleme", DAY, corrected=False))
    assert all(len(p) == 500 for p in pages[:-1])
    token = clients.eleme_token().json()
    assert token["expires_in"] == 600


def test_eleme_token_expiry_fault_gives_401_and_refresh_completes(clients, sandbox, world):
    sandbox.set_faults({"token_expiry": 1.0})
    pages, refreshes = clients.eleme_all()
    assert refreshes >= len(pages) // 3
    ids = _ids(pages, "open_order_code")
    assert len(ids) == len(set(ids)) == len(world.orders("eleme", DAY, corrected=False))


def test_sf_signature_pages_and_bd09(clients, world):
    assert clients.sf(key="wrong").json()["error_code"] == 1001
    compact = json.dumps(
        {"dev_id": int(CRED["xihu_sf"]["login"]), "date": DAY.isoformat(), "page": 1, "page_size": 500},
        separators=(",", ":"),
    ).encode()
    assert clients.sf(body=compact).json()["error_code"] == 0  # the exact bytes sent, whatever the spacing
    assert clients.sf(body=compact, send=compact.replace(b'"page":1', b'"page":2')).json()["error_code"] == 1001
    assert clients.sf(extra="&sandbox_fault=duplicates:0").json()["error_code"] == 0
    first = clients.sf().json()["result"]
    pages = [first["list"]] + [clients.sf(p).json()["result"]["list"] for p in range(2, first["total_page"] + 1)]
    ids = _ids(pages, "sf_order_id")
    truth = {str(o["order_id"]): o for o in world.orders("sf", DAY, corrected=False)}
    assert set(ids) == set(truth)
    # non-snapshot pages: any repeated record is the last record of the page before
    for before, page in zip(pages, pages[1:], strict=False):
        if page and page[0]["sf_order_id"] in {r["sf_order_id"] for r in before}:
            assert page[0] == before[-1]
    assert len(ids) - len(set(ids)) == sum(
        1 for before, page in zip(pages, pages[1:], strict=False) if page and page[0] == before[-1]
    )
    for rec in (r for p in pages for r in p):
        o = truth[rec["sf_order_id"]]
        lng, lat = (
            wire.bd09_to_gcj02(rec["user_lng"], rec["user_lat"])
            if rec["lbs_type"] == 1
            else (rec["user_lng"], rec["user_lat"])
        )
        assert abs(lng - o["dest_lng"]) < 1e-5 and abs(lat - o["dest_lat"]) < 1e-5


def test_shansong_signature_paging_and_body_rate_limit(clients, sandbox, world):
    assert clients.shansong(secret="wrong").json()["status"] == 40003
    pages, page = [], 1
    while True:
        r = clients.shansong(page)
        assert r.status_code == 200
        data = r.json()["data"]
        pages.append(data["list"])
        if not data["hasMore"]:
            break
        page += 1
    ids = _ids(pages, "orderNo")
    assert len(ids) == len(set(ids)) == len(world.orders("shansong", DAY, corrected=False))
    sandbox.set_faults({"body_rate_limit": 1.0})
    limited = clients.shansong(1)
    assert (limited.status_code, limited.json()["status"]) == (200, 40029)
    assert clients.shansong(1).json()["status"] == 200


def test_union_exports_gbk_crlf_basic_auth(sandbox, world):
    url = f"{sandbox.base_url}/union/exports/members"
    assert (
        requests.get(url, params={"date": DAY.isoformat()}, auth=("union", "nope"), timeout=TIMEOUT).status_code == 401
    )
    r = requests.get(url, params={"date": DAY.isoformat()}, auth=UNION_AUTH, timeout=TIMEOUT)
    assert r.status_code == 200 and "gbk" in r.headers["Content-Type"].lower()
    text = r.content.decode("gbk")
    with pytest.raises(UnicodeDecodeError):
        r.content.decode("utf-8")
    assert text.count("\r\n") == text.count("\n") == len(world.union_members(DAY)) + 1
    rows = list(csv.DictReader(io.StringIO(text, newline="")))
    assert rows[0].keys() >= {"会员编号", "身份证号", "所属工会编码", "状态变更日期"}
    assert len(rows) == len(world.union_members(DAY))
    orgs = requests.get(f"{sandbox.base_url}/union/exports/orgs", auth=UNION_AUTH, timeout=TIMEOUT)
    org_rows = list(csv.DictReader(io.StringIO(orgs.content.decode("gbk"), newline="")))
    assert len(org_rows) == len(world.union_orgs()) and {r["类型"] for r in org_rows} >= {"企业工会"}


def test_stations_publish_time_api_key_and_truncated_lines(sandbox, world):
    url = f"{sandbox.base_url}/stations/v1/logs/{DAY.isoformat()}.ndjson.gz"
    key = {"X-Api-Key": CRED["xihu_stations"]["password"]}
    sandbox.set_clock(datetime(2026, 11, 19, 0, 29, tzinfo=CST))
    assert requests.get(url, headers=key, timeout=TIMEOUT).status_code == 404
    sandbox.set_clock(datetime(2026, 11, 19, 0, 31, tzinfo=CST))
    assert requests.get(url, headers={"X-Api-Key": "x"}, timeout=TIMEOUT).status_code == 401
    r = requests.get(url, headers=key, timeout=TIMEOUT)
    assert r.status_code == 200
    lines = gzip.decompress(r.content).decode().splitlines()
    assert len(lines) == len(world.station_events(DAY))
    bad = []
    for line in lines:
        try:
            json.loads(line)
        except ValueError:
            bad.append(line)
    assert len(bad) <= max(3, len(lines) // 200)
    again = requests.get(url, headers=key, timeout=TIMEOUT, params={"sandbox_fault": "malformed:0.05"})
    noisy = gzip.decompress(again.content).decode().splitlines()
    assert 0.02 * len(noisy) < sum(1 for line in noisy if not line.endswith("}")) < 0.09 * len(noisy)
    sandbox.set_faults({"stations_unpublished": 1.0})
    assert requests.get(url, headers=key, timeout=TIMEOUT).status_code == 404


def test_truth_faults_and_clock_endpoints(sandbox, world):
    truth = requests.get(f"{sandbox.base_url}/sandbox/truth", timeout=TIMEOUT).json()
    assert truth == json.loads(json.dumps(world.truth(), default=str))
    r = requests.put(f"{sandbox.base_url}/sandbox/faults", json={"http_5xx": 0.5}, timeout=TIMEOUT)
    assert r.json() == {"http_5xx": 0.5} and sandbox.state.faults() == {"http_5xx": 0.5}
    assert requests.put(f"{sandbox.base_url}/sandbox/faults", json={"bogus": 1}, timeout=TIMEOUT).status_code == 400
    r = requests.put(f"{sandbox.base_url}/sandbox/clock", json={"now": "2026-11-19T06:00:00+08:00"}, timeout=TIMEOUT)
    assert r.json()["now"].startswith("2026-11-19T06:00")


def test_prepare_makes_a_dates_days_so_that_a_pull_makes_none(clients, sandbox, world, monkeypatch):
    r = requests.put(f"{sandbox.base_url}/sandbox/prepare", json={"date": DAY.isoformat()}, timeout=TIMEOUT)
    assert r.json()["records"] == {p: len(world.orders(p, DAY, corrected=False)) for p in encode.ENCODERS}
    made = []
    real_orders = World.orders
    monkeypatch.setattr(World, "orders", lambda *a, **kw: made.append(a[1:]) or real_orders(*a, **kw))
    _, total = clients.meituan_all()
    assert total == r.json()["records"]["meituan"] and made == []  # served from what prepare made
    sandbox.set_clock(datetime(2026, 11, 19, 6, 0, 1, tzinfo=CST))  # corrections out: another version
    clients.meituan_all()
    assert made == [("meituan", DAY)]
    assert requests.put(f"{sandbox.base_url}/sandbox/prepare", json={"day": "x"}, timeout=TIMEOUT).status_code == 400


def test_late_corrections_appear_from_d_plus_1_0600(clients, sandbox):
    before = {r["order_id"]: r for p in clients.meituan_all()[0] for r in p}
    sandbox.set_clock(datetime(2026, 11, 19, 6, 0, 1, tzinfo=CST))
    after = {r["order_id"]: r for p in clients.meituan_all()[0] for r in p}
    assert before.keys() == after.keys()
    changed = sum(1 for k in before if before[k] != after[k])
    assert 0 < changed <= 0.03 * len(before)


# ------------------------------------------------------------------ faults, observable over HTTP
def test_http_5xx_burst_then_success(clients, sandbox):
    sandbox.set_faults({"http_5xx": 1.0})
    codes = [clients.meituan().status_code for _ in range(4)]
    assert codes[-1] == 200 and codes[0] >= 500
    assert codes.index(200) in (2, 3) and all(c >= 500 for c in codes[: codes.index(200)])


def test_http_429_with_retry_after(clients, sandbox):
    sandbox.set_faults({"http_429": 1.0})
    r = clients.sf()
    assert r.status_code == 429 and r.headers["Retry-After"] == "1"
    assert clients.sf().status_code == 200


def test_slow_response_passes_client_timeout_then_retry_is_fast(clients, sandbox, monkeypatch):
    monkeypatch.setenv("XIHU_SANDBOX_SLOW_SECONDS", "1.5")
    with pytest.raises(requests.exceptions.Timeout):
        clients.meituan(offset=1000, extra={"sandbox_fault": "slow:1"}, timeout=0.5)
    start = time.monotonic()
    assert clients.meituan(offset=1000, extra={"sandbox_fault": "slow:1"}).json()["code"] == 0
    assert time.monotonic() - start < 1.0


def test_reset_closes_connection_mid_body(clients, sandbox):
    sandbox.set_faults({"reset": 1.0})
    with pytest.raises(requests.exceptions.RequestException):
        clients.meituan().json()
    assert clients.meituan().json()["code"] == 0


def test_duplicates_repeat_a_record_on_the_next_page(clients, sandbox, world):
    pages, total = clients.meituan_all(extra={"sandbox_fault": "duplicates:1"})
    ids = _ids(pages, "order_id")
    assert len(set(ids)) == total == len(world.orders("meituan", DAY, corrected=False))
    assert len(ids) - len(set(ids)) == len(pages) - 1
    for before, page in zip(pages, pages[1:], strict=False):
        assert page[0] == before[-1]


def test_malformed_and_schema_drift_records(clients, sandbox):
    pages, total = clients.meituan_all(extra={"sandbox_fault": "malformed:0.2,schema_drift:0.1"})
    recs = [r for p in pages for r in p]
    assert len(recs) == total
    missing_id = sum(1 for r in recs if not r["order_id"])
    wrong_type = sum(1 for r in recs if isinstance(r["recipient_lng"], str))
    outside = sum(1 for r in recs if r["recipient_lng"] == 0.0)
    bad_time = sum(1 for r in recs if not isinstance(r["platform_order_time"], int))
    for n in (missing_id, wrong_type, outside, bad_time):
        assert 0.02 * total < n < 0.09 * total
    drifted = [r for r in recs if "ext_info_v3" in r]
    assert 0.05 * total < len(drifted) < 0.15 * total
    assert all("recipient_aoi_id" not in r for r in drifted)
    assert all("recipient_aoi_id" in r for r in recs if "ext_info_v3" not in r)


def test_fault_decisions_are_deterministic_across_servers(world):
    bodies = []
    for _ in range(2):
        with SandboxHandle(
            make_server(
                world,
                SEED,
                fault_rates={"http_5xx": 0.3, "malformed": 0.05, "duplicates": 0.5},
                now=AFTER_RUN,
            )
        ) as h:
            c = Clients(h.base_url)
            bodies.append(
                [
                    (r.status_code, r.json().get("data", {}).get("orders"))
                    for r in (c.meituan(offset=o) for o in (0, 1000, 0, 1000, 0, 1000, 0, 1000))
                ]
            )
    assert bodies[0] == bodies[1]
    assert {code for code, _ in bodies[0]} >= {200, 502}  # the faults did fire, identically both times


def test_concurrent_clients(sandbox, world):
    from concurrent.futures import ThreadPoolExecutor

    def fetch(offset):
        return Clients(sandbox.base_url).meituan(offset).json()["data"]["orders"]

    total = len(world.orders("meituan", DAY, corrected=False))
    with ThreadPoolExecutor(8) as pool:
        pages = list(pool.map(fetch, range(0, total, 1000)))
    assert sum(len(p) for p in pages) == total


# ------------------------------------------------------------------ the command line
def test_cli_serve_on_port_zero(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "XIHU_DATA_DIR": str(tmp_path)}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "sandbox",
            "serve",
            "--port",
            "0",
            "--scale",
            "0.002",
            "--fault",
            "http_429=0.5",
            "--now",
            "2026-11-19T01:30:00+08:00",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        line = proc.stdout.readline().strip()
        assert line.startswith("sandbox listening on http://127.0.0.1:")
        base = line.rsplit(" ", 1)[-1]
        assert requests.get(f"{base}/sandbox/faults", timeout=TIMEOUT).json() == {"http_429": 0.5}
        assert requests.get(f"{base}/sandbox/clock", timeout=TIMEOUT).json()["now"].startswith("2026-11-19T01:30")
    finally:
        proc.terminate()
        proc.wait(timeout=10)
