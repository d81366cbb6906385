"""Load one landing folder into the warehouse's ``raw`` schema, quarantining what the contract refuses.

Every landed record ends up in ``raw.<table>``, in ``raw.quarantine`` with a reason, or counted as a further
copy of a record already loaded (sources.md: duplicates are removed once; quarantine is for records that
break the contract), and the counts are checked against the manifest before commit (docs/internals.md, "Raw
contract"). The per-record work is one SQL pass inside DuckDB over the gzipped pages (``read_json_objects``,
``read_csv``, json functions), compiled from the declarative specs of :mod:`ingest.sources`, because a
Python loop over ~180k records a source and day would dominate the run: it reads each record, parses it
once for every check, and inserts it into ``raw.<table>`` (a quarantined one flagged, then moved), so the
day is never staged, sorted or held in memory twice. Python only reads manifests,
verifies checksums and splits station logs into numbered lines (the line number is the lineage of a
truncated line that no JSON reader keeps).
"""

from __future__ import annotations

import gzip
import json
import os
from collections.abc import Iterable
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path

import duckdb

from ingest.corrections import PartitionCounts, judge_partition
from ingest.files import sha256_file
from ingest.landing import past_correction_window
from ingest.registry import RAW_TABLES, spec_for
from ingest.settings import TIMEZONE
from ingest.sources import LAT_RANGE, LNG_RANGE, OrderTime, SourceSpec

# read_json_objects' maximum_object_size is the largest page body of the load, at least DuckDB's default
# (16 MiB): DuckDB allocates twice that size up front, so the fixed 1 GiB of before asked 2 GiB of any memory
# limit (and failed under one of 3 GB). The size comes from each page's gzip trailer (``_body_bytes``).
_MIN_OBJECT_BYTES = 1 << 24
_ISO8601 = r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})"


class LandingError(Exception):
    """The landing folder must not be loaded: incomplete, unknown source, or a page failed its checksum."""


class LoadCountError(Exception):
    """fetched != loaded + duplicates_removed + quarantined, or a page holds another number of records than
    its manifest says."""


@dataclass(frozen=True)
class LoadResult:
    source: str
    business_date: date
    fetch_id: str
    fetched: int
    loaded: int
    quarantined: int
    # Further copies of a loaded record_id (same fetch): neither loaded nor quarantined, only counted.
    duplicates_removed: int = 0
    by_reason: dict[str, int] = field(default_factory=dict)
    # Against the partition it replaces (ingest/corrections.py): new, replaced, repaired or refused; a
    # refused load changed nothing and ``change`` says by how much it moved.
    verdict: str = "new"
    change: str = ""


