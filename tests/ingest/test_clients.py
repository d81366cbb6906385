"""Source clients: signatures, ID checks, PII replacement, retries, and whole days against the sandbox."""

from __future__ import annotations

import csv
import gzip
import io
import json
import re
import signal
import subprocess
import sys
import threading
import time
from dataclasses import replace
from datetime import date, datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import requests

from ingest.clients import CLIENTS, CONNECTION_IDS, Conn, fetch
from ingest.clients.base import JsonFieldHasher, hash_field, hash_json_page
from ingest.clients.meituan import meituan_sign
from ingest.clients.sf import sf_sign
from ingest.clients.shansong import shansong_sign
from ingest.clients.union import inspect_id
from ingest.http import (
    HttpClient,
    NotYetPublished,
    RetryPolicy,
    SourceError,
    SourceUnavailable,
    retry_after_seconds,
)
from ingest.pii import PiiHasher
from tests.sandbox_conns import sandbox_conn

ROOT = Path(__file__).resolve().parents[2]
CST = timezone(timedelta(hours=8))
DAY = date(2026, 11, 20)
PII = PiiHasher("clients-test-pii-key-of-at-least-32-bytes")
FAST = RetryPolicy(connect_timeout_s=2, read_timeout_s=5, max_attempts=8, max_total_wait_s=30, backoff_base_s=0.01)
# Sandbox credentials (sandbox/credentials.py); host is filled in with the sandbox's URL.
CONNS = {
    source: sandbox_conn("", source)
    for source in ("meituan", "eleme", "sf", "shansong", "union_members", "union_orgs", "stations")
}
ID_FIELD = {"meituan": "order_id", "eleme": "open_order_code", "sf": "sf_order_id", "shansong": "orderNo"}
RECORDS = {
    "meituan": ("data", "orders"),
    "eleme": ("items",),
    "sf": ("result", "list"),
    "shansong": ("data", "list"),
}
PHONE = re.compile(r"(?<!\d)1[3-9]\d{9}(?!\d)")


# ---------------------------------------------------------------- signatures (values computed by hand with
# sha1sum / openssl md5 | base64 / md5sum from the strings sources.md prescribes)
def test_meituan_sign():
    params = {
        "app_key": "mt-sandbox",
        "timestamp": "1795190400",
        "date": "2026-11-20",
        "offset": "0",
        "limit": "1000",
    }
    assert meituan_sign("mt-secret", params) == "8938ca8a8adee6d3e9e6492d6dcf6efec028f7af"
    assert meituan_sign("mt-secret", dict(params, sign="ignored")) == "8938ca8a8adee6d3e9e6492d6dcf6efec028f7af"


def test_sf_sign_is_url_encoded_base64_of_md5_over_exact_bytes():
    body = b'{"dev_id":1234,"date":"2026-11-20","page":1,"page_size":500,"push_time":1795190400}'
    assert sf_sign(body, "1234", "sf-secret") == "1hnnSXN9gMyx2PCT2xWdQA%3D%3D"
    assert sf_sign(body.replace(b":", b": "), "1234", "sf-secret") != "1hnnSXN9gMyx2PCT2xWdQA%3D%3D"


def test_shansong_sign():
    data = '{"date":"2026-11-20","pageNo":1,"pageSize":200}'
    assert shansong_sign("ss-secret", "ss-sandbox", data, "ss-shop-1", "1795190400000") == (
        "3F90BF57253A2CCEFC1F1700081E08B9"
    )


