"""The sandbox HTTP server: every contract of sources.md over real HTTP on 127.0.0.1, faults included.

The real ingest clients are tested against this server, so it is strict where the platforms are strict
(signatures, timestamps, tokens, credentials, page limits) and messy where they are messy (faults,
duplicates across pages, GBK/CRLF exports, truncated log lines). It uses only the standard library.

Speed matters because the bench pulls a district day through it: each (platform, day, corrected) is
generated and JSON-encoded once (small LRU cache) and a page is a slice of pre-encoded records joined
into the response envelope. Faults that alter records re-encode only the records they touch.

Platform errors that sources.md does not spell out, chosen to look like each platform's own:
meituan ``code`` 1003 (bad parameter); eleme HTTP 400 ``invalid_request`` and HTTP 401
``invalid_client`` / ``invalid_token``; sf ``error_code`` 1001 (bad dev_id or sign) and 1003 (bad
parameter); shansong ``status`` 40003 (bad clientId, shopId or sign) and 40001 (bad parameter);
union HTTP 401 with ``WWW-Authenticate: Basic``; stations HTTP 401 (bad ``X-Api-Key``).
"""

from __future__ import annotations

import base64
import csv
import gzip
import hashlib
import hmac
import io
import json
import os
import socket
import struct
import sys
import threading
import time
from collections import OrderedDict
from datetime import date, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, unquote, urlsplit

from ingest.sandbox import encode, faults
from ingest.sandbox.encode import CST, unit_hash
from ingest.sandbox.world import World

# Sandbox credentials (docs/internals.md); never used in production.
MEITUAN_APP_KEY, MEITUAN_SECRET = "mt-sandbox", "mt-secret"
ELEME_APP_ID, ELEME_APP_SECRET = "elm-sandbox", "elm-secret"
SF_DEV_ID, SF_DEV_KEY = "1234", "sf-secret"
SHANSONG_CLIENT_ID, SHANSONG_SECRET, SHANSONG_SHOP_ID = "ss-sandbox", "ss-secret", "ss-shop-1"
UNION_USER, UNION_PASSWORD = "union", "union-secret"
STATIONS_API_KEY = "st-secret"

MEITUAN_MAX_LIMIT = 1000
MEITUAN_MAX_SKEW_S = 300
ELEME_PAGE_SIZE = 500
ELEME_TOKEN_TTL_S = 600
SF_MAX_PAGE_SIZE = 500
SHANSONG_MAX_PAGE_SIZE = 200
RETRY_AFTER_S = 1

# Publication times relative to business date D (sources.md and docs/internals.md "Sandbox").
STATIONS_PUBLISHED_AFTER = timedelta(days=1, minutes=30)
CORRECTIONS_AFTER = timedelta(days=1, hours=6)

# sf pages are not snapshot-consistent even without faults: this share of pages repeats the last record
# of the page before. The ``duplicates`` fault raises the share on every platform.
SF_BASELINE_DUPLICATE_PAGES = 0.02
# Station logs always carry a few truncated lines; the ``malformed`` fault raises the share.
STATIONS_BASELINE_TRUNCATED = 0.0005

UNION_MEMBER_COLUMNS = (
    "会员编号",
    "姓名",
    "性别",
    "身份证号",
    "手机号",
    "出生日期",
    "所属工会编码",
    "入会日期",
    "会员状态",
    "状态变更日期",
    "职业类别",
    "所属平台",
    "居住街道",
)
UNION_ORG_COLUMNS = ("工会编码", "工会名称", "上级工会编码", "类型", "成立日期")

# Transient faults each kind of endpoint can suffer. shansong always answers HTTP 200, so its rate
# limit is the body status 40029 (``body_rate_limit``), never an HTTP 429.
_HTTP_FAULTS = ("http_5xx", "http_429", "slow", "reset")
_SHANSONG_FAULTS = ("http_5xx", "body_rate_limit", "slow", "reset")

_DAY_CACHE_SIZE = 4


def slow_seconds() -> float:
    """How long a ``slow`` response stalls: past a typical 10 s client timeout unless tests shorten it."""
    return float(os.environ.get("XIHU_SANDBOX_SLOW_SECONDS", "12"))


def _dumps(obj) -> bytes:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"), default=str).encode()


