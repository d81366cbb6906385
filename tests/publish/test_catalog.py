"""docs/analysts.md's table of marts is what the dbt docs say, and the check notices when it is not."""

from __future__ import annotations

import json

import pytest

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
