"""A small raw warehouse written from hand-made source payloads, and a real `dbt build` over it.

The payloads follow each platform's wire encoding of sources.md (field names, codes, time formats, BD-09
for some sf points) and the raw contract of docs/internals.md (one row per record, the record as
``payload`` JSON, PII hashed in place), so the staging models are exercised on what the loader writes,
not on canonical rows. The orders are placed on the real seed units, so unit matching runs against the
committed registries. Every expected number in test_core_marts.py can be recomputed by hand from the
scenario below.
"""

from __future__ import annotations

import csv
import json
import shutil
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path

import duckdb
import pytest

from ingest.landing import PLATFORMS, past_correction_window
from ingest.pii import PiiHasher
from sandbox import sf as sandbox_sf
from sandbox.encode import ENCODERS
from tests.warehouse_helpers import DBT_PROJECT, WarehouseQueries, run_dbt, warehouse_path

CST = timezone(timedelta(hours=8))

REPORTING_DATE = date(2026, 11, 28)
# The marts of this test module and everything upstream of them (seeds included).
CORE_MARTS = (
    "unit_access_daily",
    "volunteer_activity_monthly",
    "friendly_effect",
    "street_coverage_monthly",
    "station_usage_daily",
)
RAW_ORDER_TABLES = ("meituan_orders", "eleme_orders", "sf_orders", "shansong_orders")
RAW_TABLES = RAW_ORDER_TABLES + ("union_members", "union_orgs", "station_events")
# When the scenario's days were fetched: after every correction window (tests/integration's SETTLED_CLOCK).
SETTLED = datetime(2026, 12, 31, tzinfo=UTC)

HASHER = PiiHasher("dbt-test-pii-key-of-at-least-32-bytes")
PHONES = [f"1380000{n:04d}" for n in range(1, 13)]


def rider(n: int) -> str:
    """The rider_key of test rider n (1-based): the keyed hash of their phone, as the ingest writes it."""
    return HASHER.phone(PHONES[n - 1])


# ------------------------------------------------------------------------------------------ seeds
def _read_seed(name: str) -> list[dict]:
    with open(DBT_PROJECT / "seeds" / f"{name}.csv", encoding="utf-8") as f:
        return list(csv.DictReader(f))


@dataclass(frozen=True)
class Unit:
    unit_id: str
    unit_type: str
    street_id: str
    lng: float
    lat: float
    friendly_since: date | None


def seed_units() -> dict[str, Unit]:
    return {
        row["unit_id"]: Unit(
            row["unit_id"],
            row["unit_type"],
            row["street_id"],
            float(row["lng"]),
            float(row["lat"]),
            date.fromisoformat(row["friendly_since"]) if row["friendly_since"] else None,
        )
        for row in _read_seed("units")
    }


def seed_crosswalk() -> dict[tuple[str, str], str]:
    """unit_id -> its AOI id, per platform."""
    return {(row["platform"], row["unit_id"]): row["aoi_id"] for row in _read_seed("aoi_crosswalk")}


@dataclass(frozen=True)
class Scenario:
    """The seed units the hand-made orders go to (chosen by rule, so the test follows the seeds)."""

    adopted: Unit  # residential compound adopted early enough for its whole DiD after window
    control: Unit  # residential compound never friendly
    busy: Unit  # a friendly unit of another type with a meituan AOI: the unit_access_daily case
    small: Unit  # a unit of a third type receiving 3 deliveries: suppressed


def choose_scenario() -> Scenario:
    units = seed_units()
    crosswalk = seed_crosswalk()
    ordered = sorted(units.values(), key=lambda u: u.unit_id)
    # After window [a+7, a+34] ends before the last-30-days window starts: a < R - 63.
    adopted = next(
        u
        for u in ordered
        if u.unit_type == "residential_compound"
        and u.friendly_since
        and date(2026, 7, 1) <= u.friendly_since < REPORTING_DATE - timedelta(days=63)
    )
    control = next(u for u in ordered if u.unit_type == "residential_compound" and u.friendly_since is None)
    busy = next(
        u
        for u in ordered
        if u.unit_type == "office_building"
        and u.friendly_since
        and u.friendly_since <= REPORTING_DATE
        and ("meituan", u.unit_id) in crosswalk
    )
    small = next(u for u in ordered if u.unit_type == "hospital")
    return Scenario(adopted, control, busy, small)