def day_start(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=CST)


class _Day:
    """One platform's orders of one day, encoded once: dicts (for faults to alter) and JSON bytes."""

    __slots__ = ("records", "blobs")

    def __init__(self, records: list[dict]):
        self.records = records
        self.blobs = [_dumps(r) for r in records]


class SandboxState:
    """Everything the handlers share: the world, faults, clock, caches and eleme tokens."""

    def __init__(self, world, seed: int, fault_rates: dict[str, float] | None = None, now: datetime | None = None):
        self.world = world
        self.seed = seed
        self.transient = faults.TransientFaults(seed)
        self._faults = dict(fault_rates or {})
        self._clock: tuple[datetime, float] | None = None
        self.set_clock(now)
        self._lock = threading.Lock()
        self._days: OrderedDict[tuple, _Day] = OrderedDict()
        self._day_locks: dict[tuple, threading.Lock] = {}
        self._stations: OrderedDict[tuple, bytes | None] = OrderedDict()
        self._tokens: dict[str, list] = {}
        self._token_serial = 0

    # ------------------------------------------------------------ faults and clock
    def faults(self) -> dict[str, float]:
        return dict(self._faults)

    def set_faults(self, rates: dict[str, float]) -> None:
        self._faults = faults.validate(rates)
        self.transient.reset()

    def set_clock(self, now: datetime | None) -> None:
        """Fix the sandbox clock at ``now`` (it then advances with real time); None follows real time."""
        if now is not None and now.tzinfo is None:
            now = now.replace(tzinfo=CST)
        self._clock = None if now is None else (now, time.monotonic())

    def now(self) -> datetime:
        if self._clock is None:
            return datetime.now(CST)
        base, set_at = self._clock
        return base + timedelta(seconds=time.monotonic() - set_at)

    def corrected(self, day: date) -> bool:
        return self.now() >= day_start(day) + CORRECTIONS_AFTER

    # ------------------------------------------------------------ orders
    def day(self, platform: str, day: date, corrected: bool) -> _Day:
        key = (platform, day, corrected)
        with self._lock:
            if key in self._days:
                self._days.move_to_end(key)
                return self._days[key]
            day_lock = self._day_locks.setdefault(key, threading.Lock())
        with day_lock:  # one thread generates a day; concurrent requests for it wait for the result
            with self._lock:
                if key in self._days:
                    return self._days[key]
            encoder = encode.ENCODERS[platform]
            built = _Day([encoder(o) for o in self.world.orders(platform, day, corrected=corrected)])
            with self._lock:
                self._days[key] = built
                while len(self._days) > _DAY_CACHE_SIZE:
                    self._days.popitem(last=False)
                self._day_locks.pop(key, None)
        return built

    def page(self, platform: str, d: _Day, day: date, start: int, size: int, rates: dict) -> list[bytes]:
        """Records [start, start+size) as JSON bytes, with the data faults in force applied.

        A page chosen for ``duplicates`` also carries, first, the last record of the page before (byte
        for byte), so the page holds one record more than asked for and paging by offset stays complete.
        """
        out = [self._record(platform, d, i, rates) for i in range(start, min(start + size, len(d.blobs)))]
        dup_rate = rates.get("duplicates", 0.0)
        if platform == "sf":
            dup_rate = max(dup_rate, SF_BASELINE_DUPLICATE_PAGES)
        if out and start > 0 and faults.hit(self.seed, "duplicates", f"{platform}|{day}|{start}", dup_rate):
            out.insert(0, self._record(platform, d, start - 1, rates))
        return out

    def _record(self, platform: str, d: _Day, i: int, rates: dict) -> bytes:
        malformed, drift = rates.get("malformed", 0.0), rates.get("schema_drift", 0.0)
        if not (malformed or drift):
            return d.blobs[i]
        rec = d.records[i]
        oid = rec[encode.ID_FIELD[platform]]
        changed = rec
        if faults.hit(self.seed, "schema_drift", oid, drift):
            changed = encode.drift(platform, changed)
        if faults.hit(self.seed, "malformed", oid, malformed):
            changed = encode.malform(platform, changed, int(unit_hash(self.seed, "malformed-kind", oid) * 4))
        return d.blobs[i] if changed is rec else _dumps(changed)

    # ------------------------------------------------------------ eleme tokens
    def issue_token(self, rates: dict) -> str:
        """A bearer token valid 600 s; under ``token_expiry`` it dies after 1-3 uses instead."""
        with self._lock:
            self._token_serial += 1
            serial = self._token_serial
        token = hashlib.blake2b(f"eleme-token|{self.seed}|{serial}".encode(), digest_size=16).hexdigest()
        uses = None
        if faults.hit(self.seed, "token_expiry", f"token{serial}", rates.get("token_expiry", 0.0)):
            uses = 1 + int(unit_hash(self.seed, "token-uses", serial) * 3)
        with self._lock:
            self._tokens[token] = [time.monotonic() + ELEME_TOKEN_TTL_S, uses]
        return token

    def use_token(self, token: str) -> str | None:
        """None when the token may be used (and counts the use), else the OAuth error code."""
        with self._lock:
            entry = self._tokens.get(token)
            if entry is None:
                return "invalid_token"
            expires_at, uses = entry
            if time.monotonic() >= expires_at or uses == 0:
                return "expired_token"
            if uses is not None:
                entry[1] = uses - 1
        return None

    # ------------------------------------------------------------ stations
    def station_file(self, day: date, rates: dict) -> bytes:
        """Day D's gzipped NDJSON log, with a deterministic few lines truncated mid-JSON."""
        rate = max(STATIONS_BASELINE_TRUNCATED, rates.get("malformed", 0.0), rates.get("truncated_lines", 0.0))
        key = (day, rate)
        with self._lock:
            if key in self._stations:
                return self._stations[key]
        lines = []
        for i, event in enumerate(self.world.station_events(day)):
            line = _dumps(event)
            if faults.hit(self.seed, "truncated", f"{day}|{i}", rate):
                line = line[: len(line) // 2]
            lines.append(line)
        body = gzip.compress(b"\n".join(lines) + b"\n" if lines else b"", compresslevel=6, mtime=0)
        with self._lock:
            self._stations[key] = body
            while len(self._stations) > _DAY_CACHE_SIZE:
                self._stations.popitem(last=False)
        return body


def _csv_gbk(columns: tuple[str, ...], rows: list[dict]) -> bytes:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\r\n")
    writer.writerow(columns)
    writer.writerows([[row.get(c, "") for c in columns] for row in rows])
    return buf.getvalue().encode("gbk")


class _BadRequest(Exception):
    """A request the platform refuses: carries the platform's own error response."""

    def __init__(self, status: int, body: dict, headers: dict | None = None):
        super().__init__(body)
        self.status, self.body, self.headers = status, body, headers or {}


def _parse_day(value: str | None, error: _BadRequest) -> date:
    try:
        return date.fromisoformat(value or "")
    except ValueError:
        raise error from None


def _int(value, lo: int, hi: int, error: _BadRequest) -> int:
    try:
        n = int(value)
    except (TypeError, ValueError):
        raise error from None
    if not lo <= n <= hi:
        raise error
    return n


class Handler(BaseHTTPRequestHandler):
    """Routes requests to the platform handlers; HTTP/1.1 keep-alive so clients reuse connections."""

    protocol_version = "HTTP/1.1"
    server_version = "XihuSandbox/1"
    state: SandboxState  # set on the subclass made by make_server

    def log_message(self, format, *args):  # noqa: A002 - signature of the base class
        """Silent: a day's pull is thousands of requests; tests read responses, not access logs."""

    # ------------------------------------------------------------ plumbing
    def _route(self, method: str) -> None:
        url = urlsplit(self.path)
        self.query_pairs = parse_qsl(url.query, keep_blank_values=True)
        self.query = dict(self.query_pairs)
        self.raw_query = url.query
        length = int(self.headers.get("Content-Length") or 0)
        self.body = self.rfile.read(length) if length else b""
        try:
            self.rates = self.state.faults()
            if "sandbox_fault" in self.query:
                self.rates.update(faults.parse_query(self.query["sandbox_fault"]))
        except ValueError as exc:
            self._send(400, _dumps({"error": str(exc)}))
            return
        path = url.path.rstrip("/")
        route = _ROUTES.get((method, path))
        if route is None and method == "GET" and path.startswith("/stations/v1/logs/"):
            route = Handler._stations
        if route is None:
            self._send(404, _dumps({"error": "not found", "path": path}))
            return
        try:
            route(self)
        except ConnectionError:
            raise  # the client went away (or a reset fault): nothing left to answer
        except Exception as exc:  # a sandbox bug must reach the client as a 500, not a silent hang-up
            self._send(500, _dumps({"error": f"sandbox error: {exc!r}"}))

    def do_GET(self):
        self._route("GET")

    def do_POST(self):
        self._route("POST")

    def do_PUT(self):
        self._route("PUT")

    def _send(
        self,
        status: int,
        body: bytes,
        content_type: str = "application/json; charset=utf-8",
        headers: dict | None = None,
        reset: bool = False,
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, str(v))
        self.end_headers()
        if not reset:
            self.wfile.write(body)
            return
        # Connection reset mid-body: half the promised bytes, then an RST (SO_LINGER 0) instead of a FIN.
        self.wfile.write(body[: len(body) // 2])
        self.wfile.flush()
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.close_connection = True
        self.connection.close()

    def _serve(self, identity: str, allowed: tuple[str, ...], produce) -> None:
        """Apply the transient faults of this attempt, else send what ``produce`` returns.

        ``produce`` returns (status, body bytes, content type, headers) or raises _BadRequest.
        """
        fault = self.state.transient.next_fault(identity, self.rates, allowed)
        if fault == "http_5xx":
            status = 502 + int(unit_hash(self.state.seed, "5xx-code", identity) * 2)  # 502 or 503
            self._send(status, _dumps({"error": "sandbox injected upstream failure"}))
            return
        if fault == "http_429":
            self._send(429, _dumps({"error": "too many requests"}), headers={"Retry-After": RETRY_AFTER_S})
            return
        if fault == "body_rate_limit":
            self._send(200, _dumps({"status": 40029, "msg": "访问频率超限"}))
            return
        try:
            status, body, ctype, headers = produce()
        except _BadRequest as exc:
            status, body, ctype, headers = (
                exc.status,
                _dumps(exc.body),
                "application/json; charset=utf-8",
                exc.headers,
            )
        if fault == "slow":
            time.sleep(slow_seconds())
        self._send(status, body, ctype, headers, reset=fault == "reset")

    # ------------------------------------------------------------ meituan
    def _meituan(self) -> None:
        q = self.query
        identity = f"meituan|{q.get('date')}|{q.get('offset')}|{q.get('limit')}"
        self._serve(identity, _HTTP_FAULTS, self._meituan_page)

    def _meituan_page(self):
        q = self.query
        bad = _BadRequest(200, {"code": 1003, "msg": "invalid parameter"})
        signed = sorted((k, v) for k, v in self.query_pairs if k not in ("sign", "sandbox_fault"))
        expected = hashlib.sha1((MEITUAN_SECRET + "".join(k + v for k, v in signed)).encode()).hexdigest()
        if q.get("app_key") != MEITUAN_APP_KEY or not hmac.compare_digest(q.get("sign", ""), expected):
            raise _BadRequest(200, {"code": 1001, "msg": "invalid sign"})
        try:
            skew = abs(time.time() - int(q.get("timestamp", "")))
        except ValueError:
            raise _BadRequest(200, {"code": 1002, "msg": "invalid timestamp"}) from None
        if skew > MEITUAN_MAX_SKEW_S:
            raise _BadRequest(200, {"code": 1002, "msg": "timestamp expired"})
        day = _parse_day(q.get("date"), bad)
        offset = _int(q.get("offset", "0"), 0, 10**9, bad)
        limit = _int(q.get("limit", "100"), 1, MEITUAN_MAX_LIMIT, bad)
        d = self.state.day("meituan", day, self.state.corrected(day))
        recs = self.state.page("meituan", d, day, offset, limit, self.rates)
        body = b'{"code":0,"msg":"ok","data":{"total":%d,"orders":[%b]}}' % (len(d.blobs), b",".join(recs))
        return 200, body, "application/json; charset=utf-8", {}

    # ------------------------------------------------------------ eleme
    def _eleme_token(self) -> None:
        self._serve("eleme|token", _HTTP_FAULTS, self._eleme_token_issue)

    def _eleme_token_issue(self):
        form = dict(parse_qsl(self.body.decode("utf-8", "replace"), keep_blank_values=True))
        if form.get("grant_type") != "client_credentials":
            raise _BadRequest(400, {"error": "unsupported_grant_type"})
        if form.get("app_id") != ELEME_APP_ID or form.get("app_secret") != ELEME_APP_SECRET:
            raise _BadRequest(401, {"error": "invalid_client"})
        token = self.state.issue_token(self.rates)
        body = _dumps({"access_token": token, "token_type": "Bearer", "expires_in": ELEME_TOKEN_TTL_S})
        return 200, body, "application/json; charset=utf-8", {}

    def _eleme(self) -> None:
        q = self.query
        identity = f"eleme|{q.get('date')}|{q.get('cursor')}|{q.get('page_size')}"
        self._serve(identity, _HTTP_FAULTS, self._eleme_page)

    def _eleme_page(self):
        q = self.query
        bad = _BadRequest(400, {"error": "invalid_request"})
        auth = self.headers.get("Authorization", "")
        if not auth.startswith("Bearer "):
            raise _BadRequest(401, {"error": "invalid_token"}, {"WWW-Authenticate": "Bearer"})
        problem = self.state.use_token(auth[len("Bearer ") :].strip())
        if problem:
            raise _BadRequest(401, {"error": problem}, {"WWW-Authenticate": f'Bearer error="{problem}"'})
        day = _parse_day(q.get("date"), bad)
        size = _int(q.get("page_size", str(ELEME_PAGE_SIZE)), 1, ELEME_PAGE_SIZE, bad)
        if q.get("cursor"):
            try:
                cur = json.loads(base64.urlsafe_b64decode(q["cursor"].encode()))
                offset, corrected = int(cur["o"]), bool(cur["c"])
            except (ValueError, KeyError, TypeError):
                raise bad from None
            if cur.get("d") != day.isoformat():
                raise bad
        else:  # the first page pins the version (corrected or not) that the cursor then walks
            offset, corrected = 0, self.state.corrected(day)
        d = self.state.day("eleme", day, corrected)
        recs = self.state.page("eleme", d, day, offset, size, self.rates)
        nxt = None
        if offset + size < len(d.blobs):
            token = _dumps({"d": day.isoformat(), "o": offset + size, "c": int(corrected)})
            nxt = base64.urlsafe_b64encode(token).decode()
        body = b'{"items":[%b],"next_cursor":%b}' % (b",".join(recs), _dumps(nxt))
        return 200, body, "application/json; charset=utf-8", {}

    # ------------------------------------------------------------ sf
    def _sf(self) -> None:
        try:
            req = json.loads(self.body)
            identity = f"sf|{req.get('date')}|{req.get('page')}|{req.get('page_size')}"
        except (ValueError, AttributeError):
            identity = "sf|unparseable"
        self._serve(identity, _HTTP_FAULTS, self._sf_page)

    def _sf_page(self):
        bad = _BadRequest(200, {"error_code": 1003, "error_msg": "invalid parameter"})
        refused = _BadRequest(200, {"error_code": 1001, "error_msg": "sign error"})
        raw_sign = next((v for k, v in (p.partition("=")[::2] for p in self.raw_query.split("&")) if k == "sign"), "")
        digest = hashlib.md5(self.body + f"&{SF_DEV_ID}&{SF_DEV_KEY}".encode()).digest()
        if not hmac.compare_digest(unquote(raw_sign), base64.b64encode(digest).decode()):
            raise refused
        try:
            req = json.loads(self.body)
        except ValueError:
            raise bad from None
        if not isinstance(req, dict):
            raise bad
        if str(req.get("dev_id")) != SF_DEV_ID:
            raise refused
        day = _parse_day(req.get("date"), bad)
        page = _int(req.get("page", 1), 1, 10**7, bad)
        size = _int(req.get("page_size", SF_MAX_PAGE_SIZE), 1, SF_MAX_PAGE_SIZE, bad)
        d = self.state.day("sf", day, self.state.corrected(day))
        total_page = max(1, -(-len(d.blobs) // size))
        recs = self.state.page("sf", d, day, (page - 1) * size, size, self.rates)
        body = b'{"error_code":0,"error_msg":"success","result":{"page":%d,"total_page":%d,"list":[%b]}}' % (
            page,
            total_page,
            b",".join(recs),
        )
        return 200, body, "application/json; charset=utf-8", {}

    # ------------------------------------------------------------ shansong
    def _shansong(self) -> None:
        self.form = dict(parse_qsl(self.body.decode("utf-8", "replace"), keep_blank_values=True))
        try:
            data = json.loads(self.form.get("data", ""))
            identity = f"shansong|{data.get('date')}|{data.get('pageNo')}|{data.get('pageSize')}"
        except (ValueError, AttributeError):
            identity = "shansong|unparseable"
        self._serve(identity, _SHANSONG_FAULTS, self._shansong_page)

    def _shansong_page(self):
        f = self.form
        bad = _BadRequest(200, {"status": 40001, "msg": "参数错误"})
        plain = (
            SHANSONG_SECRET
            + "clientId"
            + f.get("clientId", "")
            + "data"
            + f.get("data", "")
            + "shopId"
            + f.get("shopId", "")
            + "timestamp"
            + f.get("timestamp", "")
        )
        expected = hashlib.md5(plain.encode()).hexdigest().upper()
        if (
            f.get("clientId") != SHANSONG_CLIENT_ID
            or f.get("shopId") != SHANSONG_SHOP_ID
            or not hmac.compare_digest(f.get("sign", ""), expected)
        ):
            raise _BadRequest(200, {"status": 40003, "msg": "签名错误"})
        try:
            data = json.loads(f.get("data", ""))
        except ValueError:
            raise bad from None
        if not isinstance(data, dict):
            raise bad
        day = _parse_day(data.get("date"), bad)
        page = _int(data.get("pageNo", 1), 1, 10**7, bad)
        size = _int(data.get("pageSize", SHANSONG_MAX_PAGE_SIZE), 1, SHANSONG_MAX_PAGE_SIZE, bad)
        d = self.state.day("shansong", day, self.state.corrected(day))
        start = (page - 1) * size
        recs = self.state.page("shansong", d, day, start, size, self.rates)
        more = b"true" if start + size < len(d.blobs) else b"false"
        body = b'{"status":200,"msg":"OK","data":{"pageNo":%d,"hasMore":%b,"list":[%b]}}' % (
            page,
            more,
            b",".join(recs),
        )
        return 200, body, "application/json; charset=utf-8", {}

    # ------------------------------------------------------------ union
    def _union_auth(self) -> None:
        expected = base64.b64encode(f"{UNION_USER}:{UNION_PASSWORD}".encode()).decode()
        if not hmac.compare_digest(self.headers.get("Authorization", ""), f"Basic {expected}"):
            raise _BadRequest(401, {"error": "unauthorized"}, {"WWW-Authenticate": 'Basic realm="union"'})

    def _union_members(self) -> None:
        self._serve(f"union|members|{self.query.get('date')}", _HTTP_FAULTS, self._union_members_csv)

    def _union_members_csv(self):
        self._union_auth()
        day = _parse_day(self.query.get("date"), _BadRequest(400, {"error": "date must be YYYY-MM-DD"}))
        body = _csv_gbk(UNION_MEMBER_COLUMNS, self.state.world.union_members(day))
        return (
            200,
            body,
            "text/csv; charset=GBK",
            {"Content-Disposition": f'attachment; filename="members-{day}.csv"'},
        )

    def _union_orgs(self) -> None:
        self._serve("union|orgs", _HTTP_FAULTS, self._union_orgs_csv)

    def _union_orgs_csv(self):
        self._union_auth()
        body = _csv_gbk(UNION_ORG_COLUMNS, self.state.world.union_orgs())
        return 200, body, "text/csv; charset=GBK", {"Content-Disposition": 'attachment; filename="orgs.csv"'}

    # ------------------------------------------------------------ stations
    def _stations(self) -> None:
        self._serve(f"stations|{urlsplit(self.path).path}", _HTTP_FAULTS, self._stations_file)

    def _stations_file(self):
        if not hmac.compare_digest(self.headers.get("X-Api-Key", ""), STATIONS_API_KEY):
            raise _BadRequest(401, {"error": "invalid api key"})
        name = urlsplit(self.path).path.rsplit("/", 1)[-1]
        not_found = _BadRequest(404, {"error": "not found", "file": name})
        if not name.endswith(".ndjson.gz"):
            raise not_found
        day = _parse_day(name[: -len(".ndjson.gz")], not_found)
        published = self.state.now() >= day_start(day) + STATIONS_PUBLISHED_AFTER
        unpublished_fault = faults.hit(
            self.state.seed, "stations_unpublished", str(day), self.rates.get("stations_unpublished", 0.0)
        )
        if not published or unpublished_fault:
            raise not_found
        return 200, self.state.station_file(day, self.rates), "application/gzip", {}

    # ------------------------------------------------------------ sandbox control
    def _truth(self) -> None:
        self._send(200, _dumps(self.state.world.truth()))

    def _get_faults(self) -> None:
        self._send(200, _dumps(self.state.faults()))

    def _put_faults(self) -> None:
        try:
            self.state.set_faults(json.loads(self.body or b"{}"))
        except (ValueError, TypeError, AttributeError) as exc:
            self._send(400, _dumps({"error": str(exc)}))
            return
        self._send(200, _dumps(self.state.faults()))

    def _get_clock(self) -> None:
        self._send(200, _dumps({"now": self.state.now().isoformat()}))

    def _put_clock(self) -> None:
        try:
            value = json.loads(self.body or b"{}").get("now")
            self.state.set_clock(None if value is None else datetime.fromisoformat(value))
        except (ValueError, TypeError, AttributeError) as exc:
            self._send(400, _dumps({"error": str(exc)}))
            return
        self._get_clock()


_ROUTES = {
    ("GET", "/meituan/v1/orders"): Handler._meituan,
    ("POST", "/eleme/oauth/token"): Handler._eleme_token,
    ("GET", "/eleme/v2/orders"): Handler._eleme,
    ("POST", "/sf/open/api/external/listorderfeed"): Handler._sf,
    ("POST", "/shansong/openapi/developer/v5/orderList"): Handler._shansong,
    ("GET", "/union/exports/members"): Handler._union_members,
    ("GET", "/union/exports/orgs"): Handler._union_orgs,
    ("GET", "/sandbox/truth"): Handler._truth,
    ("GET", "/sandbox/faults"): Handler._get_faults,
    ("PUT", "/sandbox/faults"): Handler._put_faults,
    ("GET", "/sandbox/clock"): Handler._get_clock,
    ("PUT", "/sandbox/clock"): Handler._put_clock,
}


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128

    def handle_error(self, request, client_address):
        """A client that timed out (``slow``) or a ``reset`` fault is expected: no traceback for those."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


def make_server(
    world,
    seed: int,
    host: str = "127.0.0.1",
    port: int = 0,
    fault_rates: dict[str, float] | None = None,
    now: datetime | None = None,
) -> _Server:
    """A bound (not yet serving) server over ``world``; ``port=0`` picks a free port."""
    state = SandboxState(world, seed, faults.validate(fault_rates or {}), now)
    handler = type("SandboxHandler", (Handler,), {"state": state})
    server = _Server((host, port), handler)
    server.state = state
    return server


class SandboxHandle:
    """A sandbox serving in a background thread, for tests and the bench."""

    def __init__(self, server: _Server):
        self.server = server
        self.state: SandboxState = server.state
        host, port = server.server_address[:2]
        self.base_url = f"http://{host}:{port}"
        self._thread = threading.Thread(target=server.serve_forever, args=(0.1,), name="xihu-sandbox", daemon=True)
        self._thread.start()

    def set_faults(self, rates: dict[str, float]) -> None:
        self.state.set_faults(rates)

    def set_clock(self, now: datetime | None) -> None:
        self.state.set_clock(now)

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> SandboxHandle:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def start_sandbox(
    seed: int = 7,
    scale: float = 0.05,
    faults: dict[str, float] | None = None,
    now: datetime | None = None,
    host: str = "127.0.0.1",
    port: int = 0,
) -> SandboxHandle:
    """Generate the world for (seed, scale) and serve it on ``host:port`` in a thread."""
    return SandboxHandle(make_server(World(seed, scale), seed, host, port, faults, now))
