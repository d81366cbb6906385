"""Column lineage: every published number traces, in the model YAML, down to the platforms' fields.

The form is documented in docs/internals.md ("Column lineage"). In short, a model column's
``config.meta.lineage`` lists the columns it is computed from, each ``<model|seed|snapshot>.<column>`` or
``<source>.<table>.<column>`` (``raw.load_audit.fetched``), or ``var:<name>`` (a dbt var of
dbt_project.yml) or ``literal: <text>`` (a value the model writes itself). A staging column's
``config.meta.source_field`` names what it reads from its raw table: a JSON path into ``payload``
(``$.recipient_lng``: the field as the platform sends it, sources.md), a column of the raw table
(``business_date``, ``fetch_id``), or ``(...)`` for a value the source does not send; the four order
models share one column list, so there it is a mapping from platform to field.

These tests read a fresh ``dbt parse`` (never a possibly stale dbt_project/target) and walk from every
column of every published mart (ops.dag_config.PUBLISHED_MARTS) down to seeds, sources and staging fields.
"""

from __future__ import annotations

import ast
import copy
import re
from pathlib import Path

import pytest
import yaml

from publish.catalog import parse_manifest

ROOT = Path(__file__).resolve().parents[2]
RESOURCE_TYPES = ("model", "seed", "snapshot")


def published_marts() -> tuple[str, ...]:
    """PUBLISHED_MARTS of ops/dag_config.py, read without importing Airflow."""
    tree = ast.parse((ROOT / "ops" / "dag_config.py").read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "PUBLISHED_MARTS" for t in node.targets):
            return tuple(ast.literal_eval(node.value))
    raise AssertionError("ops/dag_config.py has no PUBLISHED_MARTS")


def dbt_vars() -> set[str]:
    project = yaml.safe_load((ROOT / "dbt_project" / "dbt_project.yml").read_text(encoding="utf-8"))
    return set(project.get("vars") or {})


@pytest.fixture(scope="module")
def manifest(tmp_path_factory) -> dict:
    return parse_manifest(tmp_path_factory.mktemp("dbt-target"))


def _meta(column: dict) -> dict:
    return column.get("meta") or (column.get("config") or {}).get("meta") or {}


def lineage_problems(manifest: dict, marts: tuple[str, ...], variables: set[str]) -> list[str]:
    """Every way the lineage from ``marts`` down to the raw fields is missing or names something unknown."""
    nodes = {n["name"]: n for n in manifest["nodes"].values() if n["resource_type"] in RESOURCE_TYPES}
    sources = {f"{s['source_name']}.{s['name']}": s for s in manifest["sources"].values()}
    problems: list[str] = []
    todo = []
    for mart in marts:
        node = nodes.get(mart)
        if node is None:
            problems.append(f"published mart {mart} is not a model")
            continue
        if not node["columns"]:
            problems.append(f"{mart}: no columns in its YAML")
        todo += [(mart, column) for column in node["columns"]]
    seen: set[tuple[str, str]] = set()
    while todo:
        model, column = todo.pop()
        if (model, column) in seen:
            continue
        seen.add((model, column))
        node = nodes[model]
        where = f"{model}.{column}"
        if node["resource_type"] == "seed":
            continue  # a registry file: the end of the line
        meta = _meta(node["columns"][column])
        if node["name"].startswith("stg_"):
            problems += _source_field_problems(node, column, meta, sources)
            continue
        entries = meta.get("lineage")
        if not isinstance(entries, list) or not entries:
            problems.append(f"{where}: no meta.lineage")
            continue
        depends_on = set(node["depends_on"]["nodes"])
        for entry in entries:
            if not isinstance(entry, str):
                problems.append(f"{where}: lineage entry {entry!r} is not a string")
            elif entry.startswith("literal:"):
                continue
            elif entry.startswith("var:"):
                if entry[4:] not in variables:
                    problems.append(f"{where}: {entry} is not a var of dbt_project.yml")
            elif entry.count(".") == 2:
                source, _, col = entry.rpartition(".")
                if source not in sources:
                    problems.append(f"{where}: {entry} names no source table")
                elif col not in sources[source]["columns"]:
                    problems.append(f"{where}: {entry} names no column of source {source}")
                elif sources[source]["unique_id"] not in depends_on:
                    problems.append(f"{where}: {entry}: {model} does not read source {source}")
            elif entry.count(".") == 1:
                upstream, col = entry.split(".")
                if upstream not in nodes:
                    problems.append(f"{where}: {entry} names no model, seed or snapshot")
                elif col not in nodes[upstream]["columns"]:
                    problems.append(f"{where}: {entry} names no column of {upstream} (its YAML)")
                elif upstream == model and col == column:
                    problems.append(f"{where}: lineage names the column itself")
                elif upstream != model and nodes[upstream]["unique_id"] not in depends_on:
                    problems.append(f"{where}: {entry}: {model} does not ref {upstream}")
                else:
                    todo.append((upstream, col))
            else:
                problems.append(
                    f"{where}: lineage entry {entry!r} is not <model>.<column> or <source>.<table>.<column>"
                )
    return problems


def _source_field_problems(node: dict, column: str, meta: dict, sources: dict) -> list[str]:
    where = f"{node['name']}.{column}"
    field = meta.get("source_field")
    if isinstance(field, dict):  # the order models' shared columns: platform -> field
        platform = node["name"].removeprefix("stg_").split("__")[0]
        if platform not in field:
            return [f"{where}: meta.source_field has no entry for {platform}"]
        field = field[platform]
    if field is None:
        return [f"{where}: no meta.source_field"]
    raw = [sources[s] for s in sources if sources[s]["unique_id"] in node["depends_on"]["nodes"]]
    problems = []
    for name in field if isinstance(field, list) else [field]:
        if name.startswith("("):
            continue  # a value the source does not send, said in words
        if name.startswith("$."):
            head = name.split("[")[0]
            key = head[2:]
            if f"'{head}" not in node["raw_code"] and f"'{key}'" not in node["raw_code"]:
                problems.append(f"{where}: {node['name']}.sql does not read {name}")
        elif not any(name in table["columns"] for table in raw):
            problems.append(f"{where}: {name} is no column of the raw table the model reads")
    return problems


def test_every_published_column_traces_to_the_source_fields(manifest):
    problems = lineage_problems(manifest, published_marts(), dbt_vars())
    assert not problems, "column lineage broken:\n" + "\n".join(problems)


def test_the_check_catches_a_missing_and_a_wrong_entry(manifest):
    """The walk is not vacuous: a mart column without lineage, or an entry naming a column that does not
    exist upstream, is reported."""
    broken = copy.deepcopy(manifest)
    kpis = next(n for n in broken["nodes"].values() if n["name"] == "district_daily_kpis")
    del kpis["columns"]["deliveries"]["meta"]["lineage"]
    kpis["columns"]["deliveries"].get("config", {}).get("meta", {}).pop("lineage", None)
    kpis["columns"]["station_visits"]["meta"]["lineage"] = ["stg_stations__events.no_such_column"]
    kpis["columns"]["station_visits"].get("config", {}).setdefault("meta", {})["lineage"] = [
        "stg_stations__events.no_such_column"
    ]
    problems = lineage_problems(broken, ("district_daily_kpis",), dbt_vars())
    assert "district_daily_kpis.deliveries: no meta.lineage" in problems
    assert any(re.match(r"district_daily_kpis\.station_visits: .*no_such_column names no column", p) for p in problems)
