"""The one-pass loader (issue 13) against the loader before it, kept here as the reference: the same rows in
raw.<table> and raw.quarantine, the same reasons and counts, on landings with every fault that reaches the
loader (the sandbox's malformed records, duplicates across pages, schema drift and truncated station lines)
and on the hand-made records of every quarantine reason (tests/ingest/test_load.py).

The reference is the previous implementation's SQL, verbatim in what it computes: every record staged with
its text, classified by one json_extract per check, duplicates by a window over the whole records, inserted
sorted. It reuses only the loader's unchanged helpers (paths, literals, time parsing, manifest reading).
"""

from __future__ import annotations

import gzip
from datetime import date
from pathlib import Path

import duckdb
import pytest

from ingest import load as L
from ingest.clients import fetch
from ingest.pii import PiiHasher
from ingest.sources import OrderTime, SourceSpec
from tests.ingest import test_load as crafted
from tests.ingest.test_clients import DAY, FAST
from tests.sandbox_conns import sandbox_conn

PII = PiiHasher("equivalence-test-pii-key-of-at-least-32-bytes")
SOURCES = crafted.SOURCES  # the specs, from wherever the loader tests take them

# ------------------------------------------------------------------------------- the reference loader


def _ref_stage(con: duckdb.DuckDBPyConnection, spec: SourceSpec, pages: list) -> None:
    con.execute(
        "CREATE OR REPLACE TEMP TABLE _ref_records "
        "(page_no INTEGER, page_file VARCHAR, record_no INTEGER, rec JSON, raw_text VARCHAR)"
    )
    if spec.page_format == "json":
        con.execute("CREATE OR REPLACE TEMP TABLE _ref_pages (page_no INTEGER, page_file VARCHAR, path VARCHAR)")
        con.executemany("INSERT INTO _ref_pages VALUES (?, ?, ?)", [(p.page_no, p.file, str(p.path)) for p in pages])
        records = L._lit(L._path(spec.records_path) + "[*]")
        con.execute(
            f"""
            INSERT INTO _ref_records
            SELECT page_no, page_file, unnest(generate_series(1, len(recs))), unnest(recs), unnest(recs)::VARCHAR
            FROM (
                SELECT p.page_no, p.page_file, json_extract(o.json, {records}) AS recs
                FROM read_json_objects(?, format = 'unstructured', compression = 'gzip', filename = true,
                                       maximum_object_size = {L._MAX_PAGE_BYTES}) AS o
                JOIN _ref_pages AS p ON p.path = o.filename
            )
            """,
            [[str(p.path) for p in pages]],
        )
    elif spec.page_format == "csv":
        for page in pages:
            con.execute(
                """
                INSERT INTO _ref_records
                SELECT ?, ?, row_number() OVER (), to_json(t), to_json(t)::VARCHAR
                FROM read_csv(?, header = true, all_varchar = true, delim = ',', quote = '"', escape = '"',
                              compression = 'gzip') AS t
                """,
                [page.page_no, page.file, str(page.path)],
            )
    else:
        for page in pages:
            lines = gzip.decompress(page.path.read_bytes()).split(b"\n")
            numbered = [
                (no, line.rstrip(b"\r").decode("utf-8", errors="replace"))
                for no, line in enumerate(lines, start=1)
                if line.strip()
            ]
            con.execute(
                """
                INSERT INTO _ref_records
                SELECT ?, ?, line_no, CASE WHEN json_valid(line) THEN line::JSON END, line
                FROM (SELECT unnest(?::INTEGER[]) AS line_no, unnest(?::VARCHAR[]) AS line)
                """,
                [page.page_no, page.file, [no for no, _ in numbered], [text for _, text in numbered]],
            )


def _ref_time_values(t: OrderTime) -> str:
    if t.log is None:
        values = f"[json_extract(rec, {L._lit(L._path(t.field))})]"
    else:
        key = L._lit(L._path(t.status_key))
        matching = (
            f"list_filter(json_extract(rec, {L._lit(L._path(t.log) + '[*]')}), lambda e: "
            f"json_type(e, {key}) IN ('BIGINT', 'UBIGINT') "
            f"AND json_extract_string(e, {key}) = '{t.status_value}')"
        )
        values = f"list_transform({matching}, lambda e: json_extract(e, {L._lit(L._path(t.field))}))"
    return f"list_filter({values}, lambda v: {L._present('v')})"


