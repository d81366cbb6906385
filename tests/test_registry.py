"""Every list of sources agrees with the registry (ingest/registry.py): the dbt macro generated from it,
dbt's sources.yml, the staging models of the manifest, the GX suites, validation definitions and assets,
the raw gate's suites, the Connection ids (and the sandbox's), the clients' modules and the fetch plans.
A source added, renamed or removed in one place and not in the registry (or the other way round) fails
here, naming the place."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pytest
import yaml

from expectations.frames import SUITES
from ingest.clients import CLIENTS, CONNECTION_IDS
from ingest.dates import fetch_plan, history_plan
from ingest.registry import DBT_MACRO, NAMES, RAW_TABLES, REGISTRY, SOURCES, dbt_macro
from publish.catalog import parse_manifest
from sandbox.credentials import CONNECTIONS as SANDBOX_CONNECTIONS

ROOT = Path(__file__).resolve().parents[1]
DBT_PROJECT = ROOT / "dbt_project"
GX = ROOT / "expectations" / "gx"
# raw tables of dbt's sources.yml that are the loader's own, not a source's
LOADER_TABLES = {"quarantine", "load_audit"}
# raw suites that check the loads rather than one source
LOAD_SUITES = {"raw_load_audit"}


@pytest.fixture(scope="module")
def manifest(tmp_path_factory) -> dict:
    return parse_manifest(tmp_path_factory.mktemp("registry_manifest"))


def test_the_registry_is_well_formed():
    assert len(NAMES) == len(REGISTRY), "a source declared twice"
    assert all(s.spec.name == s.name for s in REGISTRY)
    assert len(set(RAW_TABLES)) == len(RAW_TABLES), "two sources load one raw table"
    assert set(SOURCES) == set(NAMES)
    for s in REGISTRY:
        assert s.daily and set(s.daily) <= {0, 1}, s.name
        assert set(s.optional) <= set(s.known), s.name


def test_the_dbt_macro_is_generated_from_the_registry():
    assert DBT_MACRO.read_text(encoding="utf-8") == dbt_macro(), (
        f"{DBT_MACRO.relative_to(ROOT)} is stale: run .venv/bin/python -m ingest.registry"
    )


def test_dbt_sources_yml_lists_the_registry_tables():
    doc = yaml.safe_load((DBT_PROJECT / "models" / "staging" / "sources.yml").read_text(encoding="utf-8"))
    (raw,) = [s for s in doc["sources"] if s["name"] == "raw"]
    tables = {t["name"] for t in raw["tables"]} - LOADER_TABLES
    assert tables == set(RAW_TABLES)


def test_every_staging_model_is_in_the_manifest_and_reads_its_table(manifest):
    models = {n["name"]: n for n in manifest["nodes"].values() if n["resource_type"] == "model"}
    for s in REGISTRY:
        assert s.staging in models, f"{s.name}: staging model {s.staging} not in the dbt project"
        assert f"source.xihu.raw.{s.table}" in models[s.staging]["depends_on"]["nodes"], s.staging
    # and no staging model reads a raw table the registry does not know
    for name, node in models.items():
        raw = {d.rsplit(".", 1)[1] for d in node["depends_on"]["nodes"] if d.startswith("source.xihu.raw.")}
        if name.startswith("stg_") and raw - LOADER_TABLES:
            assert raw - LOADER_TABLES <= set(RAW_TABLES), name
            assert name in {s.staging for s in REGISTRY}, f"{name} reads {raw} but is no registry entry's staging"


def test_raw_suites_are_the_registry_suites_and_exist_in_gx():
    declared = {s.suite for s in REGISTRY if s.suite}
    assert {s.name for s in SUITES if s.stage == "raw"} - LOAD_SUITES == declared
    config = yaml.safe_load((GX / "great_expectations.yml").read_text(encoding="utf-8"))
    assets = config["fluent_datasources"]["warehouse_frames"]["assets"]
    suite_files = {p.stem for p in (GX / "expectations").glob("raw_*.json")} - LOAD_SUITES
    definition_files = {p.stem for p in (GX / "validation_definitions").glob("raw_*.json")} - LOAD_SUITES
    assert suite_files == declared, "expectations/gx/expectations/raw_*.json"
    assert definition_files == declared, "expectations/gx/validation_definitions/raw_*.json"
    assert {a for a in assets if a.startswith("raw_")} - LOAD_SUITES == declared, "great_expectations.yml assets"
    for name in declared:
        suite = json.loads((GX / "expectations" / f"{name}.json").read_text(encoding="utf-8"))
        definition = json.loads((GX / "validation_definitions" / f"{name}.json").read_text(encoding="utf-8"))
        assert suite["name"] == definition["name"] == definition["suite"]["name"] == name
        assert definition["suite"]["id"] == suite["id"], name
        assert definition["data"]["asset"] == {"id": assets[name]["id"], "name": name}
        assert definition["data"]["batch_definition"]["id"] == assets[name]["batch_definitions"]["whole_frame"]["id"]


def test_connection_ids_and_clients_are_the_registry():
    assert CONNECTION_IDS == {s.name: s.connection_id for s in REGISTRY}
    assert set(CONNECTION_IDS.values()) <= set(SANDBOX_CONNECTIONS), "a Connection the sandbox does not serve"
    assert list(CLIENTS) == list(NAMES)
    for name, client in CLIENTS.items():
        assert client.source == name, f"{client.__name__}.source is {client.source!r}, registry says {name!r}"
    modules = {f"ingest.clients.{p.stem}" for p in (ROOT / "ingest" / "clients").glob("*.py")}
    assert modules - {"ingest.clients.__init__", "ingest.clients.base"} == {s.client_module for s in REGISTRY}


def test_the_fetch_plans_fetch_every_source():
    daily = fetch_plan(date(2026, 11, 28))
    assert {j["source"] for j in daily} == set(NAMES)
    assert len(daily) == sum(len(s.daily) for s in REGISTRY)
    history = history_plan([date(2026, 10, 30), date(2026, 10, 31), date(2026, 11, 1)])
    assert {j["source"] for j in history} == set(NAMES)