# ---------------------------------------------------------------- GB 11643 resident ID numbers
@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("11010519491231002X", ("valid", "1949", "F", "11010519491231002X")),
        ("11010519491231002x", ("valid", "1949", "F", "11010519491231002X")),
        ("110105194912310021", ("bad_check_digit", "1949", "F", "110105194912310021")),
        ("110105194912310010", ("bad_check_digit", "1949", "M", "110105194912310010")),
        # 15 digits: 19YYMMDD, sex from the last digit, hashed in its 18-digit form so it keys like it.
        ("110105491231002", ("old_15_digit", "1949", "F", "11010519491231002X")),
        ("110105491231001", ("old_15_digit", "1949", "M", "110105194912310011")),
        ("110105194913310021", ("malformed", "", "", "110105194913310021")),  # month 13
        ("1101051949", ("malformed", "", "", "1101051949")),
        ("", ("missing", "", "", None)),
        (None, ("missing", "", "", None)),
    ],
)
def test_inspect_id(raw, expected):
    assert inspect_id(raw) == expected


def test_15_digit_id_upgrade_has_a_valid_check_digit():
    assert inspect_id(inspect_id("110105491231001")[3])[0] == "valid"


# ---------------------------------------------------------------- PII replacement on bytes
def _hasher(value):
    return PII.phone(value)


def test_json_field_hasher_replaces_strings_numbers_and_nulls():
    body = (
        b'{"a":[{"courier_phone":"13800001111"},{"courier_phone" : 13800002222},{"courier_phone":null},'
        b'{"courier_phone":"138\\u00300002222"}]}'
    )
    out = JsonFieldHasher("courier_phone", _hasher).apply(body)
    doc = json.loads(out)
    assert [r["courier_phone"] for r in doc["a"]] == [
        PII.phone("13800001111"),
        PII.phone("13800002222"),
        None,
        PII.phone("13800002222"),
    ]


def test_json_field_hasher_declines_values_it_cannot_replace_and_the_page_falls_back():
    body = b'{"a":[{"courier_phone":"13800001111"},{"courier_phone":["13800002222"]}]}'
    assert JsonFieldHasher("courier_phone", _hasher).apply(body) is None
    out = hash_json_page(
        body,
        [JsonFieldHasher("courier_phone", _hasher)],
        lambda d: hash_field(d["a"], "courier_phone", _hasher),
    )
    assert not PHONE.search(out.decode())
    assert json.loads(out)["a"][1]["courier_phone"] == PII.phone("['13800002222']")


