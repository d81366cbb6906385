"""The sandbox feeds for the ingest tests: one server for the session, reset before each test using it."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

# D+2 noon for D = 2026-11-20, the tests' day: D's station log is published and D's late corrections are in.
SANDBOX_NOW = datetime(2026, 11, 22, 12, 0, tzinfo=timezone(timedelta(hours=8)))


@pytest.fixture(scope="session")
def sandbox():
    from sandbox.server import start_sandbox

    handle = start_sandbox(seed=7, scale=0.02, now=SANDBOX_NOW)
    yield handle
    handle.stop()


@pytest.fixture
def sb(sandbox):
    sandbox.set_faults({})
    sandbox.set_clock(SANDBOX_NOW)
    yield sandbox
    sandbox.set_faults({})
