"""Publishing writes complete, checksummed versions; readers never see half of one; rollback and
pruning keep `current` valid."""

from __future__ import annotations

import csv
import hashlib
import json
import os
import re
import subprocess
import sys
import threading
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest

from publish import publish_version, rollback
from publish.publisher import _prune, current_version, versions
from tests.requires import needs_chromium

pytestmark = needs_chromium  # every test here publishes a version, and with it the briefing's PDF

REPO = Path(__file__).resolve().parents[2]


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_publish_writes_every_file_with_checksums_bom_and_catalog(warehouse, published):
    manifest = publish_version(
        warehouse,
        published,
        "2026-11-28",
        "scheduled__2026-11-28T17:30:00+00:00",
        descriptions={"unit_access_daily": "One row per unit and business date"},
    )
    assert re.fullmatch(r"\d{8}T\d{6}Z-2026-11-28-[0-9a-f]{8}", manifest.version)
    folder = published / "versions" / manifest.version
    assert os.path.realpath(published / "current") == str(folder)
    on_disk = json.loads((published / "current" / "manifest.json").read_text(encoding="utf-8"))
    assert on_disk["run_id"] == "scheduled__2026-11-28T17:30:00+00:00"
    assert on_disk["business_date"] == "2026-11-28" and on_disk["code_version"] not in ("", None)

    marts = ["street_coverage_monthly", "unit_access_daily"]
    assert sorted(manifest.marts) == marts  # staging.stg_riders is not published
    expected = {"marts.duckdb"} | {f"parquet/{m}.parquet" for m in marts} | {f"csv/{m}.csv" for m in marts}
    expected |= {"briefing.html", "briefing.pdf"}  # publish/briefing.py (tests/publish/test_briefing.py)
    assert set(manifest.files) == expected
    for name, digest in manifest.files.items():
        assert _sha(folder / name) == digest, name
    assert manifest.marts["unit_access_daily"]["rows"] == 50
    assert {"name": "street_name", "type": "VARCHAR", "description": None} in (
        manifest.marts["street_coverage_monthly"]["columns"]
    )  # the hand-made mart has no column comments

    raw_csv = (folder / "csv" / "street_coverage_monthly.csv").read_bytes()
    assert raw_csv.startswith(b"\xef\xbb\xbf") and not raw_csv[3:].startswith(b"\xef\xbb\xbf")
    rows = list(csv.DictReader(raw_csv.decode("utf-8-sig").splitlines()))
    assert len(rows) == 11 and rows[0]["street_name"] == "西溪街道"
    assert pq.read_table(folder / "parquet" / "unit_access_daily.parquet").num_rows == 50

    con = duckdb.connect(str(folder / "marts.duckdb"), read_only=True)
    catalog = dict(con.execute("select mart, description from mart_catalog").fetchall())
    assert catalog["unit_access_daily"] == "One row per unit and business date"  # given
    assert catalog["street_coverage_monthly"].endswith("their share (友好单元覆盖)")  # table comment
    assert con.execute("select count(*) from unit_access_daily").fetchone()[0] == 50
    con.close()
    assert not list((published / ".staging").iterdir())


def test_a_subset_of_marts_and_an_unknown_mart(warehouse, published):
    first = publish_version(warehouse, published, "2026-11-28", "run-a", marts=["unit_access_daily"])
    assert list(first.marts) == ["unit_access_daily"]
    with pytest.raises(ValueError, match="no_such_mart"):
        publish_version(warehouse, published, "2026-11-28", "run-b", marts=["no_such_mart"])
    # The failed publish left nothing behind and current still points at the good version.
    assert versions(published) == [first.version] and current_version(published) == first.version
    assert not list((published / ".staging").iterdir())


