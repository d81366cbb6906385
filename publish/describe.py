"""The descriptions of a published version: every mart and column says what it is, in every format.

The YAML beside each dbt model is the one place a mart and its columns are described. dbt writes it into
the warehouse as DuckDB table and column comments (``persist_docs`` in dbt_project.yml: tables rebuilt by
every run are commented when created, incremental ones re-commented after each run, and the on-run-end
suppression only updates rows, which keeps comments). :func:`read_comments` takes the column comments
from the attached warehouse; :func:`describe_version` carries them, with the table descriptions the
publisher decided, into what a reader of the version sees:

- ``marts.duckdb``: ``COMMENT ON`` every published table and column (``duckdb_tables().comment``,
  ``duckdb_columns().comment``), and a ``column_catalog(mart, column_name, ordinal, data_type,
  description)`` table beside ``mart_catalog``; both catalogs are commented too;
- ``parquet/<mart>.parquet``: written through pyarrow so that each field carries its description
  (``pyarrow.parquet.read_schema(path).field(c).metadata[b"description"]``), and the file's key-value
  metadata carries ``xihu.mart``, ``xihu.description`` and ``xihu.column_descriptions`` (JSON) for
  readers that see no field metadata (DuckDB's ``parquet_kv_metadata()``, Spark). ``pandas.read_parquet``
  shows neither: read the schema with pyarrow;
- ``manifest.json``: ``marts.<m>.columns[].description``.

A column the dbt YAML leaves undescribed is published with a NULL comment and no description; the test
in tests/integration/test_published_catalog.py fails on any such column of a real publication.
"""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

BATCH_ROWS = 100_000  # rows per batch and per Parquet row group: the mart is streamed, never held whole

CATALOG_DESCRIPTIONS = {
    "mart_catalog": (
        "The published tables of this version, one row per mart: its description, row count, business date "
        "and version.",
        {
            "mart": "Name of the mart (a table of this database, parquet/<mart>.parquet, csv/<mart>.csv).",
            "description": "What the mart holds and its grain (the dbt model description).",
            "row_count": "Rows of the mart in this version.",
            "business_date": "The newest business date of this version.",
            "version": "The published version's name.",
        },
    ),
    "column_catalog": (
        "The columns of every published mart, one row per mart and column: its type and description (the dbt "
        "column description).",
        {
            "mart": "Name of the mart (mart_catalog.mart).",
            "column_name": "Name of the column.",
            "ordinal": "Position of the column in the mart, from 1.",
            "data_type": "DuckDB type of the column.",
            "description": "What the column holds (the dbt column description).",
        },
    ),
}


def _quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def _literal(text: str | None) -> str:
    return "null" if text is None else "'" + text.replace("'", "''") + "'"


def read_comments(con: duckdb.DuckDBPyConnection, database: str, schema: str = "marts") -> dict[str, dict]:
    """Column comments of the tables of ``database.schema``: table -> {column: comment or None}, in column
    order."""
    rows = con.execute(
        "select table_name, column_name, comment from duckdb_columns()"
        " where database_name = ? and schema_name = ? order by table_name, column_index",
        [database, schema],
    ).fetchall()
    comments: dict[str, dict] = {}
    for table, column, comment in rows:
        comments.setdefault(table, {})[column] = comment or None
    return comments


def _comment(con: duckdb.DuckDBPyConnection, table: str, description: str | None, columns: dict) -> None:
    con.execute(f"comment on table main.{_quote(table)} is {_literal(description)}")
    for column, text in columns.items():
        con.execute(f"comment on column main.{_quote(table)}.{_quote(column)} is {_literal(text)}")


def write_parquet(
    con: duckdb.DuckDBPyConnection, mart: str, path: Path, description: str | None, columns: dict
) -> None:
    """``main.<mart>`` as Parquet, every field described and the descriptions in the key-value metadata."""
    reader = con.sql(f"select * from main.{_quote(mart)}").to_arrow_reader(BATCH_ROWS)
    fields = [f.with_metadata({"description": columns[f.name]}) if columns.get(f.name) else f for f in reader.schema]
    kv = {"xihu.mart": mart, "xihu.column_descriptions": json.dumps(columns, ensure_ascii=False)}
    if description:
        kv["xihu.description"] = description
    schema = pa.schema(fields, metadata=kv)
    with pq.ParquetWriter(path, schema, compression="snappy") as writer:
        for batch in reader:
            writer.write_batch(pa.RecordBatch.from_arrays(batch.columns, schema=schema))


def describe_version(
    con: duckdb.DuckDBPyConnection,
    described: dict[str, str | None],
    column_comments: dict[str, dict],
    mart_info: dict[str, dict],
) -> None:
    """Comment the published tables of ``con`` (the version's ``marts.duckdb``, ``mart_catalog`` already
    filled), write ``column_catalog``, and add each column's description to ``mart_info`` (the manifest's
    ``marts``). ``described``: mart -> description; ``column_comments``: from :func:`read_comments`."""
    con.execute(
        "create table main.column_catalog (mart varchar, column_name varchar, ordinal integer,"
        " data_type varchar, description varchar, primary key (mart, column_name))"
    )
    for mart, info in mart_info.items():
        comments = column_comments.get(mart, {})
        for ordinal, column in enumerate(info["columns"], start=1):
            column["description"] = comments.get(column["name"])
            con.execute(
                "insert into main.column_catalog values (?, ?, ?, ?, ?)",
                [mart, column["name"], ordinal, column["type"], column["description"]],
            )
        _comment(con, mart, described.get(mart), {c["name"]: c["description"] for c in info["columns"]})
    for table, (description, columns) in CATALOG_DESCRIPTIONS.items():
        _comment(con, table, description, columns)
