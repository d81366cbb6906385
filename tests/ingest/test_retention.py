"""Landing retention: old run folders go, the newest complete fetch of each (source, date) and every folder
a fetch holds stay."""

from __future__ import annotations

import fcntl
import json
import os
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import pytest

from ingest import settings
from ingest.landing import Landing, mark_rejected, prune_landing

CST = timezone(timedelta(hours=8))
NOW = datetime(2026, 12, 31, 12, 0, tzinfo=CST)


def _folder(root: Path, source: str, day: str, fetch_id: str, age: timedelta | None, complete: bool = True) -> Path:
    """A landing folder whose fetch finished (complete) or started (incomplete) ``age`` before NOW; no
    manifest at all when ``age`` is None."""
    folder = root / source / day / fetch_id
    folder.mkdir(parents=True)
    (folder / "page-00001.json.gz").write_bytes(b"page")
    if age is not None:
        at = (NOW - age).isoformat()
        manifest = {
            "source": source,
            "business_date": day,
            "fetch_id": fetch_id,
            "complete": complete,
            "started_at": at,
            "finished_at": at if complete else None,
        }
        (folder / "manifest.json").write_text(json.dumps(manifest))
    return folder


def test_old_folders_go_and_the_system_of_record_stays(tmp_path, caplog):
    days = timedelta(days=1)
    old = {
        "oldest": _folder(tmp_path, "meituan", "2026-11-01", "oldest", 60 * days),
        "rejected": _folder(tmp_path, "meituan", "2026-11-01", "rejected", 40 * days),  # newest complete, refused
        "abandoned": _folder(tmp_path, "meituan", "2026-11-01", "abandoned", 45 * days, complete=False),
        "half-day-old": _folder(tmp_path, "meituan", "2026-12-29", "half-day-old", 3 * days, complete=False),
        "killed-early": _folder(tmp_path, "meituan", "2026-12-29", "killed-early", None),
        "stations-rejected": _folder(tmp_path, "stations", "2026-11-01", "rejected", 50 * days),
    }
    kept = {
        "record": _folder(tmp_path, "meituan", "2026-11-01", "record", 50 * days),
        "recent": _folder(tmp_path, "meituan", "2026-12-29", "recent", 2 * days),
        "newest": _folder(tmp_path, "meituan", "2026-12-29", "newest", 1 * days),
        "running": _folder(tmp_path, "meituan", "2026-12-29", "running", timedelta(hours=2), complete=False),
        "starting": _folder(tmp_path, "meituan", "2026-12-29", "starting", None),
        "stations-record": _folder(tmp_path, "stations", "2026-11-01", "record", 60 * days),
    }
    mark_rejected(old["rejected"], "gate_raw")
    mark_rejected(old["stations-rejected"], "LoadCountError")
    stamp = (NOW - 3 * days).timestamp()
    os.utime(old["killed-early"], (stamp, stamp))
    os.utime(kept["starting"], (NOW.timestamp(), NOW.timestamp()))
    locked = _folder(tmp_path, "meituan", "2026-11-01", "locked", 45 * days, complete=False)
    fd = os.open(locked, os.O_RDONLY)
    fcntl.flock(fd, fcntl.LOCK_EX)  # a fetch still writing it
    caplog.set_level("INFO", logger="ingest.landing")
    try:
        deleted = prune_landing(tmp_path, NOW, keep_days=35)
    finally:
        os.close(fd)
    assert sorted(deleted) == sorted(old.values())
    assert not any(folder.exists() for folder in old.values())
    assert all(folder.exists() for folder in kept.values()) and locked.exists()
    assert f"landing retention: {locked} is in use by a fetch, kept" in caplog.messages
    assert f"landing retention: deleted {old['oldest']} (complete {(NOW - 60 * days).isoformat()})" in caplog.messages
    assert prune_landing(tmp_path, NOW, keep_days=35) == [locked]  # once unlocked, it goes too
    assert prune_landing(tmp_path, NOW, keep_days=35) == []


def test_folders_written_by_landing_are_pruned_by_their_finish_time(tmp_path):
    # Other page sizes, so that the second run does not start from the first one's pages.
    for fetch_id, limit in (("first", 1), ("second", 2)):
        request = {"date": "2026-11-20", "limit": limit}
        with Landing.open(tmp_path, "meituan", date(2026, 11, 20), fetch_id, request) as landing:
            landing.submit("json", {"offset": 0}, 1, None, b"{}")
            landing.finish()
    later = datetime.now(CST) + timedelta(days=36)
    assert prune_landing(tmp_path, later, 37) == []
    assert prune_landing(tmp_path, later, 35) == [tmp_path / "meituan" / "2026-11-20" / "first"]
    assert [p.name for p in (tmp_path / "meituan" / "2026-11-20").iterdir()] == ["second"]


def test_keep_days_below_one_is_refused(tmp_path):
    with pytest.raises(ValueError, match="at least 1"):
        prune_landing(tmp_path, NOW, keep_days=0)


def test_keep_days_setting(monkeypatch):
    monkeypatch.delenv("XIHU_LANDING_KEEP_DAYS", raising=False)
    assert settings.landing_keep_days() == 35
    monkeypatch.setenv("XIHU_LANDING_KEEP_DAYS", "90")
    assert settings.landing_keep_days() == 90
