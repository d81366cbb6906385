"""Resume across runs: a new fetch id starts from an earlier fetch's verified pages when fetching them again
now would not be more final (ingest.landing.reuse_refusal), and only then."""

from __future__ import annotations

import json
import logging
import os
import re
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path

import pytest
import requests

from ingest.clients import RetryPolicy, fetch
from ingest.landing import Landing, LandingMismatch, LandingRejected, mark_rejected, reusable, reuse_refusal
from ingest.pii import PiiHasher
from tests.sandbox_conns import sandbox_conn

CST = timezone(timedelta(hours=8))
DAY = date(2026, 11, 20)
REQUEST = {"date": "2026-11-20", "limit": 2}
# The moments that matter for DAY's platform feeds; its correction window is [11-21 00:00, 11-22 00:00).
DURING_DAY = datetime(2026, 11, 20, 15, 0, tzinfo=CST)
RUN_OF_D = datetime(2026, 11, 21, 1, 30, tzinfo=CST)  # the daily run of DAY: provisional
RERUN_OF_D = datetime(2026, 11, 21, 1, 40, tzinfo=CST)  # re-run after a killed run, same window
RUN_OF_D1 = datetime(2026, 11, 22, 1, 30, tzinfo=CST)  # the next day's run re-pulls DAY as its D-1: final
LATER = datetime(2026, 11, 25, 9, 0, tzinfo=CST)
PII = PiiHasher("resume-test-pii-key-of-at-least-32-bytes")
FAST = RetryPolicy(connect_timeout_s=2, read_timeout_s=5, max_total_wait_s=30, backoff_base_s=0.01)


def _manifest(folder: Path) -> dict:
    return json.loads((folder / "manifest.json").read_text())


def _files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def _land(root: Path, fetch_id: str, pages: int, finish: bool, now: datetime, request: dict = REQUEST) -> Path:
    """A meituan fetch of DAY started at ``now``: ``pages`` pages of 2 records, the last one final if
    ``finish``."""
    with Landing.open(root, "meituan", DAY, fetch_id, request, now) as landing:
        for i in range(len(landing.pages), pages):
            body = json.dumps({"page": i + 1, "orders": [i * 2, i * 2 + 1]}).encode()
            last = finish and i == pages - 1
            landing.submit("json", {"offset": i * 2}, 2, None if last else {"offset": (i + 1) * 2}, body)
        if finish:
            landing.finish()
        return landing.folder


# ---------------------------------------------------------------- the rule
def _fetched(source: str, started: datetime) -> dict:
    return {"source": source, "business_date": DAY.isoformat(), "started_at": started.isoformat()}


@pytest.mark.parametrize(
    ("source", "started", "now", "expected"),
    [
        ("meituan", RUN_OF_D, RERUN_OF_D, True),  # both inside the window: a re-run after a killed run
        ("meituan", RUN_OF_D, RUN_OF_D1, False),  # provisional, the window has closed: re-pulled
        ("meituan", RUN_OF_D1, LATER, True),  # final
        ("eleme", datetime(2026, 11, 22, 0, 0, tzinfo=CST), LATER, True),  # final from D+2 00:00 on
        ("sf", datetime(2026, 11, 21, 23, 59, 59, tzinfo=CST), datetime(2026, 11, 22, tzinfo=CST), False),
        ("shansong", RUN_OF_D, datetime(2026, 11, 21, 23, 59, tzinfo=CST), True),
        ("meituan", DURING_DAY, RERUN_OF_D, False),  # the day was still taking orders
        ("meituan", RUN_OF_D1.astimezone(UTC), LATER.astimezone(UTC), True),  # any zone
        ("union_members", RUN_OF_D, LATER, True),  # the snapshot at the end of D
        ("union_members", DURING_DAY, LATER, False),
        ("stations", RUN_OF_D, LATER, False),  # fetched again by every run: a truncated file is repaired
        ("union_orgs", DURING_DAY, LATER, True),  # no date
    ],
)
def test_reusable(source, started, now, expected):
    assert reusable(_fetched(source, started), now) is expected


