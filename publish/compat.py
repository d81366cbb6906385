"""What a published ``marts.duckdb`` promises the clients that open it (tested with the real clients in
tests/publish/test_real_clients.py; the analysts' side is docs/analysts.md, "Connecting BI tools").

- **Storage version.** DuckDB 2.0 writes storage version 69 by default, which no DuckDB 1.x opens ("we
  can only read versions between 64 and 68"), and ``apache-superset[duckdb]`` pins ``duckdb<2``. The
  snapshot is written with ``storage_compatibility_version`` :data:`STORAGE_VERSION` (the connection
  setting equivalent to ``ATTACH ... (STORAGE_VERSION 'v1.4.0')``), which DuckDB 1.4 and every later
  release read (tests/publish/test_real_clients.py opens it with 1.5.6).
- **No 128-bit integers.** DuckDB's ``sum()`` of integers is HUGEINT, which duckdb-engine reflects as
  INTEGER (a 32-bit type to Superset) and Parquet has no type for (DuckDB writes it as a double).
  Decision: the cast to BIGINT is done here, once, at publication, not in the models, so every mart
  (also those added later) is covered and the warehouse keeps DuckDB's exact sums. The cast is the
  check: a value beyond BIGINT (9.2 * 10^18; the district's sums are of the order of 10^7) fails the
  publication (DuckDB refuses the cast, naming the column) and ``current`` stays where it was.
"""

from __future__ import annotations

from pathlib import Path

import duckdb

STORAGE_VERSION = "v1.4.0"
WIDE_INTEGERS = ("HUGEINT", "UHUGEINT")


def connect_snapshot(path: str | Path) -> duckdb.DuckDBPyConnection:
    """A new ``marts.duckdb`` that DuckDB 1.4 and later can read."""
    return duckdb.connect(str(path), config={"storage_compatibility_version": STORAGE_VERSION})


def copy_mart(con: duckdb.DuckDBPyConnection, source: str, target: str) -> None:
    """``create table <target> as select * from <source>`` (quoted, qualified names), with every
    HUGEINT/UHUGEINT column cast to BIGINT; raises when a value does not fit."""
    wide = [name for name, col_type, *_ in con.execute(f"describe {source}").fetchall() if col_type in WIDE_INTEGERS]
    columns = "*"
    if wide:
        quoted = ['"' + c.replace('"', '""') + '"' for c in wide]
        columns += " replace (" + ", ".join(f"cast({q} as bigint) as {q}" for q in quoted) + ")"
    try:
        con.execute(f"create table {target} as select {columns} from {source}")
    except duckdb.ConversionException as error:
        raise ValueError(f"{source} cannot be published: a sum does not fit BIGINT ({error})") from error
