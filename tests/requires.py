"""Chromium, which publishing needs, and the mark that skips the tests that publish where it is absent,
naming the install command. `make test` installs it first when it runs as root with apt
(`make debian-packages`); anyone else gets the skips. Publishing prints the briefing's PDF with Chromium
(publish/briefing.py), so every test that publishes a version needs it. (docker-compose, LibreOffice and
Postgres skip where their tests use them.)"""

from __future__ import annotations

import pytest

from publish.briefing import CHROMIUM_INSTALL, chromium

needs_chromium = pytest.mark.skipif(
    chromium() is None, reason=f"needs Chromium to print the briefing: {CHROMIUM_INSTALL} (make test does it as root)"
)
