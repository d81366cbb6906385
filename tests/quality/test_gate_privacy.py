"""What a failing gate keeps (issue 10, item 8): counts and reasons, never a keyed hash.

The fixture's raw orders carry rider keys (32 hex characters) in every phone field. The test breaks
the rules that look at riders and members, runs the raw gate and reads back everything the gate leaves
behind: the GX validation results and Data Docs under the data root, audit.gate_results, the log and the
exception's message.
"""

from __future__ import annotations

import datetime as dt
import logging
import re

import duckdb
import pytest

from expectations import gate
from expectations.gate import GateFailed, run_gate

DAY = dt.date(2026, 11, 28)
RUN = "manual__2026-11-29T01:30:00"
KEY = re.compile(r"(?<![0-9a-f])[0-9a-f]{32}(?![0-9a-f])")


def _stored_text(data_dir) -> str:
    files = [p for p in (data_dir / "quality").rglob("*") if p.is_file()]
    assert any("validations" in p.parts for p in files)  # GX did store its results there
    return "\n".join(p.read_text(errors="replace") for p in files)


def test_a_failing_gate_stores_and_says_no_rider_key(warehouse, data_dir, caplog):
    con = duckdb.connect(str(warehouse))
    keys = {
        k
        for (k,) in con.execute(
            "select distinct payload->>'courier_phone' from raw.meituan_orders where business_date = ?", [DAY]
        ).fetchall()
    }
    assert keys and all(KEY.fullmatch(k) for k in keys)
    # half of the day's meituan orders lose their rider key, one union row is listed twice and one lost
    # its member number, and an order leaves the district: critical and warning failures alike
    con.execute(
        "update raw.meituan_orders set payload = json_merge_patch(payload, '{\"courier_phone\": null}')"
        " where business_date = ? and record_no % 2 = 0",
        [DAY],
    )
    con.execute(
        "update raw.meituan_orders set payload = json_merge_patch(payload, '{\"recipient_lng\": 100.0}')"
        " where business_date = ? and record_no = 3",
        [DAY],
    )
    con.execute(
        "update raw.union_members set record_id = ? where business_date = ? and record_no in (1, 2)",
        [f"{'ab' * 16}-U01", DAY],
    )
    con.execute(
        "update raw.union_members set payload = json_merge_patch(payload, '{\"会员编号\": null}')"
        " where business_date = ? and record_no = 4",
        [DAY],
    )
    con.close()

    with caplog.at_level(logging.DEBUG), pytest.raises(GateFailed) as failed:
        run_gate("raw", warehouse, DAY, RUN)
    summary = str(failed.value)
    for rule in (
        "rider phone hash present",
        "one row per member and union",
        "member number present",
        "destination longitude inside Xihu District",
    ):
        assert rule in summary  # the failures are reported, by name and count
    assert "20 of 40 rows unexpected" in summary
    rows = duckdb.connect(str(warehouse), read_only=True).execute("select * from audit.gate_results").fetchall()
    assert rows and any(not r[7] for r in rows)
    said = "\n".join([summary, caplog.text, _stored_text(data_dir), repr(rows)])
    # every keyed hash the gate could have read (GX's own 32-hex fingerprints of frames are not keys)
    con = duckdb.connect(str(warehouse), read_only=True)
    seen = set()
    for table in ("meituan_orders", "eleme_orders", "sf_orders", "shansong_orders", "union_members", "station_events"):
        for payload, record_id in con.execute(
            f"select payload::varchar, record_id from raw.{table} where business_date = ?", [DAY]
        ).fetchall():
            seen |= set(KEY.findall(payload)) | set(KEY.findall(record_id))
    con.close()
    assert len(seen) >= 8  # the 7 fixture riders and the member hash
    assert not seen & set(KEY.findall(said))


def test_a_frame_that_carries_a_key_is_refused(warehouse, monkeypatch):
    def leaky(con, day):
        return con.execute(
            "select payload->>'courier_phone' as rider_key from raw.meituan_orders where business_date = ?", [day]
        ).df()

    spec = next(s for s in gate.SUITES if s.name == "raw_meituan_orders")
    monkeypatch.setattr(gate, "SUITES", [type(spec)(spec.name, spec.stage, leaky, spec.row_label)])
    with pytest.raises(ValueError, match="raw_meituan_orders: column rider_key holds values shaped like"):
        run_gate("raw", warehouse, DAY, RUN)
