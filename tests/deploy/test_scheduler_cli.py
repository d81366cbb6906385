"""ops.scheduler_harness as the lead's pipeline test uses it: the command line, start to teardown.

Separate from test_scheduler.py so that its deployment is gone before this one starts (2 cores).
"""

from __future__ import annotations

import json
import time

from ops.scheduler_harness import main
from tests.deploy.harness_dags import OK_DAG, write_dags


def test_command_line_runs_the_whole_path(tmp_path, capsys):
    """What the lead's pipeline test runs for xihu_friendly_daily: a fresh deployment, a manual run, a
    3-day backfill, everything torn down, a JSON report."""
    dags = write_dags(tmp_path / "dags", harness_ok=OK_DAG)
    started = time.monotonic()
    code = main(
        [
            "--dags-folder",
            str(dags),
            "--dag-id",
            "harness_ok",
            "--from-date",
            "2026-11-10",
            "--to-date",
            "2026-11-12",
            "--env",
            f"XIHU_DATA_DIR={tmp_path / 'data'}",
        ]
    )
    report = json.loads(capsys.readouterr().out)
    print(f"\nwhole path: {time.monotonic() - started:.1f}s, {report['timings_s']}")
    assert code == 0, report
    assert report["manual"] == "success"
    assert report["backfill"] == {f"2026-11-{d - 1:02d}T17:30:00Z": "success" for d in (11, 12, 13)}
    markers = {p.name for p in (tmp_path / "data" / "markers").iterdir()}
    assert {f"2026-11-{d}.txt" for d in (10, 11, 12)} <= markers
