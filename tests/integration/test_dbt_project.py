"""The dbt project's declarations, checked against the warehouse the district fixture built.

Exposures must list every reader's tables (a mart added to `marts` but not to the BI exports exposure
would be published without appearing in the lineage), and the source freshness of raw must pass right
after a load, and warn or fail on a table whose last load is too old.
"""

from __future__ import annotations

import json
import shutil

import duckdb
import pytest

from ops.bi_extract import EXTRACT_TABLES
from tests.warehouse_helpers import run_dbt

pytestmark = pytest.mark.slow  # builds the sandbox district (minutes)


def _manifest(district) -> dict:
    return json.loads((district.data_dir / "dbt" / "target" / "manifest.json").read_text())


def _refs(manifest: dict, exposure: str) -> set[str]:
    node = manifest["exposures"][f"exposure.xihu.{exposure}"]
    return {manifest["nodes"][n]["name"] for n in node["depends_on"]["nodes"]}


def test_bi_exports_exposure_lists_every_published_mart(district):
    manifest = _manifest(district)
    marts = {
        t for (t,) in district.query("select table_name from information_schema.tables where table_schema = 'marts'")
    }
    assert _refs(manifest, "published_bi_exports") == marts


def test_dashboard_exposure_is_the_extract(district):
    assert _refs(_manifest(district), "district_dashboard") == set(EXTRACT_TABLES)


def _freshness(data_dir) -> dict[str, str]:
    sources = json.loads((data_dir / "dbt" / "target" / "sources.json").read_text())
    return {r["unique_id"].rsplit(".", 1)[-1]: r["status"] for r in sources["results"]}


def test_source_freshness_of_raw(district, tmp_path):
    loaded = (
        "meituan_orders",
        "eleme_orders",
        "sf_orders",
        "shansong_orders",
        "union_members",
        "union_orgs",
        "station_events",
    )
    # Just loaded: every table the loader fills on each run is fresh.
    run_dbt(district.data_dir, "source freshness", district.reporting_date, "--select", "source:raw")
    assert _freshness(district.data_dir) == {t: "pass" for t in loaded}
    # A copy where the sf feed was last loaded 3 days ago and the union orgs 100 hours ago.
    (tmp_path / "warehouse").mkdir()
    shutil.copy(district.path, tmp_path / "warehouse" / "xihu.duckdb")
    with duckdb.connect(str(tmp_path / "warehouse" / "xihu.duckdb")) as con:
        con.execute("update raw.sf_orders set loaded_at = loaded_at - interval 3 days")
        con.execute("update raw.union_orgs set loaded_at = loaded_at - interval 100 hours")
    with pytest.raises(AssertionError, match="dbt source freshness failed"):
        run_dbt(tmp_path, "source freshness", district.reporting_date, "--select", "source:raw")
    assert _freshness(tmp_path) == {**{t: "pass" for t in loaded}, "sf_orders": "error", "union_orgs": "warn"}