def test_refusals_say_why():
    assert reuse_refusal(_fetched("meituan", RUN_OF_D), RUN_OF_D1) == (
        "provisional: started 2026-11-21T01:30:00+08:00, inside 2026-11-20's correction window, which closed "
        "at 2026-11-22T00:00:00+08:00; re-pulled for the platform's late corrections"
    )
    assert reuse_refusal(_fetched("meituan", DURING_DAY), RUN_OF_D) == (
        "started 2026-11-20T15:00:00+08:00, before 2026-11-20 was over"
    )


# ---------------------------------------------------------------- the landing folder
def test_a_new_fetch_takes_the_verified_pages_of_an_incomplete_earlier_one(tmp_path, caplog):
    first = _land(tmp_path, "first", 3, finish=False, now=RUN_OF_D)
    before = _files(first)
    caplog.set_level(logging.INFO, logger="ingest.landing")
    with Landing.open(tmp_path, "meituan", DAY, "second", REQUEST, RERUN_OF_D) as landing:
        m = landing.manifest
        assert (m["fetch_id"], m["resumed_from"], m["records"], m["complete"]) == ("second", "first", 6, False)
        assert list(m)[:4] == ["source", "business_date", "fetch_id", "resumed_from"]
        assert m["started_at"] == "2026-11-21T01:40:00+08:00"
        assert landing.pages == _manifest(first)["pages"]
        assert landing.resume_state() == (True, {"offset": 6})
        for entry in landing.pages:  # hard links: no byte copied
            assert os.stat(landing.folder / entry["file"]).st_ino == os.stat(first / entry["file"]).st_ino
        landing.submit("json", {"offset": 6}, 1, None, b'{"page": 4, "orders": [6]}')
        landing.finish()
    assert _manifest(landing.folder)["records"] == 7 and _manifest(landing.folder)["complete"] is True
    assert _files(first) == before  # the earlier folder is never modified
    assert (
        "meituan 2026-11-20: reusing 3 verified pages (6 records) of fetch first; fetching from page 4"
        in caplog.messages
    )


def test_the_most_recent_eligible_fetch_is_chosen(tmp_path, caplog):
    # Landed newest first, so that none of them starts from another's pages.
    _land(tmp_path, "empty", 0, finish=False, now=RUN_OF_D1 + timedelta(hours=2))
    mark_rejected(_land(tmp_path, "rejected", 2, finish=True, now=RUN_OF_D1 + timedelta(hours=1)), "gate_raw")
    _land(tmp_path, "older", 2, finish=True, now=RUN_OF_D1)
    caplog.set_level(logging.INFO, logger="ingest.landing")
    caplog.clear()  # only what the new fetch logs (an earlier test may have left INFO on)
    with Landing.open(tmp_path, "meituan", DAY, "new", REQUEST, LATER) as landing:
        assert landing.manifest["resumed_from"] == "older"
        assert landing.resume_state() == (True, None)
    assert caplog.messages[0] == "meituan 2026-11-20: not reusing fetch empty: no verified page"
    rejected = r"meituan 2026-11-20: not reusing fetch rejected: rejected at \S+: gate_raw"
    assert re.fullmatch(rejected, caplog.messages[1])
    assert caplog.messages[2] == (
        "meituan 2026-11-20: reusing 2 verified pages (4 records) of fetch older; every page is landed: "
        "nothing left to fetch"
    )


def test_reuse_ends_at_the_first_page_that_fails_its_checksum(tmp_path):
    earlier = _land(tmp_path, "earlier", 3, finish=True, now=RUN_OF_D1)
    (earlier / "page-00002.json.gz").write_bytes(b"bit rot")
    before = _files(earlier)
    with Landing.open(tmp_path, "meituan", DAY, "new", REQUEST, LATER) as landing:
        assert [p["page"] for p in landing.pages] == [1]
        assert landing.resume_state() == (True, {"offset": 2})
    assert sorted(p.name for p in landing.folder.iterdir()) == ["manifest.json", "page-00001.json.gz"]
    assert _files(earlier) == before


def test_a_provisional_fetch_is_not_reused_once_its_window_closed(tmp_path):
    _land(tmp_path, "run-of-d", 2, finish=True, now=RUN_OF_D)
    with Landing.open(tmp_path, "meituan", DAY, "run-of-d1", REQUEST, RUN_OF_D1) as landing:
        assert landing.resume_state() == (False, None) and "resumed_from" not in landing.manifest