# ---------------------------------------------------------------- HTTP retry discipline (local server)
class _Scripted(BaseHTTPRequestHandler):
    """Answers each request with the next (status, headers, body) of the class's script."""

    protocol_version = "HTTP/1.1"
    script: list = []
    seen: list = []

    def do_GET(self):  # noqa: N802 - http.server's naming
        status, headers, body = self.script.pop(0) if self.script else (200, {}, b'{"ok":true}')
        self.seen.append(time.monotonic())
        self.send_response(status)
        for k, v in {"Content-Length": str(len(body)), **headers}.items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def scripted():
    handler = type("H", (_Scripted,), {"script": [], "seen": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield handler, f"http://127.0.0.1:{server.server_address[1]}/x"
    server.shutdown()
    server.server_close()


def _send(url, policy=FAST):
    http = HttpClient("demo", policy)
    return http, http.send("GET", url, page=3, build=dict, handle=lambda r: r.json())


def test_5xx_burst_then_success(scripted):
    handler, url = scripted
    handler.script += [(503, {}, b"busy"), (502, {}, b"bad gateway")]
    http, body = _send(url)
    assert body == {"ok": True} and http.attempts_total == 3


def test_retries_exhausted_raise_source_unavailable_naming_everything(scripted):
    handler, url = scripted
    handler.script += [(503, {}, b"busy")] * 3
    with pytest.raises(SourceUnavailable, match=r"demo: page 3 still failing after 3 attempts.*HTTP 503") as exc:
        _send(url, replace(FAST, max_attempts=3))
    assert (exc.value.source, exc.value.page, exc.value.attempts) == ("demo", 3, 3)


def test_429_honours_retry_after(scripted):
    handler, url = scripted
    handler.script += [(429, {"Retry-After": "1"}, b"slow down")]
    _send(url)
    assert handler.seen[1] - handler.seen[0] >= 0.95


def test_retry_after_longer_than_the_budget_gives_up(scripted):
    handler, url = scripted
    handler.script += [(429, {"Retry-After": "120"}, b"")]
    with pytest.raises(SourceUnavailable, match="after 1 attempts"):
        _send(url)


def test_other_4xx_are_not_retried(scripted):
    handler, url = scripted
    handler.script += [(404, {}, b"no such thing")]
    http = HttpClient("demo", FAST)

    def handle(resp):
        raise SourceError(f"refused {resp.status_code}")

    with pytest.raises(SourceError, match="refused 404"):
        http.send("GET", url, page=1, build=dict, handle=handle)
    assert http.attempts_total == 1


def test_meituan_skew_refusal_is_re_signed_and_sent_again(scripted, tmp_path):
    handler, url = scripted
    page = {
        "code": 0,
        "msg": "ok",
        "data": {"total": 1, "orders": [{"order_id": "1", "courier_phone": "13800001111"}]},
    }
    handler.script += [
        (200, {}, b'{"code":1002,"msg":"timestamp expired"}'),
        (200, {}, json.dumps(page).encode()),
    ]
    conn = sandbox_conn(url.rsplit("/", 1)[0], "meituan")
    session = requests.Session()
    sent = []
    session.hooks["response"].append(lambda r, *a, **k: sent.append(r.url))
    folder = fetch("meituan", DAY, conn, PII, "skew", tmp_path, policy=FAST, session=session)
    assert len(sent) == 2 and all("sign=" in u and "timestamp=" in u for u in sent)
    assert _records("meituan", folder) == [{"order_id": "1", "courier_phone": PII.phone("13800001111")}]


def test_meituan_bad_sign_is_fatal(scripted, tmp_path):
    handler, url = scripted
    handler.script += [(200, {}, b'{"code":1001,"msg":"invalid sign"}')]
    with pytest.raises(SourceError, match="code 1001"):
        fetch("meituan", DAY, Conn(url.rsplit("/", 1)[0], "k", "s"), PII, "bad", tmp_path, policy=FAST)
    assert len(handler.seen) == 1


def test_retry_after_parsing():
    assert retry_after_seconds("7") == 7.0
    assert retry_after_seconds(None) is None
    assert 55 < retry_after_seconds(time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(time.time() + 60))) <= 60


# ---------------------------------------------------------------- against the real sandbox (fixture ``sb``: conftest)
def _conn(sb, source):
    return replace(CONNS[source], host=sb.base_url)


def _pages(folder: Path) -> list[bytes]:
    manifest = json.loads((folder / "manifest.json").read_text())
    return [gzip.decompress((folder / p["file"]).read_bytes()) for p in manifest["pages"]]


def _records(source: str, folder: Path) -> list[dict]:
    out = []
    for page in _pages(folder):
        node = json.loads(page)
        for key in RECORDS[source]:
            node = node[key]
        out += node
    return out


def _world_phones(sb) -> set[str]:
    world = sb.state.world
    phones = {o["rider_phone"] for p in ID_FIELD for o in world.orders(p, DAY, corrected=True)}
    phones |= {e["rider_phone"] for e in world.station_events(DAY) if e.get("rider_phone")}
    phones |= {m["手机号"] for m in world.union_members(DAY) if m.get("手机号")}
    return phones


def _assert_no_clear_phone(root: Path, phones: set[str]) -> None:
    for path in root.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            text = (gzip.decompress(data) if path.suffix == ".gz" else data).decode("utf-8", "replace")
            assert not set(PHONE.findall(text)) & phones, f"clear phone number in {path}"


def _fetch(sb, source, root, fetch_id="run-1", **kw):
    kw.setdefault("policy", FAST)
    return fetch(source, DAY, _conn(sb, source), PII, fetch_id, root, **kw)


def test_every_source_lands_a_whole_day_matching_the_sandbox(sb, tmp_path):
    world = sb.state.world
    folders = {source: _fetch(sb, source, tmp_path) for source in CLIENTS}
    for source, folder in folders.items():
        manifest = json.loads((folder / "manifest.json").read_text())
        assert manifest["complete"] is True, source
        assert folder == tmp_path / source / "2026-11-20" / "run-1"
        assert sum(p["records"] for p in manifest["pages"]) == manifest["records"]
        if source in ID_FIELD:
            records = _records(source, folder)
            assert len(records) == manifest["records"]
            expected = {str(o["order_id"]) for o in world.orders(source, DAY, corrected=True)}
            assert {r[ID_FIELD[source]] for r in records} == expected, source
    members = _pages(folders["union_members"])[0].decode().split("\n")
    assert members[0].endswith(",出生年份,性别代码,身份证校验") and members[-1] == ""
    assert len(members) - 2 == len(world.union_members(DAY))
    assert len(_pages(folders["union_orgs"])[0].decode().splitlines()) - 1 == len(world.union_orgs())
    lines = _pages(folders["stations"])[0].splitlines()
    assert len(lines) == len(world.station_events(DAY))
    hashed = [json.loads(x)["rider_phone"] for x in lines[:50] if x.startswith(b"{") and x.endswith(b"}")]
    assert all(re.fullmatch(r"[0-9a-f]{32}", h) for h in hashed if h)
    _assert_no_clear_phone(tmp_path, _world_phones(sb))


def test_same_phone_same_key_across_sources(sb, tmp_path):
    """The join key of the whole project: a rider's phone hashes alike in every source."""
    meituan = _records("meituan", _fetch(sb, "meituan", tmp_path))
    order = next(o for o in sb.state.world.orders("meituan", DAY, corrected=True) if o["rider_phone"])
    landed = next(r for r in meituan if r["order_id"] == str(order["order_id"]))
    assert landed["courier_phone"] == PII.phone(order["rider_phone"])


def test_a_complete_fetch_is_not_fetched_again(sb, tmp_path):
    _fetch(sb, "sf", tmp_path)
    session = requests.Session()
    sent = []
    session.hooks["response"].append(lambda r, *a, **k: sent.append(r.url))
    _fetch(sb, "sf", tmp_path, session=session)
    assert sent == []


# -- faults: each completes with retries, and raises the clear error when retries run out
@pytest.mark.parametrize(
    ("source", "fault", "rate"),
    [
        ("meituan", "http_5xx", 1.0),
        ("eleme", "http_5xx", 0.5),
        ("sf", "http_429", 0.5),
        ("meituan", "reset", 1.0),
        ("union_members", "reset", 1.0),
        ("stations", "reset", 1.0),
        ("shansong", "body_rate_limit", 1.0),
        ("eleme", "token_expiry", 1.0),
        ("sf", "duplicates", 1.0),
        ("meituan", "malformed", 0.2),
        ("eleme", "schema_drift", 0.5),
    ],
)
def test_fault_is_survived(sb, tmp_path, source, fault, rate):
    # Two landing roots: in one, the faulty run would reuse the clean run's pages instead of fetching.
    clean = json.loads((_fetch(sb, source, tmp_path / "clean", "clean") / "manifest.json").read_text())
    sb.set_faults({fault: rate})
    folder = _fetch(sb, source, tmp_path / "faulty", "faulty")
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["complete"] is True
    if fault == "duplicates":
        assert manifest["records"] > clean["records"]
    else:
        assert manifest["records"] == clean["records"]
    _assert_no_clear_phone(tmp_path, _world_phones(sb))


@pytest.mark.parametrize(
    ("source", "fault"),
    [
        ("meituan", "http_5xx"),
        ("sf", "http_429"),
        ("eleme", "reset"),
        ("shansong", "body_rate_limit"),
        ("union_orgs", "http_5xx"),
    ],
)
def test_fault_with_retries_exhausted_raises_source_unavailable(sb, tmp_path, source, fault):
    sb.set_faults({fault: 1.0})
    with pytest.raises(SourceUnavailable, match=rf"{source}: page \S+ still failing after 1 attempts"):
        _fetch(sb, source, tmp_path, policy=replace(FAST, max_attempts=1))


def test_slow_responses_past_the_read_timeout_are_retried(sb, tmp_path, monkeypatch):
    monkeypatch.setenv("XIHU_SANDBOX_SLOW_SECONDS", "1.0")
    sb.set_faults({"slow": 0.5})
    short = replace(FAST, read_timeout_s=0.3)
    folder = _fetch(sb, "shansong", tmp_path, policy=short)
    assert json.loads((folder / "manifest.json").read_text())["complete"] is True
    sb.set_faults({"slow": 1.0})
    with pytest.raises(SourceUnavailable, match="Read timed out"):
        _fetch(sb, "shansong", tmp_path / "again", "again", policy=replace(short, max_attempts=1))


def test_stations_not_yet_published(sb, tmp_path):
    sb.set_faults({"stations_unpublished": 1.0})
    with pytest.raises(NotYetPublished, match="not published yet"):
        _fetch(sb, "stations", tmp_path)
    sb.set_faults({})
    sb.set_clock(datetime(2026, 11, 21, 0, 10, tzinfo=CST))  # before D+1 00:30
    with pytest.raises(NotYetPublished):
        _fetch(sb, "stations", tmp_path, "early")


def test_wrong_credentials_are_a_source_error_not_retried(sb, tmp_path):
    for source, conn in [
        ("meituan", replace(_conn(sb, "meituan"), password="nope")),
        ("eleme", replace(_conn(sb, "eleme"), password="nope")),
        ("sf", replace(_conn(sb, "sf"), password="nope")),
        ("shansong", replace(_conn(sb, "shansong"), password="nope")),
        ("union_members", replace(_conn(sb, "union_members"), password="nope")),
        ("stations", replace(_conn(sb, "stations"), password="nope")),
    ]:
        with pytest.raises(SourceError):
            fetch(source, DAY, conn, PII, "bad-creds", tmp_path, policy=FAST)


def test_connection_ids_cover_every_client():
    assert set(CONNECTION_IDS) == set(CLIENTS)


# -- kill and resume
_CHILD = """
import sys
from ingest.clients import Conn, RetryPolicy, fetch
from ingest.pii import PiiHasher
from sandbox.credentials import CONNECTIONS
conn = Conn(sys.argv[1], CONNECTIONS["xihu_meituan"]["login"], CONNECTIONS["xihu_meituan"]["password"])
pii = PiiHasher("clients-test-pii-key-of-at-least-32-bytes")
policy = RetryPolicy(backoff_base_s=0.01)
fetch("meituan", "2026-11-20", conn, pii, "killed", sys.argv[2], page_size=50, policy=policy)
"""


def test_killed_fetch_resumes_after_its_last_verified_page(sb, tmp_path, monkeypatch):
    # Every page stalls 0.1 s once ("slow" fault), so the child is still mid-day when it is killed.
    monkeypatch.setenv("XIHU_SANDBOX_SLOW_SECONDS", "0.1")
    sb.set_faults({"slow": 1.0})
    child = subprocess.Popen([sys.executable, "-c", _CHILD, sb.base_url, str(tmp_path)], cwd=ROOT)
    manifest_path = tmp_path / "meituan" / "2026-11-20" / "killed" / "manifest.json"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if manifest_path.exists() and len(json.loads(manifest_path.read_text() or "{}").get("pages", [])) >= 5:
            break
        time.sleep(0.02)
    child.send_signal(signal.SIGKILL)
    child.wait()
    before = json.loads(manifest_path.read_text())
    assert not before["complete"] and len(before["pages"]) >= 5
    landed_offsets = {p["request"]["offset"] for p in before["pages"]}

    sb.set_faults({})
    session = requests.Session()
    offsets = []
    session.hooks["response"].append(
        lambda r, *a, **k: offsets.append(int(re.search(r"[?&]offset=(\d+)", r.url).group(1)))
    )
    folder = _fetch(sb, "meituan", tmp_path, "killed", page_size=50, session=session)
    after = json.loads((folder / "manifest.json").read_text())
    assert after["complete"] is True
    assert offsets[0] == before["pages"][-1]["next"]["offset"]  # resumed right after the last verified page
    assert not landed_offsets & set(offsets)  # no verified page was asked for again
    assert after["pages"][: len(before["pages"])] == before["pages"]
    assert [p["page"] for p in after["pages"]] == list(range(1, len(after["pages"]) + 1))
    assert len({p["request"]["offset"] for p in after["pages"]}) == len(after["pages"])
    ids = [r["order_id"] for r in _records("meituan", folder)]
    assert len(ids) == len(set(ids)) == len(sb.state.world.orders("meituan", DAY, corrected=True))


def test_union_members_derive_from_the_id_before_hashing(sb, tmp_path):
    folder = _fetch(sb, "union_members", tmp_path)
    landed = list(csv.DictReader(io.StringIO(_pages(folder)[0].decode())))
    world = {(PII.hash(m["会员编号"], "member"), m["所属工会编码"]): m for m in sb.state.world.union_members(DAY)}
    assert len(landed) == len(world)
    statuses = set()
    for row in landed:
        source = world[row["会员编号"], row["所属工会编码"]]  # the member number landed as its keyed hash
        status, year, sex, id_form = inspect_id(source["身份证号"])
        statuses.add(status)
        assert (row["身份证校验"], row["出生年份"], row["性别代码"]) == (status, year, sex)
        assert row["身份证号"] == (PII.hash(id_form, "id") or "")
        assert row["姓名"] == (PII.hash(source["姓名"], "name") or "")
        assert row["手机号"] == (PII.phone(source["手机号"]) or "")
        assert row["会员状态"] == source["会员状态"]  # Chinese text survives GBK -> UTF-8
        assert row["居住街道"] == source["居住街道"]  # kept: member-only coverage counts are cut by it
    assert {"valid", "bad_check_digit", "old_15_digit"} <= statuses


def test_a_landed_union_file_has_no_clear_member_number_or_birth_date(sb, tmp_path):
    folder = _fetch(sb, "union_members", tmp_path)
    text = _pages(folder)[0].decode()
    header, *rows = list(csv.reader(io.StringIO(text)))
    assert "出生日期" not in header and "申报出生年份" in header
    members = sb.state.world.union_members(DAY)
    numbers = {m["会员编号"] for m in members if m["会员编号"]}
    births = {m["出生日期"] for m in members if m["出生日期"]}
    cells = {cell for row in rows for cell in row}
    assert len(numbers) > 100 and len(births) > 100  # the sandbox export does carry both
    assert not cells & numbers, "a clear member number was landed"
    assert not cells & births, "a declared birth date was landed"  # as the export spelt it, any format
    years = {row[header.index("申报出生年份")] for row in rows}
    assert years - {""} and all(y == "" or re.fullmatch(r"(19|20)\d\d", y) for y in years)
    hashed = {row[header.index("会员编号")] for row in rows}
    assert hashed == {PII.hash(n, "member") for n in numbers}


def test_station_line_that_is_not_json_is_kept_with_phones_hashed():
    from ingest.clients.stations import StationsClient

    client = StationsClient(Conn("http://127.0.0.1:9", None, "k"), PII, HttpClient("stations", FAST))
    cut = b'{"event_id":"e1","rider_phone":"13800001111","ts":"2026-11-20T09:0'
    assert client.land_line(cut) == cut.replace(b"13800001111", PII.phone("13800001111").encode())
    whole = json.loads(client.land_line(b'{"event_id":"e2","rider_phone":"13800001111"}'))
    assert whole == {"event_id": "e2", "rider_phone": PII.phone("13800001111")}


def test_the_clear_phone_check_would_catch_a_leak(tmp_path):
    (tmp_path / "page-00001.json.gz").write_bytes(gzip.compress(b'{"courier_phone":"13800001111"}'))
    with pytest.raises(AssertionError, match="clear phone number"):
        _assert_no_clear_phone(tmp_path, {"13800001111"})
