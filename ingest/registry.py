"""The registry of sources: one declaration per source, which every part of the pipeline reads.

Each :class:`Source` says what the source is (``kind``), which Airflow Connection and client fetch it,
which dates a run fetches of it (daily and in a history run), what its landed records look like and when
one is quarantined (``spec``, :class:`ingest.sources.SourceSpec`), the contract fields dbt's drift
measures know (``known`` / ``optional``), the staging model that parses it and the raw gate suite that
checks that model. Who reads what:

| reader | reads |
| --- | --- |
| ``ingest.clients`` | ``client`` (``CLIENTS``) and ``connection_id`` (``CONNECTION_IDS``) |
| ``ingest.dates`` | ``daily`` and ``history`` (``fetch_plan``, ``history_plan``) |
| ``ingest.sources`` / ``ingest.load`` | ``spec`` (``SOURCES``, ``RAW_TABLES``) |
| ``expectations.frames`` | ``suite`` and ``staging`` (the raw suites validate the staging model) |
| dbt | the generated macro ``source_registry()`` (below) |

**How dbt reads it: a generated macro, not a var.** ``python -m ingest.registry`` writes
``dbt_project/macros/source_registry.sql``, whose ``source_registry()`` returns, per source, its kind,
raw table, staging model and contract fields; ``source_fields()`` (the drift measures) and
``int_orders_matched`` (the union of the order platforms' staging models) loop over it. A macro rather
than a var passed by ``ingest.settings.dbt_vars``: a bare ``dbt parse``/``dbt build``, sqlfluff's
templater and Cosmos' rendering of the DAG see the same sources without a copy of the list in
``dbt_project.yml`` as the var's fallback. The file is committed, and ``tests/test_registry.py`` fails
when it is not what this module generates, and when any other list (dbt's ``sources.yml``, the staging
models of the manifest, the GX suites and validation definitions, the clients' modules) disagrees.

Adding a platform: its client module, its staging model, its gate suite and one entry here (README,
"Add a platform").
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from ingest.sources import INTEGER, NUMBER, OPAQUE_ID, STRING, Coordinates, OrderTime, SourceSpec

ROOT = Path(__file__).resolve().parents[1]
DBT_MACRO = ROOT / "dbt_project" / "macros" / "source_registry.sql"

Kind = Literal["order_platform", "union_export", "station_log"]


@dataclass(frozen=True)
class Source:
    """One source. ``daily``: the days before the business date a daily run fetches (``(1, 0)``: D-1 and
    D, ``(0,)``: D only). ``history``: which dates of a history range it is fetched for: every date,
    each month end and the last date, or the last date only (``ingest.dates.history_plan``)."""

    name: str
    kind: Kind
    connection_id: str
    # 'module:Class' under ingest.clients, imported by ingest.clients.CLIENTS
    client: str
    daily: tuple[int, ...]
    history: Literal["every_date", "month_ends_and_last", "last"]
    spec: SourceSpec
    # dbt staging model that parses the raw table, and the raw gate suite that validates it (None: none).
    staging: str
    suite: str | None
    # Contract fields (sources.md) for int_source_field_drift: every field (read by staging or
    # deliberately not), and the known fields a record may lack. Empty: not measured for drift.
    known: tuple[str, ...] = ()
    optional: tuple[str, ...] = ()

    @property
    def table(self) -> str:
        return self.spec.table

    @property
    def client_module(self) -> str:
        return self.client.split(":")[0]


def _order_platform(name: str, client_class: str, spec: SourceSpec, **fields) -> Source:
    """An order platform, named by the conventions every platform follows: its client module
    ``ingest.clients.<name>``, Connection ``xihu_<name>``, staging model ``stg_<name>__orders`` and raw suite
    ``raw_<name>_orders``; fetched for D and D-1 (late corrections) and for every date of a history."""
    return Source(
        name=name,
        kind="order_platform",
        connection_id=f"xihu_{name}",
        client=f"ingest.clients.{name}:{client_class}",
        daily=(1, 0),
        history="every_date",
        spec=spec,
        staging=f"stg_{name}__orders",
        suite=f"raw_{name}_orders",
        **fields,
    )


REGISTRY: tuple[Source, ...] = (
    _order_platform(
        "meituan",
        "MeituanClient",
        SourceSpec(
            name="meituan",
            table="meituan_orders",
            page_format="json",
            records_path="data.orders",
            id_fields=("order_id",),
            required=(
                ("order_id", STRING),
                ("courier_id", OPAQUE_ID),
                ("recipient_lng", NUMBER),
                ("recipient_lat", NUMBER),
                ("status", INTEGER),
            ),
            coordinates=Coordinates("recipient_lng", "recipient_lat", "number"),
            order_time=OrderTime("platform_order_time", "unix_seconds"),
        ),
        known=(
            "order_id",
            "courier_id",
            "courier_phone",
            "poi_id",
            "recipient_lng",
            "recipient_lat",
            "recipient_aoi_id",
            "status",
            "platform_order_time",
            "grab_time",
            "fetch_time",
            "gate_arrive_time",
            "arrive_time",
            "entry_method",
            "parking",
            "locker_used",
            "elderly_meal",
            "distance_m",
            "fee_cents",
        ),  # fmt: skip
        optional=(
            "courier_phone",
            "poi_id",
            "recipient_aoi_id",
            "grab_time",
            "fetch_time",
            "gate_arrive_time",
            "arrive_time",
            "entry_method",
            "parking",
            "locker_used",
            "elderly_meal",
            "distance_m",
            "fee_cents",
        ),  # fmt: skip
    ),
    _order_platform(
        "eleme",
        "ElemeClient",
        SourceSpec(
            name="eleme",
            table="eleme_orders",
            page_format="json",
            records_path="items",
            id_fields=("open_order_code",),
            required=(
                ("open_order_code", STRING),
                ("carrier_driver_id", OPAQUE_ID),
                ("lng", STRING),
                ("lat", STRING),
                ("order_status", INTEGER),
            ),
            coordinates=Coordinates("lng", "lat", "numeric_string"),
            # sources.md: "ordered = status 1" of status_log; push_time is epoch milliseconds.
            order_time=OrderTime(
                "push_time", "unix_millis", log="status_log", status_key="order_status", status_value=1
            ),
        ),
        known=(
            "open_order_code",
            "partner_order_code",
            "carrier_driver_id",
            "carrier_driver_phone",
            "lng",
            "lat",
            "aoi_code",
            "order_status",
            "status_log",
            "gate_arrive_time",
            "entry_type",
            "parking_type",
            "cabinet_used",
            "is_elder_care",
            "distance",
            "fee",
        ),  # fmt: skip
        optional=(
            "partner_order_code",
            "carrier_driver_phone",
            "aoi_code",
            "gate_arrive_time",
            "entry_type",
            "parking_type",
            "cabinet_used",
            "is_elder_care",
            "distance",
            "fee",
        ),  # fmt: skip
    ),
    _order_platform(
        "sf",
        "SfClient",
        SourceSpec(
            name="sf",
            table="sf_orders",
            page_format="json",
            records_path="result.list",
            id_fields=("sf_order_id",),
            required=(
                ("sf_order_id", STRING),
                ("rider_id", OPAQUE_ID),
                ("user_lng", NUMBER),
                ("user_lat", NUMBER),
                # Without lbs_type the coordinates cannot be read (BD-09 or GCJ-02): required, not guessed.
                ("lbs_type", INTEGER),
                ("order_status", INTEGER),
            ),
            coordinates=Coordinates("user_lng", "user_lat", "number"),
            order_time=OrderTime("create_time", "local_text"),
        ),
        known=(
            "sf_order_id",
            "shop_order_id",
            "rider_id",
            "operator_phone",
            "user_lng",
            "user_lat",
            "lbs_type",
            "order_status",
            "create_time",
            "receive_time",
            "pickup_time",
            "gate_time",
            "complete_time",
            "entry_method",
            "parking",
            "locker",
            "elder_care",
            "distance_km",
            "total_price",
        ),  # fmt: skip
        optional=(
            "shop_order_id",
            "operator_phone",
            "receive_time",
            "pickup_time",
            "gate_time",
            "complete_time",
            "entry_method",
            "parking",
            "locker",
            "elder_care",
            "distance_km",
            "total_price",
        ),  # fmt: skip
    ),
    _order_platform(
        "shansong",
        "ShansongClient",
        SourceSpec(
            name="shansong",
            table="shansong_orders",
            page_format="json",
            records_path="data.list",
            id_fields=("orderNo",),
            required=(
                ("orderNo", STRING),
                ("courier.id", OPAQUE_ID),
                ("receiver.lng", NUMBER),
                ("receiver.lat", NUMBER),
            ),
            coordinates=Coordinates("receiver.lng", "receiver.lat", "number"),
            # Shansong has no separate placement time: status 20 (dispatching) is logged when the order
            # is placed, before any rider takes it, so its time is the order time.
            order_time=OrderTime("time", "iso8601", log="statusChangeLog", status_key="status", status_value=20),
        ),
        known=(
            "orderNo",
            "courier.id",
            "courier.mobile",
            "courier.name",
            "receiver.lng",
            "receiver.lat",
            "receiver.aoiId",
            "statusChangeLog",
            "gateTime",
            "accessMode",
            "parkingMode",
            "useLocker",
            "elderCare",
            "distance",
            "amount",
        ),  # fmt: skip
        optional=(
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
        ),  # fmt: skip
    ),
    # Both union exports share one account. The member export is a full snapshot (D's is enough); a
    # history run needs one per month end (union_coverage_monthly), the organisations only the last.
    Source(
        name="union_members",
        kind="union_export",
        connection_id="xihu_union",
        client="ingest.clients.union:UnionMembersClient",
        daily=(0,),
        history="month_ends_and_last",
        spec=SourceSpec(
            name="union_members",
            table="union_members",
            page_format="csv",
            records_path=None,
            id_fields=("会员编号", "所属工会编码"),
        ),
        staging="stg_union__members",
        suite="raw_union_members",
    ),
    Source(
        name="union_orgs",
        kind="union_export",
        connection_id="xihu_union",
        client="ingest.clients.union:UnionOrgsClient",
        daily=(0,),
        history="last",
        spec=SourceSpec(
            name="union_orgs",
            table="union_orgs",
            page_format="csv",
            records_path=None,
            id_fields=("工会编码",),
        ),
        staging="stg_union__orgs",
        suite=None,
    ),
    Source(
        name="stations",
        kind="station_log",
        connection_id="xihu_stations",
        client="ingest.clients.stations:StationsClient",
        daily=(1, 0),
        history="every_date",
        spec=SourceSpec(
            name="stations",
            table="station_events",
            page_format="ndjson",
            records_path=None,
            id_fields=("event_id",),
            event_time=OrderTime("ts", "iso8601"),
        ),
        staging="stg_stations__events",
        suite="raw_station_events",
        known=(
            "event_id",
            "station_id",
            "ts",
            "rider_phone",
            "type",
            "service",
            "meal_price_cents",
            "points",
            "reason",
            "team_id",
            "report_valid",
            "item",
        ),  # fmt: skip
        # Which fields a station event carries depends on its type, so none of them is counted missing.
        optional=(),
    ),
)

BY_NAME: dict[str, Source] = {s.name: s for s in REGISTRY}
# The landing and quarantine specs (ingest.sources, compiled by ingest.load) and the raw tables they fill.
SOURCES: dict[str, SourceSpec] = {s.name: s.spec for s in REGISTRY}
RAW_TABLES: tuple[str, ...] = tuple(s.table for s in REGISTRY)
NAMES: tuple[str, ...] = tuple(BY_NAME)
ORDER_PLATFORMS: tuple[str, ...] = tuple(s.name for s in REGISTRY if s.kind == "order_platform")


def source(name: str) -> Source:
    try:
        return BY_NAME[name]
    except KeyError:
        raise ValueError(f"unknown source {name!r}; known: {', '.join(NAMES)}") from None


def spec_for(name: str) -> SourceSpec:
    return source(name).spec


def dbt_registry() -> dict:
    """What dbt reads of the registry (macro ``source_registry()``)."""
    return {
        s.name: {
            "kind": s.kind,
            "table": s.table,
            "staging": s.staging,
            "known": list(s.known),
            "optional": list(s.optional),
        }
        for s in REGISTRY
    }


def dbt_macro() -> str:
    """The text of ``dbt_project/macros/source_registry.sql``."""
    body = json.dumps(dbt_registry(), ensure_ascii=False, indent=4)
    return (
        "{#- GENERATED by `python -m ingest.registry` from ingest/registry.py, the registry of sources: do not\n"
        "    edit; tests/test_registry.py fails when this file is stale. Per source: its kind, raw table,\n"
        "    staging model and contract fields (known, and the optional ones of those). -#}\n"
        "{% macro source_registry() -%}\n"
        f"    {{%- do return({body}) -%}}\n"
        "{%- endmacro %}\n"
    )


def main(argv: list[str]) -> int:
    """Write the dbt macro (``--check``: only say whether it is current)."""
    text = dbt_macro()
    if "--check" in argv:
        current = DBT_MACRO.exists() and DBT_MACRO.read_text(encoding="utf-8") == text
        print(f"{DBT_MACRO} is {'current' if current else 'STALE: run python -m ingest.registry'}")
        return 0 if current else 1
    DBT_MACRO.write_text(text, encoding="utf-8")
    print(f"wrote {DBT_MACRO}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
