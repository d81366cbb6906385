"""The dbt docs as one page that opens from disk with nothing from outside the machine.

`dbt docs generate` writes an ``index.html`` that fetches ``manifest.json`` and ``catalog.json`` when it
opens, which a browser refuses from ``file://``: the page stays blank. ``--static`` writes
``static_index.html`` with both inlined. That page still carries dbt's Snowplow loader, which inserts a
``<script src="//d1fc8wv8zag5ca.cloudfront.net/...">`` when usage tracking is on in the manifest; the
project turns tracking off (DO_NOT_TRACK), and the loader is removed as well, so no setting can make the
page call out. The result replaces ``index.html`` (tests/test_pipeline_e2e.py opens it in Chromium with
every request recorded).
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

from ingest.settings import dbt_vars
from ops.localenv import PROJECT_ROOT

# dbt-docs' bundle inserts the tracker with exactly this statement (dbt-core 1.11's index.html).
TRACKER_LOADER = 'i.src="//d1fc8wv8zag5ca.cloudfront.net/2.9.0/sp.js",a.parentNode.insertBefore(i,a)'


def offline_page(static_page: str) -> str:
    """dbt's static docs page without its tracker loader; fails if dbt's bundle changed shape."""
    if static_page.count(TRACKER_LOADER) != 1:
        raise ValueError(
            "dbt's docs page changed: its tracker loader was not found once; check "
            "ops/dbt_docs.py against this dbt-core's index.html"
        )
    return static_page.replace(TRACKER_LOADER, "void 0")


def generate(target: Path, env: Mapping[str, str]) -> Path:
    """Generate the dbt docs of the warehouse ``env`` points at into ``target``; returns the page."""
    subprocess.run(
        [
            str(Path(sys.executable).parent / "dbt"),
            "docs",
            "generate",
            "--static",
            "--profiles-dir",
            ".",
            "--vars",
            json.dumps(dbt_vars()),
            "--target-path",
            str(target),
            "--quiet",
        ],
        cwd=PROJECT_ROOT / "dbt_project",
        env=dict(env),
        check=True,
        capture_output=True,  # dbt's output is the CalledProcessError's when it fails
        text=True,
    )
    page = target / "index.html"
    page.write_text(offline_page((target / "static_index.html").read_text(encoding="utf-8")), encoding="utf-8")
    (target / "static_index.html").unlink()
    return page
