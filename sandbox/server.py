"""The sandbox HTTP server: every contract of sources.md over real HTTP on 127.0.0.1, faults included.

The real ingest clients are tested against this server, so it is strict where the platforms are strict
(signatures, timestamps, tokens, credentials, page limits) and messy where they are messy (faults,
duplicates across pages, GBK/CRLF exports, truncated log lines). It uses only the standard library.
Each platform's endpoints live in its own module (meituan, eleme, sf, shansong, union, stations, as in
ingest/clients/); this module holds what they share: the state, the routing, the transient faults and
the control endpoints (truth, faults, clock).

Speed matters because the bench pulls a district day through it: each (platform, day, corrected) is
generated and JSON-encoded once (an LRU cache of one daily run's eight) and a page is a slice of
pre-encoded records joined into the response envelope. Only the JSON bytes are kept (a third of the
memory of the dicts): faults that alter records decode and re-encode only the records they touch.
``PUT /sandbox/prepare`` makes a date's days before a client asks, so that a benchmark's fetch times the
pipeline's clients against platforms that already hold their data, not the fake making it.
"""

from __future__ import annotations

import hashlib
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
from urllib.parse import parse_qsl, urlsplit

from sandbox import eleme, encode, faults, meituan, sf, shansong, stations, union
from sandbox.wire import CST, JSON, BadRequest, day_start, dumps, unit_hash
from sandbox.world import World

RETRY_AFTER_S = 1
# Late corrections appear from D+1 06:00 (sources.md and docs/internals.md "Sandbox").
CORRECTIONS_AFTER = timedelta(days=1, hours=6)

# A daily run reads D and D-1 (corrected) of the four platforms: eight days, prepared before it starts.
_DAY_CACHE_SIZE = 8


def slow_seconds() -> float:
    """How long a ``slow`` response stalls: past a typical 10 s client timeout unless tests shorten it."""
    return float(os.environ.get("XIHU_SANDBOX_SLOW_SECONDS", "12"))