def test_readers_never_see_a_mixed_version_while_publishing(warehouse, published, set_deliveries):
    """A reader resolves `current` once per read and checks every file against that version's manifest
    and the data marker of that publish, while six publishes switch `current` underneath it."""
    set_deliveries(0)
    publish_version(warehouse, published, "2026-11-28", "run-0")
    stop, seen, problems = threading.Event(), [], []

    def reader():
        while not stop.is_set():
            try:
                with open(published / "current" / "manifest.json", encoding="utf-8") as f:
                    json.load(f)  # `current` itself never disappears
                folder = Path(os.path.realpath(published / "current"))
                manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
                marker = int(manifest["run_id"].split("-")[1])
                for name, digest in manifest["files"].items():
                    if name.startswith("parquet/") and _sha(folder / name) != digest:
                        problems.append(f"{name} does not match the manifest of {folder.name}")
                values = set(
                    pq.read_table(folder / "parquet" / "unit_access_daily.parquet").column("deliveries").to_pylist()
                )
                if values != {marker}:
                    problems.append(f"{folder.name}: run {marker} but data {values}")
                seen.append(folder.name)
            except Exception as error:  # noqa: BLE001  (any failure to read is what this test is about)
                problems.append(repr(error))

    threads = [threading.Thread(target=reader) for _ in range(2)]
    for t in threads:
        t.start()
    for n in range(1, 7):
        set_deliveries(n)
        publish_version(warehouse, published, "2026-11-28", f"run-{n}")
    stop.set()
    for t in threads:
        t.join()
    assert problems == []
    assert len(seen) > 10 and len(set(seen)) >= 2