def raw_schema_ddl() -> str:
    """The DDL of every raw table (idempotent), for the loader and for code that relies on the shapes.

    A record's payload is stored with ZSTD, not the FSST that DuckDB picks for text. Measured on a scale-1
    meituan day (180k records, 2 cores), the insert of ``_insert_records`` into a warehouse file took 0.74 s
    with FSST and 0.59-0.62 s with ZSTD, and the day's raw table took 16-18 MB instead of 30 MB; reading
    the payloads back costs ~15 ms more. A warehouse created before keeps its raw tables' FSST: DuckDB
    cannot change a column's compression, so moving one means recreating its raw tables."""
    record_tables = "\n".join(
        f"""CREATE TABLE IF NOT EXISTS raw.{table} (
    record_id VARCHAR NOT NULL,
    business_date DATE NOT NULL,
    payload JSON NOT NULL USING COMPRESSION zstd,
    fetch_id VARCHAR NOT NULL,
    page_file VARCHAR NOT NULL,
    record_no INTEGER NOT NULL,
    loaded_at TIMESTAMPTZ NOT NULL
);"""
        for table in RAW_TABLES
    )
    return f"""CREATE SCHEMA IF NOT EXISTS raw;
{record_tables}
CREATE TABLE IF NOT EXISTS raw.quarantine (
    source VARCHAR NOT NULL,
    business_date DATE NOT NULL,
    fetch_id VARCHAR NOT NULL,
    page_file VARCHAR NOT NULL,
    record_no INTEGER NOT NULL,
    reason VARCHAR NOT NULL,
    raw_text VARCHAR NOT NULL,
    quarantined_at TIMESTAMPTZ NOT NULL
);
CREATE SCHEMA IF NOT EXISTS audit;
CREATE TABLE IF NOT EXISTS audit.partition_audit (
    run_id VARCHAR NOT NULL,
    source VARCHAR NOT NULL,
    business_date DATE NOT NULL,
    verdict VARCHAR NOT NULL,
    old_fetched BIGINT,
    old_loaded BIGINT,
    old_quarantined BIGINT,
    new_fetched BIGINT NOT NULL,
    new_loaded BIGINT NOT NULL,
    new_quarantined BIGINT NOT NULL,
    change VARCHAR NOT NULL,
    checked_at TIMESTAMPTZ NOT NULL
);
CREATE TABLE IF NOT EXISTS raw.load_audit (
    source VARCHAR NOT NULL,
    business_date DATE NOT NULL,
    fetch_id VARCHAR NOT NULL,
    fetched BIGINT NOT NULL,
    loaded BIGINT NOT NULL,
    quarantined BIGINT NOT NULL,
    loaded_at TIMESTAMPTZ NOT NULL,
    duplicates_removed BIGINT NOT NULL DEFAULT 0,
    fetched_at TIMESTAMPTZ,
    past_correction_window BOOLEAN
);
-- A warehouse created before duplicates were counted (they were quarantined): its old rows read 0.
ALTER TABLE raw.load_audit ADD COLUMN IF NOT EXISTS duplicates_removed BIGINT DEFAULT 0;
-- A warehouse created before fetch times were recorded: its old rows read NULL (unknown), which the marts'
-- status treats as still inside the correction window until the date is loaded again.
ALTER TABLE raw.load_audit ADD COLUMN IF NOT EXISTS fetched_at TIMESTAMPTZ;
ALTER TABLE raw.load_audit ADD COLUMN IF NOT EXISTS past_correction_window BOOLEAN;
"""