class _Day:
    """One platform's orders of one day, each encoded once into JSON bytes."""

    __slots__ = ("blobs",)

    def __init__(self, blobs: list[bytes]):
        self.blobs = blobs


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
            built = _Day([dumps(encoder(o)) for o in self.world.orders(platform, day, corrected=corrected)])
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
            dup_rate = max(dup_rate, sf.BASELINE_DUPLICATE_PAGES)
        if out and start > 0 and faults.hit(self.seed, "duplicates", f"{platform}|{day}|{start}", dup_rate):
            out.insert(0, self._record(platform, d, start - 1, rates))
        return out

    def _record(self, platform: str, d: _Day, i: int, rates: dict) -> bytes:
        malformed, drift = rates.get("malformed", 0.0), rates.get("schema_drift", 0.0)
        if not (malformed or drift):
            return d.blobs[i]
        rec = json.loads(d.blobs[i])
        oid = rec[encode.ID_FIELD[platform]]
        changed = rec
        if faults.hit(self.seed, "schema_drift", oid, drift):
            changed = encode.drift(platform, changed)
        if faults.hit(self.seed, "malformed", oid, malformed):
            changed = encode.malform(platform, changed, int(unit_hash(self.seed, "malformed-kind", oid) * 4))
        return d.blobs[i] if changed is rec else dumps(changed)

    def prepare(self, day: date) -> dict[str, int]:
        """Make ``day``'s orders of every platform, as a client asking now gets them, and its station log:
        the records each platform holds."""
        made = {p: len(self.day(p, day, self.corrected(day)).blobs) for p in encode.ENCODERS}
        self.station_file(day, self._faults)
        return made

    # ------------------------------------------------------------ eleme tokens
    def issue_token(self, rates: dict, ttl_s: float) -> str:
        """A bearer token valid ``ttl_s``; under ``token_expiry`` it dies after 1-3 uses instead."""
        with self._lock:
            self._token_serial += 1
            serial = self._token_serial
        token = hashlib.blake2b(f"eleme-token|{self.seed}|{serial}".encode(), digest_size=16).hexdigest()
        uses = None
        if faults.hit(self.seed, "token_expiry", f"token{serial}", rates.get("token_expiry", 0.0)):
            uses = 1 + int(unit_hash(self.seed, "token-uses", serial) * 3)
        with self._lock:
            self._tokens[token] = [time.monotonic() + ttl_s, uses]
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
        """Day D's gzipped station log (sandbox/stations.py), built once per truncation rate."""
        key = (day, stations.truncation_rate(rates))
        with self._lock:
            if key in self._stations:
                return self._stations[key]
        body = stations.log_file(self.world, self.seed, day, key[1])
        with self._lock:
            self._stations[key] = body
            while len(self._stations) > _DAY_CACHE_SIZE:
                self._stations.popitem(last=False)
        return body


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
            self._send(400, dumps({"error": str(exc)}))
            return
        path = url.path.rstrip("/")
        route = _ROUTES.get((method, path))
        if route is None and method == "GET" and path.startswith(stations.PATH_PREFIX):
            route = stations.serve
        if route is None:
            self._send(404, dumps({"error": "not found", "path": path}))
            return
        try:
            route(self)
        except ConnectionError:
            raise  # the client went away (or a reset fault): nothing left to answer
        except Exception as exc:  # a sandbox bug must reach the client as a 500, not a silent hang-up
            self._send(500, dumps({"error": f"sandbox error: {exc!r}"}))

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
        content_type: str = JSON,
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

    def serve(self, identity: str, allowed: tuple[str, ...], produce) -> None:
        """Apply the transient faults of this attempt, else send what ``produce`` returns.

        ``produce`` returns (status, body bytes, content type, headers) or raises BadRequest.
        """
        fault = self.state.transient.next_fault(identity, self.rates, allowed)
        if fault == "http_5xx":
            status = 502 + int(unit_hash(self.state.seed, "5xx-code", identity) * 2)  # 502 or 503
            self._send(status, dumps({"error": "sandbox injected upstream failure"}))
            return
        if fault == "http_429":
            self._send(429, dumps({"error": "too many requests"}), headers={"Retry-After": RETRY_AFTER_S})
            return
        if fault == "body_rate_limit":
            self._send(200, dumps({"status": 40029, "msg": "访问频率超限"}))
            return
        try:
            status, body, ctype, headers = produce()
        except BadRequest as exc:
            status, body, ctype, headers = (
                exc.status,
                dumps(exc.body),
                JSON,
                exc.headers,
            )
        if fault == "slow":
            time.sleep(slow_seconds())
        self._send(status, body, ctype, headers, reset=fault == "reset")

    # ------------------------------------------------------------ sandbox control
    def _truth(self) -> None:
        self._send(200, dumps(self.state.world.truth()))

    def _get_faults(self) -> None:
        self._send(200, dumps(self.state.faults()))

    def _put_faults(self) -> None:
        try:
            self.state.set_faults(json.loads(self.body or b"{}"))
        except (ValueError, TypeError, AttributeError) as exc:
            self._send(400, dumps({"error": str(exc)}))
            return
        self._send(200, dumps(self.state.faults()))

    def _get_clock(self) -> None:
        self._send(200, dumps({"now": self.state.now().isoformat()}))

    def _put_clock(self) -> None:
        try:
            value = json.loads(self.body or b"{}").get("now")
            self.state.set_clock(None if value is None else datetime.fromisoformat(value))
        except (ValueError, TypeError, AttributeError) as exc:
            self._send(400, dumps({"error": str(exc)}))
            return
        self._get_clock()

    def _put_prepare(self) -> None:
        try:
            day = date.fromisoformat(json.loads(self.body or b"{}")["date"])
        except (ValueError, TypeError, KeyError) as exc:
            self._send(400, dumps({"error": f'expected {{"date": "YYYY-MM-DD"}}: {exc!r}'}))
            return
        self._send(200, dumps({"date": day.isoformat(), "records": self.state.prepare(day)}))


_ROUTES = {
    **meituan.ROUTES,
    **eleme.ROUTES,
    **sf.ROUTES,
    **shansong.ROUTES,
    **union.ROUTES,
    ("GET", "/sandbox/truth"): Handler._truth,
    ("GET", "/sandbox/faults"): Handler._get_faults,
    ("PUT", "/sandbox/faults"): Handler._put_faults,
    ("GET", "/sandbox/clock"): Handler._get_clock,
    ("PUT", "/sandbox/clock"): Handler._put_clock,
    ("PUT", "/sandbox/prepare"): Handler._put_prepare,
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