def test_rollback_to_previous_and_named_version_from_the_cli(warehouse, published):
    names = [publish_version(warehouse, published, "2026-11-28", f"run-{n}").version for n in range(3)]
    assert versions(published) == names
    assert rollback(published) == names[1] and current_version(published) == names[1]

    cli = [sys.executable, "-m", "publish", "--root", str(published)]
    done = subprocess.run([*cli, "rollback", "--to", names[0]], cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 0 and names[0] in done.stdout
    assert current_version(published) == names[0]
    refused = subprocess.run([*cli, "rollback"], cwd=REPO, capture_output=True, text=True)
    assert refused.returncode == 1 and "no version older" in refused.stderr
    listed = subprocess.run([*cli, "list"], cwd=REPO, capture_output=True, text=True, check=True).stdout
    assert [line[2:].split()[0] for line in listed.splitlines()] == names
    assert [line[2:].split()[0] for line in listed.splitlines() if line.startswith("*")] == names[:1]
    with pytest.raises(ValueError, match="unknown version"):
        rollback(published, "20000101T000000Z-nope")


def test_old_versions_are_pruned_but_never_the_current_one(warehouse, published, monkeypatch):
    monkeypatch.setenv("XIHU_KEEP_VERSIONS", "2")
    names = [publish_version(warehouse, published, "2026-11-28", f"run-{n}").version for n in range(4)]
    assert versions(published) == names[2:]
    assert not (published / "versions" / names[0]).exists()
    # After a rollback the current version is the oldest: pruning to one version must spare it.
    rollback(published)
    assert _prune(published, 1) == []
    assert versions(published) == names[2:]
    monkeypatch.setenv("XIHU_KEEP_VERSIONS", "1")
    newest = publish_version(warehouse, published, "2026-11-29", "run-4").version
    assert versions(published) == [newest] and current_version(published) == newest


def test_shell_lists_the_catalog_and_refuses_writes(warehouse, published):
    publish_version(
        warehouse,
        published,
        "2026-11-28",
        "run-1",
        descriptions={"unit_access_daily": "One row per unit and business date"},
    )
    cli = [sys.executable, "-m", "publish", "--root", str(published), "shell"]
    session = subprocess.run(
        cli,
        cwd=REPO,
        input="select mart, description\nfrom mart_catalog;\n.quit\n",
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert session.returncode == 0, session.stderr
    assert "unit_access_daily" in session.stdout and "One row per unit and business date" in session.stdout
    assert "友好单元覆盖" in session.stdout
    write = subprocess.run(
        [*cli, "-c", "delete from unit_access_daily"], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert write.returncode == 1 and "read-only" in write.stdout.lower()


def test_current_only_moves_forward(warehouse, published):
    newest = publish_version(warehouse, published, "2026-11-29", "run-new").version
    with pytest.raises(ValueError, match="would move it back"):
        publish_version(warehouse, published, "2026-11-21", "run-old")
    assert current_version(published) == newest
    corrected = publish_version(warehouse, published, "2026-11-29", "run-fix", corrected_dates=["2026-11-21"])
    assert corrected.corrected_dates == ["2026-11-21"] and current_version(published) == corrected.version
    assert json.loads((published / "current" / "manifest.json").read_text())["corrected_dates"] == ["2026-11-21"]


def test_a_failed_recording_leaves_no_version_and_current_as_it_was(warehouse, published):
    first = publish_version(warehouse, published, "2026-11-28", "run-1").version

    def refuse(manifest):
        raise RuntimeError("the warehouse could not record it")

    with pytest.raises(RuntimeError):
        publish_version(warehouse, published, "2026-11-28", "run-2", before_switch=refuse)
    assert current_version(published) == first and versions(published) == [first]
    assert not (published / ".pending").exists()


def test_recover_switches_to_a_recorded_version_and_deletes_an_unrecorded_one(warehouse, published):
    """The state a kill leaves between a version's folder and the switch: folder, marker, `current` behind."""
    from publish import publisher

    first = publish_version(warehouse, published, "2026-11-28", "run-1").version
    for run_id, recorded in (("run-2", True), ("run-3", False)):
        interrupted = publish_version(warehouse, published, "2026-11-28", run_id).version
        rollback(published, first)
        (published / ".pending").write_text(interrupted)
        (published / ".staging" / "leftover").mkdir(parents=True)
        done = publisher.recover(published, lambda v, recorded=recorded: recorded)
        assert not (published / ".pending").exists() and not (published / ".staging").exists()
        if recorded:
            assert "switched current" in done and current_version(published) == interrupted
            first = interrupted
        else:
            assert "deleted the unrecorded version" in done
            assert interrupted not in versions(published) and current_version(published) == first
    assert publisher.recover(published, lambda v: True) is None


def test_a_version_named_before_the_marts_are_built(warehouse, published):
    """The DAG names its version at plan and records the intended publication before dbt, so the
    version's own pipeline_runs says it; the publication takes that name and replaces the row."""
    import datetime as dt

    from publish import record_intended_publication, record_publication, version_name

    first = publish_version(warehouse, published, "2026-11-28", "run-1").version
    started = dt.datetime(2026, 11, 29, 1, 30, 5, tzinfo=dt.timezone(dt.timedelta(hours=8)))
    planned = version_name(started, "2026-11-29", "run-2")
    assert planned == f"20261128T173005Z-2026-11-29-{hashlib.sha1(b'run-2').hexdigest()[:8]}"
    record_intended_publication(warehouse, "run-2", "2026-11-29", planned)
    rows = "select run_id, business_date::varchar, version, status from audit.publications order by all"
    with duckdb.connect(str(warehouse), read_only=True) as con:
        assert con.execute(rows).fetchall() == [("run-2", "2026-11-29", planned, "published")]
    manifest = publish_version(
        warehouse,
        published,
        "2026-11-29",
        "run-2",
        version=planned,
        before_switch=lambda m: record_publication(warehouse, m),
    )
    assert manifest.version == planned and current_version(published) == planned
    with duckdb.connect(str(warehouse), read_only=True) as con:
        assert con.execute(rows).fetchall() == [("run-2", "2026-11-29", planned, "published")]
    # list and rollback order by publication time, whatever the names say
    assert versions(published) == [first, planned] and rollback(published) == first
    # the same name again is refused, unless it is an interrupted attempt (the marker names it)
    with pytest.raises(ValueError, match="already published"):
        publish_version(warehouse, published, "2026-11-29", "run-2", version=planned)
    (published / ".pending").write_text(planned)
    assert publish_version(warehouse, published, "2026-11-29", "run-2", version=planned).version == planned
    assert current_version(published) == planned and not (published / ".pending").exists()