# ------------------------------------------------------------------------------------------ orders
@dataclass
class Order:
    """One order in canonical terms; encoded per platform by the functions below."""

    platform: str
    order_id: str
    rider: int
    lng: float
    lat: float
    status: str  # accepted, picked_up, delivered, cancelled
    ordered: datetime
    last100_min: float | None = None  # delivered orders: delivered - gate
    aoi_id: str | None = None
    entry_method: str | None = None
    parking: str = "none"
    locker_used: bool = False
    elderly_meal: bool = False
    bd09: bool = False  # sf only: send the point in Baidu BD-09

    @property
    def accepted(self) -> datetime:
        return self.ordered + timedelta(minutes=1)

    @property
    def picked_up(self) -> datetime | None:
        return self.ordered + timedelta(minutes=10) if self.status in ("picked_up", "delivered") else None

    @property
    def gate(self) -> datetime | None:
        return self.ordered + timedelta(minutes=25) if self.status == "delivered" else None

    @property
    def delivered(self) -> datetime | None:
        return self.gate + timedelta(minutes=self.last100_min) if self.status == "delivered" else None

    @property
    def cancelled(self) -> datetime | None:
        return self.ordered + timedelta(minutes=5) if self.status == "cancelled" else None


def canonical(o: Order) -> dict:
    """The order as the sandbox's world would produce it (docs/internals.md "World model")."""
    return {
        "order_id": o.order_id,
        "shop_order_id": "s-1",
        "rider_id": {"meituan": 1000, "eleme": 2000, "sf": 3000, "shansong": 4000}[o.platform] + o.rider,
        "rider_phone": rider(o.rider),
        "rider_name": HASHER.hash("测试", "name"),
        "dest_lng": o.lng,
        "dest_lat": o.lat,
        "aoi_id": o.aoi_id,
        "status": o.status,
        "t_ordered": o.ordered,
        "t_accepted": o.accepted,
        "t_at_shop": None,
        "t_picked_up": o.picked_up,
        "t_gate": o.gate,
        "t_delivered": o.delivered,
        "t_cancelled": o.cancelled,
        "entry_method": o.entry_method,
        "parking": o.parking,
        "locker_used": o.locker_used,
        "elderly_meal": o.elderly_meal,
        "distance_m": 1500,
        "fee_cents": 600,
    }


def encode(o: Order) -> dict:
    """The order as its platform sends it, encoded by the sandbox's own platform module, with the phone
    already replaced by its keyed hash. eleme's log also gets a repeated later "accepted" push that must
    not move the accepted time; sf sends the point in BD-09 exactly when the order says so."""
    if o.platform == "sf":
        return sandbox_sf.encode(canonical(o), bd09=o.bd09)
    rec = ENCODERS[o.platform](canonical(o))
    if o.platform == "eleme":
        rec["status_log"].append(
            {"order_status": 20, "push_time": int((o.accepted + timedelta(minutes=3)).timestamp() * 1000)}
        )
    return rec


def at(day: date, hh: int, mm: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hh, mm, tzinfo=CST)