def test_other_request_parameters_are_not_reused(tmp_path):
    _land(tmp_path, "small", 2, finish=True, now=RUN_OF_D1, request={"date": "2026-11-20", "limit": 1})
    with Landing.open(tmp_path, "meituan", DAY, "new", REQUEST, LATER) as landing:
        assert landing.resume_state() == (False, None)
    with pytest.raises(LandingMismatch):  # the same fetch id with other parameters is still refused
        Landing.open(tmp_path, "meituan", DAY, "small", REQUEST, LATER)


def test_a_fetch_being_written_is_not_read(tmp_path):
    _land(tmp_path, "busy", 2, finish=False, now=RUN_OF_D1)
    with Landing.open(tmp_path, "meituan", DAY, "busy", REQUEST, RUN_OF_D1):  # its retry holds the lock
        with Landing.open(tmp_path, "meituan", DAY, "new", REQUEST, LATER) as landing:
            assert landing.resume_state() == (False, None)


def test_a_rejected_fetch_is_kept_and_never_reused_or_resumed(tmp_path):
    folder = _land(tmp_path, "bad", 2, finish=True, now=RUN_OF_D1)
    mark_rejected(folder, "LoadCountError: manifest says 4 records, its pages 3")
    record = json.loads((folder / "rejected.json").read_text())
    assert record["reason"] == "LoadCountError: manifest says 4 records, its pages 3"
    assert record["rejected_at"].endswith("+08:00")
    with Landing.open(tmp_path, "meituan", DAY, "new", REQUEST, LATER) as landing:
        assert landing.resume_state() == (False, None)
    with pytest.raises(LandingRejected, match="was rejected at .*LoadCountError.*start a new run"):
        Landing.open(tmp_path, "meituan", DAY, "bad", REQUEST, LATER)
    assert sorted(p.name for p in folder.iterdir()) == [
        "manifest.json",
        "page-00001.json.gz",
        "page-00002.json.gz",
        "rejected.json",
    ]
    with pytest.raises(FileNotFoundError):
        mark_rejected(tmp_path / "nothing-here", "x")


def test_the_pages_a_rejected_fetch_was_resumed_from_are_not_reused_either(tmp_path, caplog):
    _land(tmp_path, "source-of-pages", 2, finish=False, now=RUN_OF_D1)
    resumed = _land(tmp_path, "resumed", 3, finish=True, now=RUN_OF_D1 + timedelta(hours=1))
    assert _manifest(resumed)["resumed_from"] == "source-of-pages"
    mark_rejected(resumed, "gate raw blocked run resumed")
    caplog.set_level(logging.INFO, logger="ingest.landing")
    with Landing.open(tmp_path, "meituan", DAY, "new", REQUEST, LATER) as landing:
        assert landing.resume_state() == (False, None)
    assert caplog.messages[-1] == (
        "meituan 2026-11-20: not reusing fetch source-of-pages: rejected fetch resumed was resumed from its pages"
    )


def test_an_attempt_killed_while_taking_pages_is_started_again(tmp_path):
    earlier = _land(tmp_path, "earlier", 2, finish=True, now=RUN_OF_D1)
    killed = tmp_path / "meituan" / "2026-11-20" / "new"  # pages linked, no manifest written yet
    killed.mkdir()
    os.link(earlier / "page-00001.json.gz", killed / "page-00001.json.gz")
    with Landing.open(tmp_path, "meituan", DAY, "new", REQUEST, LATER) as landing:
        assert landing.manifest["resumed_from"] == "earlier" and len(landing.pages) == 2


def test_pages_are_copied_where_hard_links_fail(tmp_path, monkeypatch):
    earlier = _land(tmp_path, "earlier", 2, finish=True, now=RUN_OF_D1)

    def no_links(src, dst):
        raise OSError(18, "Invalid cross-device link")

    monkeypatch.setattr(os, "link", no_links)
    with Landing.open(tmp_path, "meituan", DAY, "new", REQUEST, LATER) as landing:
        assert len(landing.pages) == 2
    for name in ("page-00001.json.gz", "page-00002.json.gz"):
        assert (landing.folder / name).read_bytes() == (earlier / name).read_bytes()
        assert os.stat(landing.folder / name).st_ino != os.stat(earlier / name).st_ino


# ---------------------------------------------------------------- through the client, counting requests
class _Killed(Exception):
    """Stands for the worker dying: raised by a response hook, so the page it answers is never landed."""


