"""How `make test` shares the machine: pytest-xdist runs one worker per core (`-n auto --dist loadscope` in
the Makefile), and a worker takes whole scopes of tests.

A scope is a test module (its module fixtures are built once), except under the directories below, whose
modules share an expensive session fixture: each directory is one scope, so its fixture is built once, on
one worker. (xdist's own `loadgroup` would say this with marks, but on pytest 9.2 it silently stops
grouping: pytest-dev/pytest-xdist#1386.)

Every test process, and what it starts, runs with the stack's telemetry off (ingest.settings.TELEMETRY_OFF).
"""

from __future__ import annotations

import os

import pytest

from ingest.settings import TELEMETRY_OFF

os.environ.update(TELEMETRY_OFF)

# Directories whose modules share a session fixture that costs tens of seconds: the sandbox district
# (tests/integration/conftest.py) and the hand-made dbt warehouse (tests/dbt/conftest.py).
SHARED_FIXTURE_DIRS = ("tests/integration/", "tests/dbt/")


@pytest.hookimpl(optionalhook=True)  # `-p no:xdist` runs everything in one process, without this hook
def pytest_xdist_make_scheduler(config: pytest.Config, log):
    if config.getvalue("dist") != "loadscope":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class SharedFixtureScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            module = nodeid.split("::", 1)[0]
            return next((d for d in SHARED_FIXTURE_DIRS if module.startswith(d)), module)

    return SharedFixtureScheduling(config, log)