def _ref_classify_sql(spec: SourceSpec, business_date: date) -> str:
    lit, path = L._lit, L._path
    cases: list[tuple[str, str]] = []
    if spec.page_format == "ndjson":
        cases.append(("rec IS NULL", "invalid_json"))
    missing_id = "missing_event_id" if spec.page_format == "ndjson" else "missing_id"
    for f in spec.id_fields:
        p = lit(path(f))
        cases.append(
            (
                f"coalesce(json_type(rec, {p}) = 'NULL' OR "
                f"(json_type(rec, {p}) = 'VARCHAR' AND trim(json_extract_string(rec, {p})) = ''), true)",
                missing_id,
            )
        )
    for f, types in spec.required:
        cases.append((f"coalesce(json_type(rec, {lit(path(f))}) NOT IN ({L._types(types)}), true)", f"wrong_type:{f}"))
    if spec.coordinates is not None:
        lng = f"TRY_CAST(json_extract_string(rec, {lit(path(spec.coordinates.lng))}) AS DOUBLE)"
        lat = f"TRY_CAST(json_extract_string(rec, {lit(path(spec.coordinates.lat))}) AS DOUBLE)"
        (lng_lo, lng_hi), (lat_lo, lat_hi) = L.LNG_RANGE, L.LAT_RANGE
        inside = f"{lng} BETWEEN {lng_lo} AND {lng_hi} AND {lat} BETWEEN {lat_lo} AND {lat_hi}"
        cases.append((f"NOT coalesce({inside}, false)", "bad_coordinates"))
    timed = spec.order_time or spec.event_time
    if spec.order_time is not None:
        cases += [
            ("len(_times) = 0", "missing_order_time"),
            ("list_count(_parsed) < len(_times)", "unparseable_order_time"),
            (f"list_min(_parsed)::DATE <> DATE '{business_date.isoformat()}'", "order_time_not_on_business_date"),
        ]
    elif spec.event_time is not None:
        cases.append(("len(_times) = 0 OR list_count(_parsed) < len(_times)", "unparseable_ts"))
    records = "_ref_records"
    if timed is not None:
        parsed = f"list_transform(_times, lambda v: {L._parse_time('v', timed.encoding)})"
        records = f"(SELECT *, {parsed} AS _parsed FROM (SELECT *, {_ref_time_values(timed)} AS _times FROM {records}))"
    reason = "CASE " + " ".join(f"WHEN {cond} THEN {lit(why)}" for cond, why in cases) + " END"
    record_id = "concat_ws('|', " + ", ".join(f"json_extract_string(rec, {lit(path(f))})" for f in spec.id_fields) + ")"
    return (
        f"SELECT page_no, page_file, record_no, rec, raw_text, {record_id} AS record_id, {reason} AS reason "
        f"FROM {records}"
    )


def reference_load(folder: Path) -> tuple[list, list, int]:
    """(raw rows, quarantine rows, duplicates removed) as the loader before issue 13 computed them."""
    manifest, pages = L._read_manifest(folder)
    spec = SOURCES[manifest["source"]]
    business_date = date.fromisoformat(manifest["business_date"])
    con = duckdb.connect()
    _ref_stage(con, spec, pages)
    con.execute(
        f"""
        CREATE TEMP TABLE _ref_checked AS
        SELECT *,
               reason IS NULL AND row_number() OVER (
                   PARTITION BY reason IS NULL, record_id ORDER BY page_no DESC, record_no DESC) > 1 AS duplicate
        FROM ({_ref_classify_sql(spec, business_date)})
        """
    )
    loaded = con.execute(
        "SELECT record_id, rec::VARCHAR, page_file, record_no FROM _ref_checked "
        "WHERE reason IS NULL AND NOT duplicate ORDER BY ALL"
    ).fetchall()
    quarantined = con.execute(
        "SELECT page_file, record_no, reason, raw_text FROM _ref_checked WHERE reason IS NOT NULL ORDER BY ALL"
    ).fetchall()
    duplicates = con.execute("SELECT count(*) FROM _ref_checked WHERE duplicate").fetchone()[0]
    return loaded, quarantined, duplicates