def build_orders(s: Scenario) -> list[Order]:
    r = REPORTING_DATE
    aoi = seed_crosswalk()
    orders: list[Order] = []

    # Difference-in-differences: 20 plausible deliveries per window. Adopted 10 -> 6 min, control 9 -> 8.
    a = s.adopted.friendly_since
    for unit, before_min, after_min in ((s.adopted, 10.0, 6.0), (s.control, 9.0, 8.0)):
        for i in range(20):
            for tag, day, minutes in (
                ("b", a - timedelta(days=28 - i), before_min),
                ("a", a + timedelta(days=7 + i), after_min),
            ):
                orders.append(
                    Order(
                        "meituan",
                        f"did-{unit.unit_id}-{tag}{i}",
                        1 + i % 6,
                        unit.lng,
                        unit.lat,
                        "delivered",
                        at(day, 12),
                        last100_min=minutes,
                    )
                )
    # Implausible (150 min) and transition-week deliveries of the adopted unit: outside the estimate.
    orders.append(
        Order(
            "meituan",
            "did-implausible",
            1,
            s.adopted.lng,
            s.adopted.lat,
            "delivered",
            at(a + timedelta(days=10), 13),
            last100_min=150.0,
        )
    )
    orders.append(
        Order(
            "meituan",
            "did-transition",
            2,
            s.adopted.lng,
            s.adopted.lat,
            "delivered",
            at(a + timedelta(days=3), 13),
            last100_min=30.0,
        )
    )
    # Three recent deliveries to the adopted unit: the rider-hours figure's last 30 days.
    for n in (1, 2, 3):
        orders.append(
            Order(
                "eleme",
                f"recent-{n}",
                n,
                s.adopted.lng,
                s.adopted.lat,
                "delivered",
                at(r - timedelta(days=5), 18),
                last100_min=5.0,
            )
        )

    # The busy unit on the reporting date: every platform, every encoding.
    b = s.busy
    orders += [
        # AOI first: sent with the busy unit's AOI but the small unit's coordinates.
        Order(
            "meituan",
            "b-mt-1",
            1,
            s.small.lng,
            s.small.lat,
            "delivered",
            at(r, 11),
            2.0,
            aoi_id=aoi[("meituan", b.unit_id)],
            entry_method="code_scan",
            parking="rider_bay",
            locker_used=True,
        ),
        Order(
            "meituan",
            "b-mt-2",
            2,
            b.lng,
            b.lat,
            "delivered",
            at(r, 11, 30),
            3.0,
            entry_method="nfc_tap",
            parking="roadside",
            elderly_meal=True,
        ),
        Order("meituan", "b-mt-3", 1, b.lng, b.lat, "delivered", at(r, 12), 200.0),  # implausible
        Order(
            "eleme",
            "b-el-1",
            3,
            b.lng,
            b.lat,
            "delivered",
            at(r, 12, 10),
            4.0,
            entry_method="order_show",
            parking="rider_bay",
        ),
        Order("eleme", "b-el-2", 4, b.lng, b.lat, "delivered", at(r, 12, 20), 5.0, locker_used=True),
        Order(
            "sf",
            "b-sf-1",
            5,
            b.lng,
            b.lat,
            "delivered",
            at(r, 17),
            6.0,
            entry_method="code_scan",
            parking="rider_bay",
            elderly_meal=True,
            bd09=True,
        ),
        Order(
            "sf",
            "b-sf-2",
            6,
            b.lng,
            b.lat,
            "delivered",
            at(r, 17, 30),
            7.0,
            entry_method="registration",
            parking="roadside",
        ),
        # Placed at 23:50, delivered after midnight: still the reporting date's delivery.
        Order(
            "shansong",
            "b-ss-1",
            7,
            b.lng,
            b.lat,
            "delivered",
            at(r, 23, 50),
            8.0,
            entry_method="code_scan",
            parking="rider_bay",
        ),
        Order("shansong", "b-ss-2", 8, b.lng, b.lat, "cancelled", at(r, 19)),
    ]
    # The small unit: 3 deliveries by 3 riders on the reporting date (suppressed).
    for n in (1, 2, 3):
        orders.append(Order("shansong", f"small-{n}", n, s.small.lng, s.small.lat, "delivered", at(r, 9 + n), 4.0))
    # A destination in no unit's radius (Shanghai: inside China, so loaded, but unmatched).
    orders.append(Order("meituan", "nowhere-1", 9, 121.47, 31.23, "delivered", at(r, 15), 5.0))
    # Orders the incremental test corrects later: one inside the reprocess window, one outside it.
    orders.append(Order("meituan", "late-1", 10, b.lng, b.lat, "accepted", at(r - timedelta(days=1), 20)))
    orders.append(Order("meituan", "old-1", 10, b.lng, b.lat, "accepted", at(r - timedelta(days=40), 20)))
    return orders


# ------------------------------------------------------------------------------------------ stations
def station_event(event_id: str, station: str, ts: datetime, who: int, kind: str, **extra) -> dict:
    return {
        "event_id": event_id,
        "station_id": station,
        "ts": ts.isoformat(timespec="seconds"),
        "rider_phone": rider(who),
        "type": kind,
        **extra,
    }


