"""Fetch progress and retries in the logs, against the sandbox's faults.

caplog listens on the root logger, as Airflow's task log handler does: a line seen here propagates from
the ``ingest.*`` loggers to wherever the task log goes.
"""

from __future__ import annotations

import logging
import re
from dataclasses import replace
from datetime import date

import pytest

import ingest.clients
from ingest.clients import RetryPolicy, SourceUnavailable, fetch
from ingest.pii import PiiHasher
from tests.sandbox_conns import sandbox_conn

DAY = date(2026, 11, 20)
PII = PiiHasher("fetch-logs-test-pii-key-of-at-least-32-bytes")
FAST = RetryPolicy(connect_timeout_s=2, read_timeout_s=5, max_total_wait_s=30, backoff_base_s=0.01)
TOTALS = re.compile(
    r"(?P<label>\S+ 2026-11-20): fetched (?P<pages>\d+) pages?, (?P<records>[\d,]+) records, (?P<retries>\d+) "
    r"retries in \d+\.\d s \([\d,]+ records/s\)"
)


def _fetch(sb, source, tmp_path, **kw):
    kw.setdefault("policy", FAST)
    return fetch(source, DAY, sandbox_conn(sb.base_url, source), PII, "logs", tmp_path, **kw)


def _lines(caplog, logger: str, level: int) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == logger and r.levelno == level]


@pytest.mark.parametrize(
    ("source", "fault", "retry"),
    [
        ("meituan", "http_5xx", r"HTTP 50[23], retry [123]/7 in \d+\.\d s"),
        ("sf", "http_429", r"HTTP 429, Retry-After 1 s, retry 1/7 in 1\.0 s"),
        ("meituan", "reset", r"connection reset, retry 1/7 in \d+\.\d s"),
        ("stations", "reset", r"connection reset, retry 1/7 in \d+\.\d s"),
        ("shansong", "body_rate_limit", r"body status 40029, rate limited \('访问频率超限'\), retry 1/7 in \d+\.\d s"),
        ("eleme", "token_expiry", r"HTTP 401, access token expired or revoked: fetching a new token, retry 1/7 now"),
    ],
)
def test_every_retry_is_a_warning_with_its_cause_and_wait(sb, tmp_path, caplog, source, fault, retry):
    sb.set_faults({fault: 1.0})  # every page hit once (twice or three times for 5xx), then let through
    caplog.set_level(logging.INFO, logger="ingest")
    _fetch(sb, source, tmp_path)
    warnings = _lines(caplog, "ingest.http", logging.WARNING)
    assert warnings
    for line in warnings:
        assert re.fullmatch(rf"{source} 2026-11-20 page \d+: {retry}", line), line
    totals = [m for line in _lines(caplog, "ingest.clients", logging.INFO) if (m := TOTALS.fullmatch(line))]
    assert len(totals) == 1 and totals[0]["label"] == f"{source} 2026-11-20"
    assert int(totals[0]["retries"]) == len(warnings)


def test_a_read_timeout_says_how_long_it_waited(sb, tmp_path, caplog, monkeypatch):
    monkeypatch.setenv("XIHU_SANDBOX_SLOW_SECONDS", "1.0")
    sb.set_faults({"slow": 0.3})
    caplog.set_level(logging.WARNING, logger="ingest.http")
    _fetch(sb, "shansong", tmp_path, policy=replace(FAST, read_timeout_s=0.3))
    warnings = _lines(caplog, "ingest.http", logging.WARNING)
    timeout = re.compile(r"shansong 2026-11-20 page \d+: timeout after 0\.3 s, retry 1/7 in \d+\.\d s")
    assert warnings and all(timeout.fullmatch(w) for w in warnings), warnings


def test_giving_up_is_logged_with_the_reason(sb, tmp_path, caplog):
    sb.set_faults({"http_429": 1.0})
    caplog.set_level(logging.WARNING, logger="ingest.http")
    with pytest.raises(SourceUnavailable):
        _fetch(sb, "sf", tmp_path, policy=replace(FAST, max_total_wait_s=0.5))
    assert _lines(caplog, "ingest.http", logging.WARNING) == [
        "sf 2026-11-20 page 1: HTTP 429, Retry-After 1 s; giving up: waiting 1.0 s more would pass the 0.5 s "
        "retry budget"
    ]
    caplog.clear()
    sb.set_faults({"http_5xx": 1.0})
    with pytest.raises(SourceUnavailable):
        _fetch(sb, "meituan", tmp_path / "again", policy=replace(FAST, max_attempts=1))
    assert re.fullmatch(
        r"meituan 2026-11-20 page 1: HTTP 50[23]; giving up after 1 attempts",
        *_lines(caplog, "ingest.http", logging.WARNING),
    )


def test_pages_at_debug_and_a_few_progress_lines_at_info(sb, tmp_path, caplog, monkeypatch):
    # Scaled down: a line every 5 pages instead of 50, and no time rule, whatever the machine's speed.
    monkeypatch.setattr(ingest.clients, "PROGRESS_EVERY_PAGES", 5)
    monkeypatch.setattr(ingest.clients, "PROGRESS_EVERY_S", 3600.0)
    caplog.set_level(logging.DEBUG, logger="ingest.clients")
    _fetch(sb, "meituan", tmp_path, page_size=200)  # 18 pages
    page = re.compile(r"meituan 2026-11-20 page (\d+)( \(last\))?: ([\d,]+) records \(([\d,]+) so far\)")
    matched = [(r.levelno, page.fullmatch(r.getMessage())) for r in caplog.records if r.name == "ingest.clients"]
    pages = [(level, m) for level, m in matched if m]
    assert [int(m[1]) for _, m in pages] == list(range(1, 19))
    loud = [1, 6, 11, 16, 18]  # the first, every 5th after it, the last
    assert [int(m[1]) for level, m in pages if level == logging.INFO] == loud
    assert all(level == logging.DEBUG for level, m in pages if int(m[1]) not in loud)
    assert [m[2] for _, m in pages].count(" (last)") == 1 and pages[-1][1][2] == " (last)"
    assert pages[-1][1][4] == f"{sum(int(m[3]) for _, m in pages):,}" == "3,551"
    totals = TOTALS.fullmatch(caplog.records[-1].getMessage())
    assert (totals["pages"], totals["records"], totals["retries"]) == ("18", "3,551", "0")