# ------------------------------------------------------------------------------------------ the check


def assert_loads_as_the_reference(con: duckdb.DuckDBPyConnection, folder: Path) -> L.LoadResult:
    spec = SOURCES[L._read_manifest(folder)[0]["source"]]
    result = L.load_partition(con, folder, accept_replacements=True)
    ref_loaded, ref_quarantined, ref_duplicates = reference_load(folder)
    loaded = con.execute(
        f"SELECT record_id, payload::VARCHAR, page_file, record_no FROM raw.{spec.table} "
        "WHERE business_date = ? ORDER BY ALL",
        [result.business_date],
    ).fetchall()
    quarantined = con.execute(
        "SELECT page_file, record_no, reason, raw_text FROM raw.quarantine WHERE source = ? AND business_date = ? "
        "ORDER BY ALL",
        [spec.name, result.business_date],
    ).fetchall()
    assert loaded == ref_loaded
    assert quarantined == ref_quarantined
    assert (result.loaded, result.duplicates_removed, result.quarantined) == (
        len(ref_loaded),
        ref_duplicates,
        len(ref_quarantined),
    )
    assert result.fetched == result.loaded + result.duplicates_removed + result.quarantined
    by_reason: dict[str, int] = {}
    for _, _, why, _ in ref_quarantined:
        by_reason[why] = by_reason.get(why, 0) + 1
    assert result.by_reason == by_reason
    return result


@pytest.fixture
def con():
    with duckdb.connect() as connection:
        yield connection


def test_sandbox_days_with_faults_load_as_the_reference(sb, tmp_path, con):
    # Every fault that changes what lands: malformed records (all four kinds), a further copy of the page
    # before's last record on most pages, unknown fields, and truncated station lines.
    sb.set_faults({"malformed": 0.2, "duplicates": 0.8, "schema_drift": 0.3, "truncated_lines": 0.1})
    seen: dict[str, set[str]] = {}
    for source in SOURCES:
        folder = fetch(source, DAY, sandbox_conn(sb.base_url, source), PII, "faulty", tmp_path, policy=FAST)
        result = assert_loads_as_the_reference(con, folder)
        assert result.fetched > 0, source
        seen[source] = set(result.by_reason) | ({"duplicate"} if result.duplicates_removed else set())
    for platform in ("meituan", "eleme", "sf", "shansong"):
        assert "duplicate" in seen[platform] and len(seen[platform]) >= 3, (platform, seen[platform])
    assert "invalid_json" in seen["stations"]


def test_crafted_records_of_every_reason_load_as_the_reference(tmp_path, con):
    meituan = [rec for rec, _ in crafted._crafted_meituan()]
    pages = {
        "meituan": [meituan, meituan[:3] + [crafted.meituan(1) | {"status": 99}]],
        "eleme": [[crafted.eleme(i) for i in range(5)] + [crafted.eleme(7) | {"lng": 120.1}], [crafted.eleme(2)]],
        "sf": [
            [crafted.sf(1), crafted.sf(2) | {"create_time": ""}, crafted.sf(3) | {"lbs_type": None}],
            [crafted.sf(1)],
        ],
        "shansong": [[crafted.shansong(i) for i in range(4)] + [crafted.shansong(9) | {"courier": None}]],
        "stations": [
            [
                crafted.event(1),
                '{"event_id": "x", "ts": "2026-11-28T09',
                crafted.event(3, event_id=""),
                crafted.event(4, ts="later"),
                crafted.event(1),
            ]
        ],
        "union_members": [[crafted.member("M1"), crafted.member("M1"), crafted.member("")]],
    }
    for source, landed in pages.items():
        assert_loads_as_the_reference(con, crafted.write_landing(tmp_path, source, landed))