def load_partition(
    con_or_path: duckdb.DuckDBPyConnection | str | Path,
    landing_folder: Path,
    *,
    run_id: str | None = None,
    accept_replacements: bool = False,
) -> LoadResult:
    """Replace the (source, business date) partition of ``raw`` with one complete landing folder.

    One transaction: judge the replacement against the partition's current load (ingest/corrections.py),
    delete the partition from the source's raw table and from ``raw.quarantine``, insert the loaded and
    the quarantined records, (re)write the fetch's ``raw.load_audit`` row, check the counts, record the
    verdict in ``audit.partition_audit`` (``run_id``, default the fetch id), commit. A replacement outside
    the correction band is refused unless ``accept_replacements``: nothing of the partition changes and
    the result says so. Any failure rolls back, so the previous load of the partition stays as it was.
    """
    options = {"run_id": run_id, "accept_replacements": accept_replacements}
    if isinstance(con_or_path, duckdb.DuckDBPyConnection):
        return _load(con_or_path, Path(landing_folder), **options)
    path = Path(con_or_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with duckdb.connect(str(path)) as con:
        return _load(con, Path(landing_folder), **options)


def load_many(
    warehouse_path: str | Path, folders: Iterable[Path], *, run_id: str | None = None, accept_replacements: bool = False
) -> list[LoadResult]:
    """Load several landing folders over one connection, each in its own transaction, in the given order.

    The first failure raises; the folders loaded before it stay committed (each is a whole partition).
    """
    path = Path(warehouse_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with duckdb.connect(str(path)) as con:
        results = [
            _load(con, Path(folder), run_id=run_id, accept_replacements=accept_replacements) for folder in folders
        ]
        con.execute("checkpoint")  # the file is whole by itself: it may be copied or renamed next
        return results


# ------------------------------------------------------------------------------------------ the landing


@dataclass(frozen=True)
class _Page:
    page_no: int
    file: str
    path: Path
    records: int
    body_bytes: int


def _body_bytes(path: Path) -> int:
    """A landed page's uncompressed size: its gzip trailer's ISIZE (the size mod 2**32). The landing writes
    each page as one gzip member, and pages are far under 4 GiB."""
    with open(path, "rb") as f:
        f.seek(-4, os.SEEK_END)
        return int.from_bytes(f.read(4), "little")


def _read_manifest(folder: Path) -> tuple[dict, list[_Page]]:
    manifest_path = folder / "manifest.json"
    if not manifest_path.is_file():
        raise LandingError(f"{folder}: no manifest.json")
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    if manifest.get("complete") is not True:
        raise LandingError(f"{folder}: the fetch is not complete (manifest complete={manifest.get('complete')})")
    pages = []
    for page_no, entry in enumerate(manifest.get("pages", []), start=1):
        path = folder / entry["file"]
        if not path.is_file():
            raise LandingError(f"{folder}: page {entry['file']} is listed in the manifest but missing")
        digest = sha256_file(path)
        if digest != entry.get("sha256"):
            raise LandingError(f"{folder}: page {entry['file']} does not match its sha256 ({digest})")
        pages.append(_Page(page_no, entry["file"], path.resolve(), int(entry["records"]), _body_bytes(path)))
    return manifest, pages


def _insert_records(
    con: duckdb.DuckDBPyConnection, spec: SourceSpec, pages: list[_Page], business_date: date, fetch_id: str
) -> None:
    """Read, classify and insert every landed record into ``raw.<table>`` in one pass (one row a record).

    A record to load is inserted as it will stay. A quarantined record is inserted *flagged*, for the rest
    of the transaction only: ``record_no`` negated (real ones start at 1), ``record_id`` its reason and
    ``payload`` its landed text as a JSON string (a station line need not be JSON); ``_move_quarantined``
    then moves it to ``raw.quarantine``. So each record's text is read, parsed and written once, and the
    text is kept only for the records that need it; no copy of the day is staged."""
    # The pages in manifest order, which the duplicates are judged by (``_mark_duplicates``).
    con.execute("CREATE OR REPLACE TEMP TABLE _xihu_pages (page_no INTEGER, page_file VARCHAR)")
    con.executemany("INSERT INTO _xihu_pages VALUES (?, ?)", [(p.page_no, p.file) for p in pages])
    if not pages:
        return
    insert = f"INSERT INTO raw.{spec.table} " + _classify_sql(spec, business_date, fetch_id, "{landed}")
    if spec.page_format == "json":
        # record_no is the 1-based position in the page's records array.
        records = _lit(_path(spec.records_path) + "[*]")
        largest = max(_MIN_OBJECT_BYTES, *(p.body_bytes + 1 for p in pages))
        landed = f"""
            SELECT page_file, unnest(generate_series(1, len(recs)))::INTEGER AS record_no,
                   unnest(recs) AS rec, NULL::VARCHAR AS line
            FROM (
                -- The page's file by a lookup, not a join: a join with the pages would build its hash table
                -- on the scan side (all of a day's pages in memory: 500 MB and most of the time).
                SELECT map_extract_value(MAP(?::VARCHAR[], ?::VARCHAR[]), o.filename) AS page_file,
                       json_extract(o.json, {records}) AS recs
                FROM read_json_objects(?, format = 'unstructured', compression = 'gzip', filename = true,
                                       maximum_object_size = {largest}) AS o
            )
        """
        paths = [str(p.path) for p in pages]
        try:
            con.execute(insert.replace("{landed}", landed), [paths, [p.file for p in pages], paths])
        except duckdb.InvalidInputException as exc:
            # The clients land parsed-and-re-encoded bodies, so this is a corrupt landing, not a bad record.
            raise LandingError(f"{pages[0].path.parent}: a page is not one JSON body ({exc})") from None
    elif spec.page_format == "csv":
        # One read per page so that row_number() OVER () numbers the rows of one file in file order
        # (a single-file scan with insertion order preserved); record_no 1 is the first row after the header.
        con.execute("SET preserve_insertion_order = true")  # _load restores the caller's setting
        landed = """
            SELECT ?::VARCHAR AS page_file, (row_number() OVER ())::INTEGER AS record_no,
                   to_json(t) AS rec, NULL::VARCHAR AS line
            FROM read_csv(?, header = true, all_varchar = true, delim = ',', quote = '"', escape = '"',
                          compression = 'gzip') AS t
        """
        for page in pages:
            con.execute(insert.replace("{landed}", landed), [page.file, str(page.path)])
    else:
        # NDJSON: record_no is the physical line number; blank lines are not records.
        # Split as bytes, like the stations client that counted the records (bytes.strip: ASCII whitespace).
        landed = """
            SELECT ?::VARCHAR AS page_file, line_no AS record_no,
                   CASE WHEN json_valid(line) THEN line::JSON END AS rec, line
            FROM (SELECT unnest(?::INTEGER[]) AS line_no, unnest(?::VARCHAR[]) AS line)
        """
        for page in pages:
            lines = gzip.decompress(page.path.read_bytes()).split(b"\n")
            numbered = [
                (no, line.rstrip(b"\r").decode("utf-8", errors="replace"))
                for no, line in enumerate(lines, start=1)
                if line.strip()
            ]
            con.execute(
                insert.replace("{landed}", landed),
                [page.file, [no for no, _ in numbered], [text for _, text in numbered]],
            )


# ------------------------------------------------------------------------------ spec -> SQL compilation


def _lit(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _path(dotted: str | None) -> str:
    """'receiver.lng' -> '$."receiver"."lng"' (quoted, so Chinese CSV headers work as keys too)."""
    if not dotted:
        return "$"
    return "$" + "".join(f'."{part}"' for part in dotted.split("."))


def _types(types: tuple[str, ...]) -> str:
    return ", ".join(_lit(t) for t in types)


def _present(v: str) -> str:
    """A time value that is there: not absent, not JSON null, not an empty string."""
    return f"({v} IS NOT NULL AND json_type({v}) <> 'NULL' AND json_extract_string({v}, '$') <> '')"


def _parse_time(v: str, encoding: str) -> str:
    """The Asia/Shanghai wall-clock TIMESTAMP of JSON value ``v``, or NULL when not in ``encoding``."""
    text = f"json_extract_string({v}, '$')"
    if encoding in ("unix_seconds", "unix_millis"):
        scale = 1 if encoding == "unix_seconds" else 1000
        return (
            f"CASE WHEN json_type({v}) IN ('BIGINT', 'UBIGINT', 'DOUBLE') "
            f"THEN timezone('{TIMEZONE}', try(to_timestamp({text}::DOUBLE / {scale}))) END"
        )
    if encoding == "local_text":
        return f"CASE WHEN json_type({v}) = 'VARCHAR' THEN try_strptime({text}, '%Y-%m-%d %H:%M:%S') END"
    return (
        f"CASE WHEN json_type({v}) = 'VARCHAR' AND regexp_full_match({text}, {_lit(_ISO8601)}) "
        f"THEN timezone('{TIMEZONE}', TRY_CAST({text} AS TIMESTAMPTZ)) END"
    )


class _Fields:
    """The values a classification reads, extracted from each record by one ``json_extract`` of all their
    paths (one parse of the record, not one per check): ``value('a.b')`` is the SQL of the JSON value there
    (NULL when absent), and ``sql()`` the list expression that computes them, as column ``_f``."""

    def __init__(self) -> None:
        self.paths: list[str] = []

    def value(self, dotted: str) -> str:
        if dotted not in self.paths:
            self.paths.append(dotted)
        return f"_f[{self.paths.index(dotted) + 1}]"

    def sql(self) -> str:
        return "json_extract(rec, [" + ", ".join(_lit(_path(p)) for p in self.paths) + "])"


def _time_values(t: OrderTime, fields: _Fields) -> str:
    """The list of present time values: one for a plain field, one per matching entry of a status log."""
    if t.log is None:
        values = f"[{fields.value(t.field)}]"
    else:
        key = _lit(_path(t.status_key))
        # A log that is absent has no entries (so the record has no order time), as has one null or not a list.
        matching = (
            f"list_filter(coalesce(json_extract({fields.value(t.log)}, '$[*]'), []), lambda e: "
            f"json_type(e, {key}) IN ('BIGINT', 'UBIGINT') "
            f"AND json_extract_string(e, {key}) = '{t.status_value}')"
        )
        values = f"list_transform({matching}, lambda e: json_extract(e, {_lit(_path(t.field))}))"
    return f"list_filter({values}, lambda v: {_present('v')})"


def _classify_sql(spec: SourceSpec, business_date: date, fetch_id: str, landed: str) -> str:
    """One SELECT over the ``landed`` records (page_file, record_no, rec JSON, line: the landed text
    when it is not ``rec``'s) giving the rows of ``raw.<table>``, quarantined ones flagged (``_insert_records``)
    by the first quarantine reason that applies."""
    fields = _Fields()
    cases: list[tuple[str, str]] = []
    if spec.page_format == "ndjson":
        cases.append(("rec IS NULL", "invalid_json"))
    missing_id = "missing_event_id" if spec.page_format == "ndjson" else "missing_id"
    for f in spec.id_fields:
        v = fields.value(f)
        cases.append(
            (
                f"coalesce(json_type({v}) = 'NULL' OR "
                f"(json_type({v}) = 'VARCHAR' AND trim(json_extract_string({v}, '$')) = ''), true)",
                missing_id,
            )
        )
    for f, types in spec.required:
        cases.append((f"coalesce(json_type({fields.value(f)}) NOT IN ({_types(types)}), true)", f"wrong_type:{f}"))
    if spec.coordinates is not None:
        lng = f"TRY_CAST(json_extract_string({fields.value(spec.coordinates.lng)}, '$') AS DOUBLE)"
        lat = f"TRY_CAST(json_extract_string({fields.value(spec.coordinates.lat)}, '$') AS DOUBLE)"
        inside = f"{lng} BETWEEN {LNG_RANGE[0]} AND {LNG_RANGE[1]} AND {lat} BETWEEN {LAT_RANGE[0]} AND {LAT_RANGE[1]}"
        cases.append((f"NOT coalesce({inside}, false)", "bad_coordinates"))
    timed = spec.order_time or spec.event_time
    if spec.order_time is not None:
        cases += [
            ("len(_times) = 0", "missing_order_time"),
            ("list_count(_parsed) < len(_times)", "unparseable_order_time"),
            (
                f"list_min(_parsed)::DATE <> DATE '{business_date.isoformat()}'",
                "order_time_not_on_business_date",
            ),
        ]
    elif spec.event_time is not None:
        cases.append(("len(_times) = 0 OR list_count(_parsed) < len(_times)", "unparseable_ts"))
    record_id = (
        "concat_ws('|', " + ", ".join(f"json_extract_string({fields.value(f)}, '$')" for f in spec.id_fields) + ")"
    )
    times = _time_values(timed, fields) if timed is not None else None
    # Every path is registered by now: the one extraction of them all.
    records = f"(SELECT *, {fields.sql()} AS _f FROM ({landed}))"
    if timed is not None:
        parsed = f"list_transform(_times, lambda v: {_parse_time('v', timed.encoding)})"
        records = f"(SELECT *, {parsed} AS _parsed FROM (SELECT *, {times} AS _times FROM {records}))"
    reason = "CASE " + " ".join(f"WHEN {cond} THEN {_lit(why)}" for cond, why in cases) + " END"
    return f"""
        SELECT coalesce(reason, record_id), DATE '{business_date.isoformat()}',
               CASE WHEN reason IS NULL THEN rec ELSE to_json(coalesce(line, rec::VARCHAR)) END,
               {_lit(fetch_id)}, page_file, CASE WHEN reason IS NULL THEN record_no ELSE -record_no END, now()
        FROM (SELECT page_file, record_no, rec, line, {record_id} AS record_id, {reason} AS reason
              FROM {records})
    """


# ------------------------------------------------------------------------------------------------ load


def _load(con: duckdb.DuckDBPyConnection, folder: Path, *, run_id: str | None, accept_replacements: bool) -> LoadResult:
    with _streaming(con):
        return _load_partition(con, folder, run_id=run_id, accept_replacements=accept_replacements)


def _load_partition(
    con: duckdb.DuckDBPyConnection, folder: Path, *, run_id: str | None, accept_replacements: bool
) -> LoadResult:
    manifest, pages = _read_manifest(folder)
    try:
        spec = spec_for(manifest.get("source", ""))
    except ValueError as exc:
        raise LandingError(f"{folder}: {exc}") from None
    business_date = date.fromisoformat(manifest["business_date"])
    fetch_id = str(manifest["fetch_id"])
    fetched = int(manifest["records"])
    # When the fetch started (a resumed fetch's pages are of its own kind: ingest/landing.py)
    started_at = datetime.fromisoformat(manifest["started_at"])
    table = f"raw.{spec.table}"
    partition = [spec.name, business_date]

    con.execute("BEGIN TRANSACTION")
    try:
        con.execute(raw_schema_ddl())
        # The new records go where they will stay, so the partition is emptied first; a refused
        # replacement rolls all of this back (below).
        con.execute(f"DELETE FROM {table} WHERE business_date = ?", [business_date])
        con.execute("DELETE FROM raw.quarantine WHERE source = ? AND business_date = ?", partition)
        _insert_records(con, spec, pages, business_date, fetch_id)
        _check_pages(con, table, spec.name, business_date, fetched, pages)
        _mark_duplicates(con, table, business_date)
        verdict, change, old, (new_loaded, duplicates, new_quarantined) = _judge(
            con, table, spec.name, business_date, fetched
        )
        if verdict == "refused" and accept_replacements:
            verdict, change = "accepted", f"{change} (accepted by the operator)"
        audit = [
            run_id or fetch_id,
            spec.name,
            business_date,
            verdict,
            *(old or (None, None, None)),
            fetched,
            new_loaded,
            new_quarantined,
            change,
        ]
        if verdict == "refused":
            # Nothing of the partition changes: undo the replacement, record the verdict alone.
            con.execute("ROLLBACK")
            con.execute("BEGIN TRANSACTION")
            con.execute(raw_schema_ddl())
            con.execute("INSERT INTO audit.partition_audit VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, now())", audit)
            con.execute("COMMIT")
            return LoadResult(
                spec.name,
                business_date,
                fetch_id,
                fetched,
                new_loaded,
                new_quarantined,
                duplicates,
                verdict=verdict,
                change=change,
            )
        con.execute("INSERT INTO audit.partition_audit VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, now())", audit)
        _move_quarantined(con, table, spec.name, business_date, fetch_id)
        if duplicates:
            con.execute(
                f"DELETE FROM {table} AS t USING _xihu_duplicates AS d "
                "WHERE t.business_date = ? AND t.page_file = d.page_file AND t.record_no = d.record_no",
                [business_date],
            )
        _check_counts(con, table, spec.name, business_date, fetched, duplicates)
        loaded = con.execute(f"SELECT count(*) FROM {table} WHERE business_date = ?", [business_date]).fetchone()[0]
        by_reason = dict(
            con.execute(
                "SELECT reason, count(*) FROM raw.quarantine WHERE source = ? AND business_date = ? "
                "GROUP BY reason ORDER BY reason",
                partition,
            ).fetchall()
        )
        quarantined = sum(by_reason.values())
        con.execute(
            "DELETE FROM raw.load_audit WHERE source = ? AND business_date = ? AND fetch_id = ?",
            [*partition, fetch_id],
        )
        con.execute(
            "INSERT INTO raw.load_audit (source, business_date, fetch_id, fetched, loaded, quarantined, "
            "duplicates_removed, loaded_at, fetched_at, past_correction_window) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, now(), ?, ?)",
            [
                *partition,
                fetch_id,
                fetched,
                loaded,
                quarantined,
                duplicates,
                started_at,
                past_correction_window(spec.name, business_date, started_at),
            ],
        )
        con.execute("DROP TABLE _xihu_duplicates")
        con.execute("DROP TABLE _xihu_pages")
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    return LoadResult(
        spec.name, business_date, fetch_id, fetched, loaded, quarantined, duplicates, by_reason, verdict, change
    )


@contextmanager
def _streaming(con: duckdb.DuckDBPyConnection):
    """While a partition loads (outside its transaction, restored after it): no insertion order to keep
    (nothing relies on it, see ``_move_quarantined``), so DuckDB streams the pages into the table instead of
    buffering them to keep their order."""
    before = con.execute("SELECT current_setting('preserve_insertion_order')").fetchone()[0]
    con.execute("SET preserve_insertion_order = false")
    try:
        yield
    finally:
        con.execute(f"SET preserve_insertion_order = {'true' if before else 'false'}")


def _move_quarantined(
    con: duckdb.DuckDBPyConnection, table: str, source: str, business_date: date, fetch_id: str
) -> None:
    """Move the flagged records of ``_insert_records`` from the raw table to ``raw.quarantine``.

    No ORDER BY here nor on the raw insert: nothing reads raw tables in insertion order (dbt staging orders
    by loaded_at, fetch_id and record_no; the gate keys rows by their ids), and sorting a day costs time and
    memory."""
    con.execute(
        f"""
        INSERT INTO raw.quarantine
        SELECT ?, ?, ?, page_file, -record_no, record_id, json_extract_string(payload, '$'), now()
        FROM {table} WHERE business_date = ? AND record_no < 0
        """,
        [source, business_date, fetch_id, business_date],
    )
    con.execute(f"DELETE FROM {table} WHERE business_date = ? AND record_no < 0", [business_date])


def _mark_duplicates(con: duckdb.DuckDBPyConnection, table: str, business_date: date) -> None:
    """Temp table _xihu_duplicates(page_file, record_no): the inserted records that are further copies.

    Of several valid copies of one record_id the last landed (latest page, then latest position) is loaded:
    sf pages are not snapshot-consistent, so a later page holds the newer state. The other valid copies are
    duplicates: counted, neither loaded nor quarantined (they break no contract). Computed on the narrow
    columns only, so the records' payloads are never sorted."""
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE _xihu_duplicates AS
        SELECT page_file, record_no FROM (
            SELECT t.page_file, t.record_no,
                   row_number() OVER (PARTITION BY t.record_id ORDER BY p.page_no DESC, t.record_no DESC) AS copy_no
            FROM {table} AS t JOIN _xihu_pages AS p USING (page_file)
            WHERE t.business_date = ? AND t.record_no > 0
        )
        WHERE copy_no > 1
        """,
        [business_date],
    )


def _judge(con: duckdb.DuckDBPyConnection, table: str, source: str, business_date: date, fetched: int):
    """The verdict on replacing the partition's current load with the records just inserted, with the old
    (fetched, loaded, quarantined) and the new (loaded, duplicates removed, quarantined) counts. The
    quarantine rate is of quarantined records only: removed duplicates are not a defect of the day."""
    old = con.execute(
        "SELECT fetched, loaded, quarantined FROM raw.load_audit WHERE source = ? AND business_date = ? "
        "ORDER BY loaded_at DESC LIMIT 1",
        [source, business_date],
    ).fetchone()
    valid, new_quarantined = con.execute(
        f"SELECT count(*) FILTER (record_no > 0), count(*) FILTER (record_no < 0) FROM {table} WHERE business_date = ?",
        [business_date],
    ).fetchone()
    duplicates = con.execute("SELECT count(*) FROM _xihu_duplicates").fetchone()[0]
    new_loaded = valid - duplicates
    verdict, change = judge_partition(
        PartitionCounts(*old) if old else None, PartitionCounts(fetched, new_loaded, new_quarantined)
    )
    return verdict, change, old, (new_loaded, duplicates, new_quarantined)


def _check_pages(
    con: duckdb.DuckDBPyConnection, table: str, source: str, business_date: date, fetched: int, pages: list[_Page]
) -> None:
    """Raise LoadCountError unless the manifest, its pages and the records they hold agree."""
    listed = sum(p.records for p in pages)
    if listed != fetched:
        raise LoadCountError(f"{source} {business_date}: manifest says {fetched} records, its pages {listed}")
    held = dict(
        con.execute(
            f"SELECT page_file, count(*) FROM {table} WHERE business_date = ? GROUP BY page_file", [business_date]
        ).fetchall()
    )
    for page in pages:
        if held.get(page.file, 0) != page.records:
            raise LoadCountError(
                f"{source} {business_date}: {page.file} holds {held.get(page.file, 0)} records, "
                f"the manifest says {page.records}"
            )


def _check_counts(
    con: duckdb.DuckDBPyConnection, table: str, source: str, business_date: date, fetched: int, duplicates: int
) -> None:
    """Raise LoadCountError unless every fetched record is in the written partition, in its quarantine or
    among the removed duplicates, once: fetched = loaded + duplicates_removed + quarantined."""
    loaded = con.execute(f"SELECT count(*) FROM {table} WHERE business_date = ?", [business_date]).fetchone()[0]
    quarantined = con.execute(
        "SELECT count(*) FROM raw.quarantine WHERE source = ? AND business_date = ?", [source, business_date]
    ).fetchone()[0]
    if loaded + duplicates + quarantined != fetched:
        raise LoadCountError(
            f"{source} {business_date}: fetched {fetched} != loaded {loaded} + duplicates removed {duplicates} "
            f"+ quarantined {quarantined}"
        )
