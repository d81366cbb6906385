"""The field lists of macro source_fields (what int_source_field_drift calls known and optional, declared in
ingest/registry.py) agree with what the staging models read and with what the loader requires, so a field a
staging model starts to read can never count as schema drift, and "optional" means what the loader's spec
(ingest/sources.py) means by it."""

from __future__ import annotations

import json
import re

import pytest

from ingest.registry import REGISTRY, SOURCES
from tests.warehouse_helpers import DBT_PROJECT, dbt_in_memory

# The sources measured for drift (their registry entry lists contract fields) and their staging models.
STAGING = {s.name: s.staging for s in REGISTRY if s.known}
# Contract fields the staging models deliberately do not read: the platforms' own rider ids (riders are
# joined on the hashed phone) and shop / POI ids (no indicator uses them); shansong's courier name is PII.
UNREAD = {
    "meituan": {"courier_id", "poi_id"},
    "eleme": {"carrier_driver_id", "partner_order_code"},
    "sf": {"rider_id", "shop_order_id"},
    "shansong": {"courier.id", "courier.name"},
    "stations": set(),
}


@pytest.fixture(scope="module")
def source_fields(tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("source_fields")
    return json.loads(dbt_in_memory(out, "compile", "--inline", "{{ tojson(source_fields()) }}").splitlines()[-1])


def staging_reads(source: str) -> set[str]:
    """Every payload path a staging model reads ('$.receiver.aoiId' -> 'receiver.aoiId')."""
    (path,) = (DBT_PROJECT / "models" / "staging").rglob(f"{STAGING[source]}.sql")
    sql = path.read_text(encoding="utf-8")
    return set(re.findall(r"'\$\.([A-Za-z_][\w.]*)'", sql))


def loader_requires(source: str) -> set[str]:
    """Fields without which the loader quarantines a record: ids, required fields, the order time (or the
    log that holds it) and a station event's ts."""
    spec = SOURCES[source]
    required = set(spec.id_fields) | {name for name, _ in spec.required}
    for time in (spec.order_time, spec.event_time):
        if time is not None:
            required.add(time.log or time.field)
    return required


def test_every_source_with_a_staging_model_is_declared(source_fields):
    assert set(source_fields) == set(STAGING)
    for source, spec in source_fields.items():
        assert spec["table"] == SOURCES[source].table, source


@pytest.mark.parametrize("source", sorted(STAGING))
def test_known_fields_are_what_staging_reads_plus_what_it_deliberately_skips(source_fields, source):
    known = source_fields[source]["known"]
    assert len(known) == len(set(known)), "a field listed twice"
    assert set(known) == staging_reads(source) | UNREAD[source]


@pytest.mark.parametrize("source", ["meituan", "eleme", "sf", "shansong"])
def test_optional_fields_are_the_known_fields_the_loader_does_not_require(source_fields, source):
    spec = source_fields[source]
    assert set(spec["optional"]) == set(spec["known"]) - loader_requires(source)


@pytest.mark.parametrize("source", sorted(STAGING))
def test_a_staging_model_parses_its_payload_once_for_exactly_the_paths_it_reads(source):
    """macros/payload_fields.sql: the model's `paths` list is what its columns read, each once, and no column
    parses the payload by itself (a json_extract of `payload` would parse it again)."""
    (path,) = (DBT_PROJECT / "models" / "staging").rglob(f"{STAGING[source]}.sql")
    sql = path.read_text(encoding="utf-8")
    listed = re.findall(r"'(\$\.[\w.]+)'", re.search(r"set paths = \[(.*?)\]", sql, re.S)[1])
    used = re.findall(r"payload_(?:field|string)\(paths, '(\$\.[\w.]+)'\)", sql)
    assert len(listed) == len(set(listed)), "a path listed twice"
    assert set(listed) == set(used)
    assert "payload_fields(paths)" in sql
    assert not re.search(r"json_\w+\(payload\b", sql), "a column parses the payload again"


def test_station_events_count_no_field_missing(source_fields):
    # Which fields a station event carries depends on its type (a check-in has no points).
    assert source_fields["stations"]["optional"] == []
    assert loader_requires("stations") <= set(source_fields["stations"]["known"])


# shansong's payloads, the one source with nested fields: (payload, unknown fields, missing optional fields).
SHANSONG_PAYLOADS = [
    (
        {
            "orderNo": "A",
            "courier": {"id": 1, "mobile": "h", "name": "h"},
            "receiver": {"lng": 1, "lat": 2, "aoiId": "x"},
            "statusChangeLog": [],
            "gateTime": None,
            "accessMode": None,
            "parkingMode": "BAY",
            "useLocker": True,
            "elderCare": False,
            "distance": 1,
            "amount": 1,
        },
        [],
        [],
    ),
    (
        {"orderNo": "B", "tip": 1, "courier": None, "receiver": {"lng": 1, "lat": 2, "floor": 3}},
        ["receiver.floor", "tip"],
        [
            "courier.mobile",
            "courier.name",
            "receiver.aoiId",
            "gateTime",
            "accessMode",
            "parkingMode",
            "useLocker",
            "elderCare",
            "distance",
            "amount",
        ],
    ),
    (
        {
            "orderNo": "C",
            "receiver": "not an object",
            "statusChangeLog": [],
            "gateTime": None,
            "accessMode": None,
            "parkingMode": None,
            "useLocker": None,
            "elderCare": None,
            "distance": None,
            "amount": None,
            "courier": {"id": 1, "mobile": None, "name": "h", "extra": {"deep": 1}},
        },
        ["courier.extra"],
        ["receiver.aoiId"],
    ),
]


def test_drift_macros_read_fields_at_both_levels_and_a_null_is_not_missing(tmp_path):
    """unknown_fields and missing_fields on field_key_columns, run by DuckDB (dbt show): an unknown key at the
    top and inside a listed object, a field absent, inside an absent, null or non-object parent, or present
    with a JSON null (not missing)."""
    values = ", ".join(f"({i}, '{json.dumps(p)}'::json)" for i, (p, _, _) in enumerate(SHANSONG_PAYLOADS))
    sql = (
        "{% set spec = source_fields()['shansong'] %}"
        "select i, to_json({{ unknown_fields(spec.known) }}) as u, to_json({{ missing_fields(spec.optional) }}) as m "
        "from (select i, {{ field_key_columns('payload', spec.known) }} "
        f"from (values {values}) as t (i, payload)) as keyed order by i"
    )
    rows = json.loads(dbt_in_memory(tmp_path, "show", "--inline", sql, "--output", "json", "--limit", "10"))["show"]
    got = [(json.loads(r["u"]), sorted(json.loads(r["m"]))) for r in rows]
    assert got == [(unknown, sorted(missing)) for _, unknown, missing in SHANSONG_PAYLOADS]
