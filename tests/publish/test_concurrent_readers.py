"""A reader in another process (a BI tool, an analyst's notebook) never sees a mixed version and never
holds up a publish, even while it keeps files of a version open and that version is pruned."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from publish import publish_version
from publish.publisher import current_version, versions
from tests.requires import needs_chromium

pytestmark = needs_chromium  # every test here publishes a version, and with it the briefing's PDF

READER = Path(__file__).with_name("reader_process.py")
PUBLISHES = 6


def test_a_reader_process_sees_whole_versions_and_never_blocks_publishing(
    warehouse, published, set_deliveries, tmp_path, monkeypatch
):
    # Keep 3 versions: the version the reader holds open from the start is pruned during the test.
    monkeypatch.setenv("XIHU_KEEP_VERSIONS", "3")
    set_deliveries(0)
    first = publish_version(warehouse, published, "2026-11-28", "run-0").version
    stop = tmp_path / "stop"
    reader = subprocess.Popen(
        [sys.executable, str(READER), str(published), str(stop)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        ready = json.loads(reader.stdout.readline() or "{}")
        assert ready.get("ready") == first, reader.stderr.read()

        durations, windows = [], []
        for n in range(1, PUBLISHES + 1):
            set_deliveries(n)
            started = time.time()
            publish_version(warehouse, published, "2026-11-28", f"run-{n}")
            windows.append((started, time.time()))
            durations.append(windows[-1][1] - started)
            time.sleep(0.05)  # let the reader finish rounds on this version too
        newest = current_version(published)
        stop.touch()
        out, err = reader.communicate(timeout=60)
    finally:
        if reader.poll() is None:
            reader.kill()
    assert reader.returncode == 0, err
    summary = json.loads(out.strip().splitlines()[-1])

    assert summary["problems"] == []
    assert summary["rounds"] > PUBLISHES and len(summary["versions_seen"]) >= 3
    assert summary["last_seen"] == newest
    # The publishes ran while the reader held the first version open, and none waited for it.
    assert summary["held_from"] < windows[0][0] and summary["held_until"] > windows[-1][1]
    assert max(durations) < 10, durations
    # The held version was pruned under it, yet its open connection still reads that version's data.
    assert first not in versions(published) and summary["held_version"] == first
    assert summary["held_values"] == [0]
