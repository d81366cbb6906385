"""Fault injection for the sandbox: which request or record goes wrong, decided deterministically.

Every decision is a hash of (seed, fault name, identity), so a test that sees a fault once sees it again
on the next run. Transient faults (5xx bursts, 429, body rate limit, slow, reset) hit a chosen request
identity (the request without its signature, timestamp and fault parameter) a fixed number of times and
then let it through, so a client that retries always completes. Data faults (duplicates, malformed,
schema drift) are properties of the data: a retried page carries the same defects.
"""

from __future__ import annotations

import threading
from collections import defaultdict

from sandbox.wire import unit_hash

FAULT_NAMES = (
    "http_5xx",
    "http_429",
    "slow",
    "reset",
    "duplicates",
    "malformed",
    "schema_drift",
    "token_expiry",
    "body_rate_limit",
    "stations_unpublished",
    "truncated_lines",  # station logs only: the share of lines cut mid-JSON (malformed raises it too)
)

# The order in which transient faults take their turn on a chosen request identity.
TRANSIENT = ("http_5xx", "http_429", "body_rate_limit", "slow", "reset")
# The transient faults an ordinary HTTP endpoint can suffer (shansong's differ: sandbox/shansong.py).
HTTP_FAULTS = ("http_5xx", "http_429", "slow", "reset")


def _check(name: str, rate: float) -> tuple[str, float]:
    if name not in FAULT_NAMES:
        raise ValueError(f"unknown fault {name!r}; known: {', '.join(FAULT_NAMES)}")
    if not 0.0 <= rate <= 1.0:
        raise ValueError(f"fault rate for {name} must be in [0, 1], got {rate}")
    return name, rate


def parse_cli(items: list[str]) -> dict[str, float]:
    """``--fault NAME=RATE`` flags to a dict."""
    out = {}
    for item in items:
        name, sep, rate = item.partition("=")
        if not sep:
            raise ValueError(f"--fault expects NAME=RATE, got {item!r}")
        out.update([_check(name.strip(), float(rate))])
    return out


def parse_query(value: str) -> dict[str, float]:
    """The ``sandbox_fault=name:rate[,name:rate]`` query parameter to a dict."""
    out = {}
    for item in filter(None, (p.strip() for p in value.split(","))):
        name, sep, rate = item.partition(":")
        if not sep:
            raise ValueError(f"sandbox_fault expects name:rate, got {item!r}")
        out.update([_check(name.strip(), float(rate))])
    return out


def validate(faults: dict) -> dict[str, float]:
    """A ``PUT /sandbox/faults`` body to a dict."""
    return dict(_check(str(k), float(v)) for k, v in faults.items())


def hit(seed: int, name: str, identity: str, rate: float) -> bool:
    return rate > 0.0 and unit_hash(seed, name, identity) < rate


def burst_length(seed: int, name: str, identity: str) -> int:
    """How many consecutive times a chosen identity fails: 2-3 for 5xx bursts, once for the rest."""
    if name == "http_5xx":
        return 2 + int(unit_hash(seed, "burst", identity) * 2)
    return 1


class TransientFaults:
    """Counts, per (request identity, fault), how often the fault has fired, under a lock.

    Counters restart whenever the fault configuration changes, so a test that switches a fault on sees it.
    """

    def __init__(self, seed: int):
        self.seed = seed
        self._fired: dict[tuple[str, str], int] = defaultdict(int)
        self._lock = threading.Lock()

    def reset(self) -> None:
        with self._lock:
            self._fired.clear()

    def next_fault(self, identity: str, rates: dict[str, float], allowed: tuple[str, ...]) -> str | None:
        """The transient fault this attempt of ``identity`` suffers, or None to serve it normally."""
        for name in TRANSIENT:
            if name not in allowed or not hit(self.seed, name, identity, rates.get(name, 0.0)):
                continue
            with self._lock:
                if self._fired[identity, name] < burst_length(self.seed, name, identity):
                    self._fired[identity, name] += 1
                    return name
        return None
