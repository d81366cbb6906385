"""docs/analysts.md's table of marts is what the dbt docs say, and the check notices when it is not; the
descriptions reach every format of a published version (publish/describe.py)."""

from __future__ import annotations

import json

import duckdb
import pyarrow.parquet as pq
import pytest

from publish import publish_version
from publish.catalog import (
    ANALYSTS_DOC,
    END,
    START,
    main,
    marts_table,
    parse_manifest,
    published_marts,
    render,
)
from tests.requires import needs_chromium

pytestmark = needs_chromium  # every test here publishes a version, and with it the briefing's PDF


@pytest.fixture(scope="module")
def manifest(tmp_path_factory) -> dict:
    """A fresh `dbt parse` of the project (about 7 s), never the possibly stale dbt_project/target."""
    return parse_manifest(tmp_path_factory.mktemp("dbt-target"))


def test_the_analysts_doc_table_is_up_to_date(manifest):
    doc = ANALYSTS_DOC.read_text(encoding="utf-8")
    assert render(doc, marts_table(manifest)) == doc, "run: .venv/bin/python -m publish.catalog"
    table = doc.split(START, 1)[1].split(END, 1)[0]
    marts = published_marts(manifest)
    assert len(marts) >= 9
    for name in marts:
        assert f"| `{name}` | One row per" in table


def test_check_fails_on_a_stale_table_and_regeneration_fixes_it(manifest, tmp_path, capsys):
    stale = json.loads(json.dumps(manifest))
    node = next(n for n in stale["nodes"].values() if n["name"] == "station_usage_daily")
    node["description"] = "Use of rest stations (暖蜂驿站) and more. One row per station and hour."
    (tmp_path / "manifest.json").write_text(json.dumps(stale), encoding="utf-8")
    doc = tmp_path / "analysts.md"
    doc.write_text(ANALYSTS_DOC.read_text(encoding="utf-8"), encoding="utf-8")
    args = ["--manifest", str(tmp_path / "manifest.json"), "--doc", str(doc)]

    assert main([*args, "--check"]) == 1
    assert "out of date" in capsys.readouterr().err
    assert main(args) == 0
    row = "| `station_usage_daily` | One row per station and hour | `station_id`, `event_date` |"
    assert row in doc.read_text(encoding="utf-8")
    assert main([*args, "--check"]) == 0


def test_a_document_without_markers_is_refused():
    with pytest.raises(ValueError, match="markers"):
        render("# no table here\n", "| mart |")


def test_comments_reach_every_format_of_the_version(warehouse, published):
    """The warehouse's table and column comments (what dbt's persist_docs writes) reach the published
    DuckDB file, column_catalog, the Parquet field and key-value metadata and the manifest."""
    con = duckdb.connect(str(warehouse))
    con.execute("comment on column marts.street_coverage_monthly.street_id is 'Street key (dim_streets)'")
    con.execute("comment on column marts.street_coverage_monthly.street_name is '街道名称, it''s Chinese'")
    con.close()
    manifest = publish_version(warehouse, published, "2026-11-28", "run-1")
    folder = published / "versions" / manifest.version

    columns = {c["name"]: c["description"] for c in manifest.marts["street_coverage_monthly"]["columns"]}
    assert columns == {
        "street_id": "Street key (dim_streets)",
        "street_name": "街道名称, it's Chinese",
        "month": None,
        "friendly_share": None,
    }
    with duckdb.connect(str(folder / "marts.duckdb"), read_only=True) as con:
        comments = dict(
            con.execute(
                "select column_name, comment from duckdb_columns() where table_name = 'street_coverage_monthly'"
            ).fetchall()
        )
        table_comment = con.execute(
            "select comment from duckdb_tables() where table_name = 'street_coverage_monthly'"
        ).fetchone()[0]
        catalog = con.execute(
            "select column_name, ordinal, data_type, description from column_catalog"
            " where mart = 'street_coverage_monthly' order by ordinal"
        ).fetchall()
        undescribed_catalog_columns = con.execute(
            "select count(*) from duckdb_columns() where table_name in ('mart_catalog', 'column_catalog')"
            " and comment is null"
        ).fetchone()[0]
    assert comments == columns
    assert table_comment == manifest.marts["street_coverage_monthly"]["description"]
    assert table_comment.startswith("One row per street and month")
    assert catalog[0] == ("street_id", 1, "VARCHAR", "Street key (dim_streets)")
    assert [c[0] for c in catalog] == list(columns)
    assert undescribed_catalog_columns == 0

    schema = pq.read_schema(folder / "parquet" / "street_coverage_monthly.parquet")
    assert schema.field("street_name").metadata == {b"description": "街道名称, it's Chinese".encode()}
    assert schema.field("month").metadata is None
    assert schema.metadata[b"xihu.description"].decode() == table_comment
    assert json.loads(schema.metadata[b"xihu.column_descriptions"]) == columns
    # DuckDB readers see the key-value metadata, and the data is the mart's
    with duckdb.connect() as con:
        parquet = str(folder / "parquet" / "street_coverage_monthly.parquet")
        kv = dict(con.execute("select key::varchar, value::varchar from parquet_kv_metadata(?)", [parquet]).fetchall())
        assert kv["xihu.mart"] == "street_coverage_monthly"
        assert con.execute("select count(*), min(street_name) from read_parquet(?)", [parquet]).fetchone() == (
            11,
            "北山街道",
        )
