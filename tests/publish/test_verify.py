"""A published version whose files no longer match its manifest is found and withdrawn: by
``python -m publish verify`` (its exit status) and by the function every run's ``stage`` calls. The
tests run as root, which writes a 0440 file as any client running as root would."""

from __future__ import annotations

import json
import os
from pathlib import Path

import duckdb
import pytest

from publish import publish_version, rollback
from publish.__main__ import main
from publish.publisher import current_version, versions
from publish.verify import WITHDRAWN, verify_published
from tests.requires import needs_chromium

pytestmark = needs_chromium  # every test here publishes a version, and with it the briefing's PDF


@pytest.fixture
def three(warehouse, published) -> list[str]:
    """Three versions of the same day, the newest current."""
    return [publish_version(warehouse, published, "2026-11-28", f"run-{n}").version for n in range(3)]


def _verify(published: Path, capsys) -> tuple[int, str]:
    status = main(["--root", str(published), "verify"])
    captured = capsys.readouterr()
    return status, captured.out + captured.err


def test_intact_publication_verifies_clean(three, published, capsys):
    status, said = _verify(published, capsys)
    assert (status, said.strip()) == (0, "published versions: 3 intact, 0 damaged")
    assert current_version(published) == three[-1]
    assert versions(published) == three
    assert not (published / WITHDRAWN).exists()


def test_a_byte_appended_to_a_csv_of_current_withdraws_it(three, published, capsys):
    with (published / "current" / "csv" / "unit_access_daily.csv").open("ab") as csv_file:
        csv_file.write(b"\n")
    status, said = _verify(published, capsys)
    assert status == 1
    assert f"withdrawn {three[-1]}" in said and "csv/unit_access_daily.csv changed" in said
    assert current_version(published) == three[1]  # the newest intact version
    assert versions(published) == three[:2]
    note = json.loads((published / WITHDRAWN / three[-1] / "withdrawn.json").read_text(encoding="utf-8"))
    assert note["problems"] == ["csv/unit_access_daily.csv changed (sha256 differs from the manifest)"]
    with pytest.raises(ValueError, match="unknown version"):
        rollback(published, three[-1])  # never served again
    assert _verify(published, capsys) == (0, "published versions: 2 intact, 0 damaged\n")


def test_a_rewritten_parquet_of_current_withdraws_it(three, published):
    parquet = Path(os.path.realpath(published / "current" / "parquet" / "unit_access_daily.parquet"))
    with duckdb.connect() as con:  # same schema, one row changed: what a careless "fix" would do
        con.execute(
            f"copy (select * replace (deliveries + 1 as deliveries) from '{parquet}') "
            f"to '{parquet}.tmp' (format parquet)"
        )
    os.replace(f"{parquet}.tmp", parquet)
    verified = verify_published(published)
    assert verified.damaged == {
        three[-1]: ["parquet/unit_access_daily.parquet changed (sha256 differs from the manifest)"]
    }
    assert (verified.current_before, verified.current_after) == (three[-1], three[1])
    assert current_version(published) == three[1]
    assert not verify_published(published).damaged


def test_a_read_write_duckdb_client_is_detected(three, published):
    """A client that ignores the read-only recipe (root, no ``read_only``) writes into marts.duckdb."""
    with duckdb.connect(os.path.realpath(published / "current" / "marts.duckdb")) as con:
        con.execute("create table scratch as select 1 as x")
    verified = verify_published(published)
    assert list(verified.damaged) == [three[-1]]
    assert "marts.duckdb changed (sha256 differs from the manifest)" in verified.damaged[three[-1]]
    assert current_version(published) == three[1]


def test_an_older_damaged_version_is_withdrawn_and_current_stays(three, published):
    (published / "versions" / three[0] / "csv" / "street_coverage_monthly.csv").unlink()
    (published / "versions" / three[0] / "marts.duckdb.wal").write_bytes(b"x")
    verified = verify_published(published)
    assert verified.damaged == {
        three[0]: ["csv/street_coverage_monthly.csv missing", "marts.duckdb.wal not in the manifest"]
    }
    assert current_version(published) == three[-1]
    assert versions(published) == three[1:]
    assert "current:" not in verified.summary()  # current did not move


def test_no_intact_version_left_takes_current_away(warehouse, published):
    only = publish_version(warehouse, published, "2026-11-28", "run-1").version
    (published / "versions" / only / "manifest.json").write_text("{", encoding="utf-8")
    verified = verify_published(published)
    assert verified.damaged == {only: ["manifest.json unreadable (JSONDecodeError)"]}
    assert not os.path.lexists(published / "current")
    assert "current: " + only + " -> none (no intact version)" in verified.summary()
    # The next run publishes afresh.
    assert current_version(published) is None
    again = publish_version(warehouse, published, "2026-11-28", "run-2").version
    assert current_version(published) == again and not verify_published(published).damaged
