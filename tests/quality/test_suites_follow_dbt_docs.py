"""Every published mart but the registries (dim_*) has a suite, and each suite's schema expectation lists
exactly the columns the dbt docs promise analysts (so a column documented later is gated as soon as the
suite is updated, and a suite never demands a column the docs dropped)."""

from __future__ import annotations

import json
from pathlib import Path

from expectations.frames import SUITES
from publish.catalog import parse_manifest, published_marts

SUITES_DIR = Path(__file__).resolve().parents[2] / "expectations" / "gx" / "expectations"


def test_mart_suites_check_the_documented_schema(tmp_path):
    # the registries (tag registry: dim_streets, ...) are gated by their dbt tests, not by a suite
    marts = {
        name: node for name, node in published_marts(parse_manifest(tmp_path)).items() if "registry" not in node["tags"]
    }
    assert len(marts) >= 9
    mart_suites = {s.name for s in SUITES if s.stage == "marts"}
    assert set(marts) <= mart_suites
    schema_checked = {}
    for name in mart_suites:
        suite = json.loads((SUITES_DIR / f"{name}.json").read_text(encoding="utf-8"))
        for expectation in suite["expectations"]:
            if expectation["type"] == "expect_table_columns_to_match_set":
                assert expectation["severity"] == "critical"
                schema_checked[name] = expectation["kwargs"]["column_set"]
    # volunteer_activity_monthly is validated as one aggregate row, so its schema is not checked there.
    assert set(schema_checked) == set(marts) - {"volunteer_activity_monthly"}
    for name, columns in schema_checked.items():
        assert columns == list(marts[name]["columns"]), name