def _counting_session(kill_after: int | None = None) -> tuple[requests.Session, list[int]]:
    session, offsets = requests.Session(), []

    def hook(resp, *args, **kwargs):
        if kill_after is not None and len(offsets) == kill_after:
            raise _Killed
        offsets.append(int(re.search(r"[?&]offset=(\d+)", resp.url).group(1)))

    session.hooks["response"].append(hook)
    return session, offsets


def _fetch(sb, root, fetch_id, now, **kw):
    kw.setdefault("page_size", 200)  # 18 pages
    conn = sandbox_conn(sb.base_url, "meituan")
    return fetch("meituan", DAY, conn, PII, fetch_id, root, policy=FAST, now=now, **kw)


def test_a_new_run_resumes_a_killed_run_without_asking_for_its_pages_again(sb, tmp_path, caplog):
    session, _ = _counting_session(kill_after=5)
    with pytest.raises(_Killed):
        _fetch(sb, tmp_path, "killed", RUN_OF_D, session=session)
    killed = _manifest(tmp_path / "meituan" / "2026-11-20" / "killed")
    assert len(killed["pages"]) == 5 and not killed["complete"]

    caplog.set_level(logging.INFO, logger="ingest")
    session, offsets = _counting_session()
    folder = _fetch(sb, tmp_path, "rerun", RERUN_OF_D, session=session)
    after = _manifest(folder)
    assert after["complete"] is True and after["resumed_from"] == "killed"
    assert offsets[0] == killed["pages"][-1]["next"]["offset"] == 1000
    assert not {p["request"]["offset"] for p in killed["pages"]} & set(offsets)
    assert after["pages"][:5] == killed["pages"]
    assert [p["page"] for p in after["pages"]] == list(range(1, len(after["pages"]) + 1))
    assert after["records"] == len(sb.state.world.orders("meituan", DAY, corrected=True))
    assert (
        "meituan 2026-11-20: reusing 5 verified pages (1,000 records) of fetch killed; fetching from page 6"
        in caplog.messages
    )
    assert any(m.endswith("; 5 pages were landed before") for m in caplog.messages)


def test_a_complete_final_fetch_is_reused_without_asking_the_source(sb, tmp_path):
    first = _manifest(_fetch(sb, tmp_path, "final", RUN_OF_D1))
    session, offsets = _counting_session()
    folder = _fetch(sb, tmp_path, "later", LATER, session=session)
    assert offsets == []
    after = _manifest(folder)
    assert after["complete"] is True and after["resumed_from"] == "final"
    assert after["pages"] == first["pages"] and after["records"] == first["records"]


def test_a_provisional_fetch_is_re_pulled_once_its_window_closed(sb, tmp_path, caplog):
    first = _manifest(_fetch(sb, tmp_path, "run-of-d", RUN_OF_D))
    caplog.set_level(logging.INFO, logger="ingest.landing")
    session, offsets = _counting_session()
    after = _manifest(_fetch(sb, tmp_path, "run-of-d1", RUN_OF_D1, session=session))
    assert offsets == [p["request"]["offset"] for p in first["pages"]]  # every page asked for again
    assert "resumed_from" not in after and after["complete"] is True
    assert any(m.startswith("meituan 2026-11-20: not reusing fetch run-of-d: provisional") for m in caplog.messages)


def test_a_rejected_fetch_is_fetched_anew(sb, tmp_path):
    bad = _fetch(sb, tmp_path, "bad", RUN_OF_D1)
    mark_rejected(bad, "gate_raw: critical expectation failed")
    session, offsets = _counting_session()
    after = _manifest(_fetch(sb, tmp_path, "again", LATER, session=session))
    assert len(offsets) == len(after["pages"]) and "resumed_from" not in after
    with pytest.raises(LandingRejected):
        _fetch(sb, tmp_path, "bad", LATER)


def test_other_request_parameters_are_fetched_anew(sb, tmp_path):
    _fetch(sb, tmp_path, "small-pages", RUN_OF_D1)
    session, offsets = _counting_session()
    after = _manifest(_fetch(sb, tmp_path, "big-pages", LATER, page_size=1000, session=session))
    assert offsets == [0, 1000, 2000, 3000] and "resumed_from" not in after
