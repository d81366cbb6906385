"""A real publication of the sandbox district describes itself and joins its registries (issue 11, item 4).

The district warehouse (dbt with persist_docs) is published with ``publish_version`` as the DAG does; the
version must describe every mart and column in each place a reader looks (the manifest, the DuckDB
file's table and column comments, ``mart_catalog`` and ``column_catalog``, the Parquet metadata), and
every street key of every mart must be a street of ``dim_streets``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest

from ops.dag_config import PUBLISHED_MARTS
from publish import publish_version
from publish.publisher import Manifest
from tests.requires import needs_chromium

pytestmark = [pytest.mark.slow, needs_chromium]  # builds the sandbox district (minutes)

# Street keys that are no street, each documented in its mart's YAML: a total over streets, a delivery
# outside every unit, a member's empty or non-district 居住街道, a rider who reached no unit.
NOT_A_STREET = ("all", "unmatched", "unknown", "outside_registry", "no_unit_delivery")
DIMS = ("dim_streets", "dim_units", "dim_stations", "dim_volunteer_teams", "dim_union_orgs")


@pytest.fixture(scope="module")
def version(district, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("published")
    publish_version(district.path, root, district.reporting_date, "it-catalog")
    return Path(os.path.realpath(root / "current"))


def test_every_published_column_is_described_everywhere(version):
    manifest = Manifest.read(version)
    assert set(manifest.marts) == set(PUBLISHED_MARTS)  # the dims included; nothing the DAG's assets miss
    undescribed = [m for m, info in manifest.marts.items() if not info["description"]]
    undescribed += [
        f"{m}.{c['name']}" for m, info in manifest.marts.items() for c in info["columns"] if not c["description"]
    ]
    assert undescribed == [], "manifest"

    with duckdb.connect(str(version / "marts.duckdb"), read_only=True) as con:
        tables = dict(con.execute("select table_name, comment from duckdb_tables()").fetchall())
        assert set(tables) == {*manifest.marts, "mart_catalog", "column_catalog"}
        assert [t for t, comment in tables.items() if not comment] == [], "table comments"
        columns = con.execute(
            "select table_name, column_name, comment from duckdb_columns() where schema_name = 'main' and not internal"
        ).fetchall()
        assert [f"{t}.{c}" for t, c, comment in columns if not comment] == [], "column comments"
        catalog = dict(con.execute("select mart, description from mart_catalog").fetchall())
        column_catalog = {
            (m, c): d for m, c, d in con.execute("select mart, column_name, description from column_catalog").fetchall()
        }
    assert catalog == {m: info["description"] for m, info in manifest.marts.items()}
    assert column_catalog == {
        (m, c["name"]): c["description"] for m, info in manifest.marts.items() for c in info["columns"]
    }
    # the comments are the manifest's text, not merely present
    assert {(t, c): comment for t, c, comment in columns if t in manifest.marts} == column_catalog

    for mart, info in manifest.marts.items():
        schema = pq.read_schema(version / "parquet" / f"{mart}.parquet")
        described = {c["name"]: c["description"] for c in info["columns"]}
        assert {f.name: (f.metadata or {}).get(b"description", b"").decode() for f in schema} == described, mart
        assert json.loads(schema.metadata[b"xihu.column_descriptions"]) == described, mart
        assert schema.metadata[b"xihu.description"].decode() == info["description"], mart


def test_every_street_key_joins_dim_streets(version):
    with duckdb.connect(str(version / "marts.duckdb"), read_only=True) as con:
        keyed = [
            t
            for (t,) in con.execute(
                "select table_name from duckdb_columns() where column_name = 'street_id'"
                " and table_name not in ('dim_streets', 'column_catalog') order by table_name"
            ).fetchall()
        ]
        # every mart about streets keys them by street_id; no mart names streets by a free-text column
        assert {
            "street_coverage_monthly",
            "service_circle_daily",
            "union_coverage_monthly",
            "volunteer_activity_monthly",
            "unit_access_daily",
            "dim_units",
            "dim_stations",
        } <= set(keyed)
        assert (
            con.execute(
                "select count(*) from duckdb_columns() where column_name in ('street', 'street_name')"
                " and table_name <> 'dim_streets'"
            ).fetchone()[0]
            == 0
        )
        known = con.execute(
            "select count(*) from dim_streets where lng is not null and lat is not null and street_name is not null"
        ).fetchone()[0]
        assert known == 11
        for table in keyed:
            orphans = con.execute(
                f"select distinct m.street_id from {table} as m anti join dim_streets as d using (street_id)"
                f" where m.street_id is not null and m.street_id not in {NOT_A_STREET!r}"
            ).fetchall()
            assert orphans == [], table
            joined = con.execute(
                f"select count(*) from {table} as m semi join dim_streets using (street_id)"
            ).fetchone()[0]
            assert joined > 0, table  # the keys really are streets, not only the totals
        # union coverage counts residence streets by street_id too
        assert (
            con.execute(
                "select count(distinct street_id) from union_coverage_monthly"
                " where street_basis = 'residence' and street_id like 'S%'"
            ).fetchone()[0]
            == 11
        )


def test_the_other_registry_keys_join_their_dims(version):
    joins = [
        ("unit_access_daily", "unit_id", "dim_units", "unit_id", ""),
        ("station_usage_daily", "station_id", "dim_stations", "station_id", ""),
        ("volunteer_activity_monthly", "team_id", "dim_volunteer_teams", "team_id", ""),
        ("union_coverage_monthly", "union_org_code", "dim_union_orgs", "org_id", " and m.union_org_code <> 'all'"),
    ]
    with duckdb.connect(str(version / "marts.duckdb"), read_only=True) as con:
        for mart, key, dim, dim_key, extra in joins:
            orphans, total = con.execute(
                f"select count(*) filter (where d.{dim_key} is null), count(*) from {mart} as m"
                f" left join {dim} as d on m.{key} = d.{dim_key} where m.{key} is not null{extra}"
            ).fetchone()
            assert total > 0 and orphans == 0, (mart, orphans, total)
        assert (
            con.execute(
                "select count(*) from dim_union_orgs where org_type = 'street_federation' and street_id is null"
            ).fetchone()[0]
            == 0
        )
