"""The dashboard extract of the asset-scheduled DAG `xihu_bi_refresh`: built from one published version."""

import duckdb

from ops.bi_extract import build_dashboard_extract
from publish import publish_version, rollback
from tests.requires import needs_chromium

pytestmark = needs_chromium  # every test here publishes a version, and with it the briefing's PDF


def test_extract_holds_the_current_versions_tables_and_names_it(warehouse, published, data_dir):
    first = publish_version(warehouse, published, "2026-11-28", "run-1")
    con = duckdb.connect(str(warehouse))
    con.execute("update marts.street_coverage_monthly set friendly_share = 0.99")
    con.close()
    second = publish_version(warehouse, published, "2026-11-28", "run-2")
    target = data_dir / "bi" / "dashboard.duckdb"

    info = build_dashboard_extract(published / "current", target)
    assert info["version"] == second.version and info["rows"] == {"street_coverage_monthly": 11}
    con = duckdb.connect(str(target), read_only=True)
    assert con.execute("select min(friendly_share) from street_coverage_monthly").fetchone()[0] == 0.99
    assert con.execute("select version from extract_source").fetchone()[0] == second.version
    con.close()

    rollback(published)  # the dashboard follows `current`, rollbacks included
    info = build_dashboard_extract(published / "current", target)
    con = duckdb.connect(str(target), read_only=True)
    assert info["version"] == first.version
    assert con.execute("select min(friendly_share) from street_coverage_monthly").fetchone()[0] < 0.99
    con.close()