def build_station_files() -> dict[date, list[dict]]:
    """Station log lines per file date (the file of D mostly holds D's events)."""
    r = REPORTING_DATE
    today: list[dict] = []
    for n, stay in zip((1, 2, 3, 4, 5), (10, 20, 30, 40, 50), strict=True):
        today.append(station_event(f"in-{n}", "NF-0001", at(r, 10), n, "check_in"))
        today.append(station_event(f"out-{n}", "NF-0001", at(r, 10, stay), n, "check_out"))
        today.append(station_event(f"chg-{n}", "NF-0001", at(r, 10, 5), n, "service", service="charging"))
        today.append(
            station_event(
                f"earn-{n}", "NF-0001", at(r, 9), n, "points_earn", points=10, reason="volunteer_event", team_id="VT-01"
            )
        )
    today += [
        station_event("in-6", "NF-0001", at(r, 11), 6, "check_in"),  # never checks out
        station_event("water-1", "NF-0001", at(r, 10, 6), 1, "service", service="water"),
        station_event("meal-1", "NF-0001", at(r, 12), 1, "service", service="meal", meal_price_cents=1500),
        station_event("meal-2", "NF-0001", at(r, 12), 2, "service", service="meal", meal_price_cents=2500),
        station_event(
            "haz-1",
            "NF-0001",
            at(r, 9, 30),
            1,
            "points_earn",
            points=5,
            reason="hazard_report",
            team_id="VT-01",
            report_valid=True,
        ),
        station_event(
            "haz-2",
            "NF-0001",
            at(r, 9, 30),
            2,
            "points_earn",
            points=5,
            reason="hazard_report",
            team_id="VT-01",
            report_valid=False,
        ),
        station_event(
            "assist-1", "NF-0001", at(r, 9, 40), 3, "points_earn", points=20, reason="emergency_assist", team_id="VT-01"
        ),
        station_event("redeem-1", "NF-0001", at(r, 16), 1, "points_redeem", points=5, item="towel"),
        station_event("redeem-2", "NF-0001", at(r, 16), 2, "points_redeem", points=3, item="soap"),
        # Late: the previous day's check-in, delivered in this day's file.
        station_event("late-in", "NF-0002", at(r - timedelta(days=1), 23, 59), 7, "check_in"),
    ]
    # At-least-once delivery: a copy of a check-in arrives again in the next day's file.
    return {r: today, r + timedelta(days=1): [dict(today[0])]}


# ------------------------------------------------------------------------------------------ raw
def create_raw_schema(con: duckdb.DuckDBPyConnection) -> None:
    """The raw contract of docs/internals.md."""
    con.execute("create schema if not exists raw")
    for table in RAW_TABLES:
        con.execute(
            f"create table if not exists raw.{table} (record_id varchar, business_date date, payload json, "
            "fetch_id varchar, page_file varchar, record_no integer, loaded_at timestamptz)"
        )
    con.execute(
        "create table if not exists raw.quarantine (source varchar, business_date date, fetch_id varchar, "
        "page_file varchar, record_no integer, reason varchar, raw_text varchar, quarantined_at timestamptz)"
    )
    con.execute(
        "create table if not exists raw.load_audit (source varchar, business_date date, fetch_id varchar, "
        "fetched bigint, loaded bigint, quarantined bigint, loaded_at timestamptz, "
        "duplicates_removed bigint default 0, fetched_at timestamptz, past_correction_window boolean)"
    )


# The loader's audit row without duplicates_removed (0 unless a test says otherwise).
INSERT_LOAD_AUDIT = (
    "insert into raw.load_audit (source, business_date, fetch_id, fetched, loaded, quarantined, "
    "loaded_at) values (?, ?, ?, ?, ?, ?, ?)"
)


def replace_order_partition(con: duckdb.DuckDBPyConnection, orders: list[Order], fetch_id: str) -> None:
    """Load orders as the loader does: whole (platform, business date) partitions replaced."""
    loaded_at = datetime.now(UTC)
    by_partition: dict[tuple[str, date], list[Order]] = {}
    for o in orders:
        by_partition.setdefault((o.platform, o.ordered.astimezone(CST).date()), []).append(o)
    for (platform, day), part in by_partition.items():
        con.execute(f"delete from raw.{platform}_orders where business_date = ?", [day])
        con.executemany(
            f"insert into raw.{platform}_orders values (?, ?, ?, ?, 'page-00001.json.gz', ?, ?)",
            [
                [o.order_id, day, json.dumps(encode(o), ensure_ascii=False), fetch_id, n, loaded_at]
                for n, o in enumerate(part, start=1)
            ],
        )


