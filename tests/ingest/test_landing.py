"""Landing writer: atomic pages, manifest contract, verify-and-resume, immutability once complete."""

from __future__ import annotations

import gzip
import io
import json
from datetime import date
from pathlib import Path

import pytest

from ingest.files import sha256_file
from ingest.landing import Landing, LandingMismatch, safe_fetch_id

DAY = date(2026, 11, 20)
REQUEST = {"date": "2026-11-20", "limit": 2}


def _land(root: Path, pages: int, finish: bool, fetch_id: str = "run-1") -> Path:
    with Landing.open(root, "meituan", DAY, fetch_id, REQUEST) as landing:
        for i in range(pages):
            body = json.dumps({"page": i + 1, "orders": [i * 2, i * 2 + 1]}).encode()
            landing.submit("json", {"offset": i * 2}, 2, {"offset": (i + 1) * 2}, body)
        if finish:
            landing.finish()
        return landing.folder


def _manifest(folder: Path) -> dict:
    return json.loads((folder / "manifest.json").read_text())


def test_pages_and_manifest_follow_the_contract(tmp_path):
    folder = _land(tmp_path, 3, finish=True)
    assert folder == tmp_path / "meituan" / "2026-11-20" / "run-1"
    m = _manifest(folder)
    assert (m["source"], m["business_date"], m["fetch_id"], m["request"]) == (
        "meituan",
        "2026-11-20",
        "run-1",
        REQUEST,
    )
    assert m["complete"] is True and m["finished_at"] and m["started_at"]
    assert m["records"] == 6
    assert [p["file"] for p in m["pages"]] == [
        "page-00001.json.gz",
        "page-00002.json.gz",
        "page-00003.json.gz",
    ]
    for n, entry in enumerate(m["pages"], start=1):
        path = folder / entry["file"]
        assert entry["page"] == n and entry["records"] == 2
        assert entry["request"] == {"offset": (n - 1) * 2} and entry["next"] == {"offset": n * 2}
        assert entry["sha256"] == sha256_file(path)
        assert json.loads(gzip.decompress(path.read_bytes())) == {"page": n, "orders": [n * 2 - 2, n * 2 - 1]}
        assert entry["fetched_at"].endswith("+08:00")
    assert sorted(p.name for p in folder.iterdir()) == [
        "manifest.json",
        "page-00001.json.gz",
        "page-00002.json.gz",
        "page-00003.json.gz",
    ]


def test_same_content_gives_same_file(tmp_path):
    """mtime 0 in the gzip header: a re-landed page is byte-identical, so checksums compare across runs."""
    a = _manifest(_land(tmp_path / "a", 2, finish=True, fetch_id="a"))
    b = _manifest(_land(tmp_path / "b", 2, finish=True, fetch_id="b"))  # apart: b would reuse a's pages
    assert [p["sha256"] for p in a["pages"]] == [p["sha256"] for p in b["pages"]]


def test_resume_keeps_verified_prefix_and_drops_the_rest(tmp_path):
    folder = _land(tmp_path, 5, finish=False)
    # A corrupted page 3 (bit rot, a torn write after a power cut) and leftovers of a killed writer.
    (folder / "page-00003.json.gz").write_bytes(b"garbage")
    (folder / ".page-00006.json.gz.tmp").write_bytes(b"half a page")
    (folder / "page-00007.json.gz").write_bytes(b"not in the manifest")
    with Landing.open(tmp_path, "meituan", DAY, "run-1", REQUEST) as landing:
        assert not landing.complete
        assert [p["page"] for p in landing.pages] == [1, 2]
        assert landing.resume_state() == (True, {"offset": 4})
        assert landing.manifest["records"] == 4
    assert sorted(p.name for p in folder.iterdir()) == [
        "manifest.json",
        "page-00001.json.gz",
        "page-00002.json.gz",
    ]
    assert [p["page"] for p in _manifest(folder)["pages"]] == [1, 2]


def test_resume_after_the_last_page_only_needs_finishing(tmp_path):
    with Landing.open(tmp_path, "meituan", DAY, "run-1", REQUEST) as landing:
        landing.submit("json", {"offset": 0}, 1, None, b"{}")
    with Landing.open(tmp_path, "meituan", DAY, "run-1", REQUEST) as landing:
        assert landing.resume_state() == (True, None)
        landing.finish()
    assert _manifest(landing.folder)["complete"] is True


def test_fresh_fetch_has_no_state(tmp_path):
    with Landing.open(tmp_path, "meituan", DAY, "new", REQUEST) as landing:
        assert landing.resume_state() == (False, None)
        assert _manifest(landing.folder)["pages"] == []


def test_complete_fetch_is_returned_as_is(tmp_path):
    folder = _land(tmp_path, 2, finish=True)
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    (folder / "page-00002.json.gz").write_bytes(b"tampered")  # immutable: not re-verified, not rewritten
    with Landing.open(tmp_path, "meituan", DAY, "run-1", REQUEST) as landing:
        assert landing.complete
    assert (folder / "page-00002.json.gz").read_bytes() == b"tampered"
    assert (folder / "manifest.json").read_bytes() == before["manifest.json"]


def test_resuming_with_other_request_parameters_is_refused(tmp_path):
    _land(tmp_path, 1, finish=False)
    with pytest.raises(LandingMismatch):
        Landing.open(tmp_path, "meituan", DAY, "run-1", {"date": "2026-11-20", "limit": 1000})


def test_one_writer_per_folder(tmp_path):
    with Landing.open(tmp_path, "meituan", DAY, "run-1", REQUEST):
        with pytest.raises(BlockingIOError, match="another fetch"):
            Landing.open(tmp_path, "meituan", DAY, "run-1", REQUEST)


def test_file_bodies_are_streamed_and_closed(tmp_path):
    body = io.BytesIO(b"line\n" * 300_000)
    with Landing.open(tmp_path, "stations", DAY, "run-1", {}) as landing:
        landing.submit("ndjson", {}, 300_000, None, body)
        landing.finish()
    assert body.closed
    entry = _manifest(landing.folder)["pages"][0]
    assert gzip.decompress((landing.folder / entry["file"]).read_bytes()) == b"line\n" * 300_000


def test_a_writer_failure_surfaces_and_lands_nothing_after_it(tmp_path):
    with Landing.open(tmp_path, "meituan", DAY, "run-1", REQUEST) as landing:
        landing.submit("json", {"offset": 0}, 1, {"offset": 1}, b"{}")
        landing.submit("json", {"offset": 1}, 1, {"offset": 2}, object())  # not bytes, not a file
        with pytest.raises(RuntimeError, match="landing writer failed"):
            landing.finish()
    assert [p["page"] for p in _manifest(landing.folder)["pages"]] == [1]


@pytest.mark.parametrize(
    ("run_id", "safe"),
    [
        ("manual__2026-11-29T01:30:00+00:00", "manual__2026-11-29T01_30_00_00_00"),
        ("a/../b", "a_.._b"),
        ("x", "x"),
    ],
)
def test_safe_fetch_id(run_id, safe):
    assert safe_fetch_id(run_id) == safe


def test_safe_fetch_id_refuses_empty():
    with pytest.raises(ValueError):
        safe_fetch_id("///")