def load_station_files(con: duckdb.DuckDBPyConnection, files: dict[date, list[dict]]) -> None:
    loaded_at = datetime.now(UTC)
    for day, events in files.items():
        con.executemany(
            "insert into raw.station_events values (?, ?, ?, ?, 'page-00001.ndjson.gz', ?, ?)",
            [[e["event_id"], day, json.dumps(e), f"fetch-{day}", n, loaded_at] for n, e in enumerate(events, start=1)],
        )


# ------------------------------------------------------------------------------------------ dbt
def run_dbt_build(data_dir: Path, business_date: date, *extra: str) -> str:
    """`dbt build` of the core marts and their parents against data_dir's warehouse (own target/log paths);
    returns its output."""
    # The dims only the marts' relationships tests read are named too; "cautious" keeps out the tests of
    # other marts (another engineer's) that merely point at a selected model.
    select = [f"+{mart}" for mart in CORE_MARTS] + [
        "+dim_stations",
        "+dim_streets",
        "+dim_units",
        "+dim_volunteer_teams",
    ]
    return run_dbt(data_dir, "build", business_date, "--select", *select, "--indirect-selection", "cautious", *extra)


@dataclass
class BuiltWarehouse(WarehouseQueries):
    data_dir: Path
    scenario: Scenario
    orders: list[Order]
    build_output: str
    _con: duckdb.DuckDBPyConnection | None = field(default=None, repr=False)

    @property
    def path(self) -> Path:
        return warehouse_path(self.data_dir)


def record_loads(
    con: duckdb.DuckDBPyConnection, sources: Iterable[str], days: Iterable[date], fetch_id: str, fetched_at: datetime
) -> None:
    """The loader's raw.load_audit row of each (source, day), counts from what raw holds (an empty partition
    is a load of 0 records), fetched at ``fetched_at`` (past the correction window as the loader decides)."""
    for source in sources:
        table = "station_events" if source == "stations" else f"{source}_orders"
        for day in days:
            n = con.execute(f"select count(*) from raw.{table} where business_date = ?", [day]).fetchone()[0]
            con.execute(
                "insert into raw.load_audit (source, business_date, fetch_id, fetched, loaded, quarantined, "
                "loaded_at, fetched_at, past_correction_window) values (?, ?, ?, ?, ?, 0, now(), ?, ?)",
                [source, day, fetch_id, n, n, fetched_at, past_correction_window(source, day, fetched_at)],
            )


def write_raw_warehouse(data_dir: Path, scenario: Scenario, orders: list[Order]) -> None:
    (data_dir / "warehouse").mkdir(parents=True, exist_ok=True)
    with duckdb.connect(str(data_dir / "warehouse" / "xihu.duckdb")) as con:
        create_raw_schema(con)
        replace_order_partition(con, orders, fetch_id="fetch-1")
        station_files = build_station_files()
        load_station_files(con, station_files)
        # Every platform was fetched for every day of the scenario, long after it (all final); the station
        # files of the days they cover (the last, R+1, provisional: no file of R+2).
        first, last = (f(o.ordered.astimezone(CST).date() for o in orders) for f in (min, max))
        record_loads(
            con, PLATFORMS, [first + timedelta(days=i) for i in range((last - first).days + 1)], "fetch-1", SETTLED
        )
        record_loads(con, ["stations"], station_files, "fetch-1", SETTLED)


@pytest.fixture(scope="session")
def built(tmp_path_factory) -> BuiltWarehouse:
    """The hand-made raw warehouse after one full `dbt build` for the reporting date."""
    data_dir = tmp_path_factory.mktemp("dbt_core")
    scenario = choose_scenario()
    orders = build_orders(scenario)
    write_raw_warehouse(data_dir, scenario, orders)
    return BuiltWarehouse(data_dir, scenario, orders, run_dbt_build(data_dir, REPORTING_DATE))


@pytest.fixture
def built_copy(built, tmp_path) -> BuiltWarehouse:
    """A private copy of the built warehouse for tests that load more data and build again."""
    data_dir = tmp_path / "data"
    (data_dir / "warehouse").mkdir(parents=True)
    shutil.copy(built.path, data_dir / "warehouse" / "xihu.duckdb")
    return BuiltWarehouse(data_dir, built.scenario, list(built.orders), built.build_output)
