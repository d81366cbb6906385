"""The organisation, service-circle and data-health marts, built by dbt on a small hand-written warehouse.

Why this shape: the marts' figures must be recomputable by hand (indicators.md), so the raw payloads here
are few and every expected number is derived in the comments or, for the geometry, by brute force in
Python over the same records. The warehouse is real DuckDB with the loader's own raw DDL, dbt runs the real
project (seeds included) with its own target and log paths, and the run happens twice: first with one union
export and no audit tables (the gate and publisher have not run yet), then with a second export and the
audit tables, so the membership snapshot has history and pipeline_runs sees both states.
"""

from __future__ import annotations

import csv
import json
import math
import os
import random
import subprocess
import sys
from datetime import date, datetime, time, timedelta, timezone
from pathlib import Path

import duckdb
import pytest

from ingest.load import raw_schema_ddl
from ingest.pii import PiiHasher
from ingest.settings import dbt_vars

PROJECT = Path(__file__).resolve().parents[2] / "dbt_project"
DBT = Path(sys.executable).parent / "dbt"
CST = timezone(timedelta(hours=8))
HASHER = PiiHasher("org-health-test-pii-key-of-at-least-32-bytes")
K_ANON = 5  # dbt_project.yml var k_anon
RADIUS_M = 1000  # dbt_project.yml var service_radius_m
EARTH_RADIUS_M = 6371008.8

MY_MODELS = [
    "stg_union__members",
    "stg_union__orgs",
    "union_members_snapshot",
    "union_coverage_monthly",
    "service_circle_daily",
    "district_daily_kpis",
    "pipeline_runs",
]
OCT30, OCT31, NOV1, NOV2 = date(2026, 10, 30), date(2026, 10, 31), date(2026, 11, 1), date(2026, 11, 2)
LOADED_AT = datetime(2026, 11, 3, 1, 40, tzinfo=CST)


def rider(i: int) -> str:
    """Rider i's key: the hash of a synthetic phone, exactly as the ingest writes it in every source."""
    return HASHER.phone(f"1380000{i:04d}")


def distance_m(lng1: float, lat1: float, lng2: float, lat2: float) -> float:
    p1, p2 = math.radians(lat1), math.radians(lat2)
    a = math.sin((p2 - p1) / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(math.radians(lng2 - lng1) / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(math.sqrt(a))


def seed(name: str) -> list[dict]:
    with open(PROJECT / "seeds" / f"{name}.csv", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def epoch(day: date, hour: int, minute: int = 0) -> int:
    return int(datetime.combine(day, time(hour, minute), CST).timestamp())


def meituan_order(order_id: str, day: date, rider_no: int, lng: float, lat: float) -> dict:
    return {
        "order_id": order_id,
        "courier_id": f"c{rider_no}",
        "courier_phone": rider(rider_no),
        "poi_id": "p1",
        "recipient_lng": lng,
        "recipient_lat": lat,
        "recipient_aoi_id": None,
        "status": 50,
        "platform_order_time": epoch(day, 12),
        "grab_time": epoch(day, 12, 1),
        "fetch_time": epoch(day, 12, 10),
        "gate_arrive_time": epoch(day, 12, 20),
        "arrive_time": epoch(day, 12, 25),
        "entry_method": "code_scan",
        "parking": "rider_bay",
        "locker_used": False,
        "elderly_meal": False,
        "distance_m": 1200,
        "fee_cents": 650,
    }


def member(
    no: str,
    union: str,
    status: str,
    changed: str,
    joined: str,
    rider_no: int | None,
    occupation: str = "外卖配送员",
    platform: str = "美团",
    street: str = "北山街道",
    id_check: str = "valid",
) -> dict:
    """One row of the union export as the loader stores it (all strings, PII hashed, derived columns)."""
    return {
        "会员编号": no,
        "姓名": HASHER.hash(f"name{no}", "name"),
        "性别": "男",
        "身份证号": HASHER.hash(f"33010619900101{no}", "id"),
        "手机号": rider(rider_no) if rider_no else None,
        "申报出生年份": "1990",
        "所属工会编码": union,
        "入会日期": joined,
        "会员状态": status,
        "状态变更日期": changed,
        "职业类别": occupation,
        "所属平台": platform,
        "居住街道": street,
        "出生年份": "1990",
        "性别代码": "M",
        "身份证校验": id_check,
    }


ORGS = [
    {
        "工会编码": "ST01",
        "工会名称": "西湖区新就业形态街道总工会",
        "上级工会编码": "",
        "类型": "街道总工会",
        "成立日期": "2020-01-01",
    },
    {
        "工会编码": "FD01",
        "工会名称": "外卖配送行业工会联合会",
        "上级工会编码": "ST01",
        "类型": "行业工会联合会",
        "成立日期": "2021/3/1",
    },
    {
        "工会编码": "FR01",
        "工会名称": "网约车行业工会联合会",
        "上级工会编码": "ST01",
        "类型": "行业工会联合会",
        "成立日期": "20210301",
    },
    {
        "工会编码": "EU01",
        "工会名称": "美团西湖站点工会",
        "上级工会编码": "FD01",
        "类型": "企业工会",
        "成立日期": "2022-05-01",
    },
    {
        "工会编码": "EU02",
        "工会名称": "滴滴西湖工会",
        "上级工会编码": "FR01",
        "类型": "企业工会",
        "成立日期": "2022-05-01",
    },
]

# Export of 31 October. Riders 1-5 deliver on meituan and are members; rider 6 delivers and is not one.
EXPORT_OCT31 = [
    member("M1", "EU01", "在册", "2025/8/3", "2025/8/3", 1),
    member("M2", "EU01", "在册", "20261005", "20261005", 2),  # joined in October
    member("M3", "EU01", "在册", "2026-10-10", "2026-10-10", 3),  # joined in October
    member("M4", "EU01", "退会", "2026/10/20", "2024-01-01", 4),  # withdrew in October
    member(
        "M5",
        "EU02",
        "在册",
        "2023-06-01",
        "2023-06-01",
        None,  # no phone, never an active rider
        occupation="网约车司机",
        platform="滴滴",
        street="西溪街道",
        id_check="bad_check_digit",
    ),
    # a transfer on one day: listed under both unions, the row in good standing wins
    member("M6", "EU02", "退会", "2026-10-15", "2024-03-01", 5),
    member("M6", "EU01", "在册", "2026-10-15", "2024-03-01", 5),
]
# Export of 2 November: M3 auto-withdrawn on 1 November, rider 6 joins as M7.
EXPORT_NOV2 = [row for row in EXPORT_OCT31 if row["会员编号"] != "M3"] + [
    member("M3", "EU01", "自动退会", "20261101", "2026-10-10", 3),
    member("M7", "EU01", "在册", "2026-11-01", "2026-11-01", 6),
]


def insert_records(con, table: str, day: date, fetch_id: str, records: list[tuple[str, dict]]) -> None:
    con.executemany(
        f"insert into raw.{table} values (?, ?, ?, ?, 'page-00001.json.gz', ?, ?)",
        [
            (rid, day, json.dumps(payload, ensure_ascii=False), fetch_id, n, LOADED_AT)
            for n, (rid, payload) in enumerate(records, start=1)
        ],
    )


def export_records(rows: list[dict]) -> list[tuple[str, dict]]:
    return [(row["会员编号"] + row["所属工会编码"], row) for row in rows]


class Scenario:
    """The circle scenario is placed around a rest station T of the real seeds opened before September 2026
    (months apart from the coverage scenario's October and November) that has points 600 m from it with no
    other station within R: deliveries there are out of reach on the day before T opened (d1) and within
    reach on its opening day (d2), which checks the opening-date rule, not only the distance."""

    def __init__(self) -> None:
        rest = [s for s in seed("stations") if s["station_kind"] == "rest_station"]
        self.stations = [
            (s["station_id"], float(s["lng"]), float(s["lat"]), date.fromisoformat(s["opened_on"])) for s in rest
        ]
        candidates = sorted((s for s in self.stations if s[3] < date(2026, 9, 1)), key=lambda s: s[3], reverse=True)
        for station_id, lng, lat, opened in candidates:
            lonely = [
                p
                for p in self._ring(lng, lat, 600)
                if all(
                    distance_m(*p, s_lng, s_lat) > RADIUS_M
                    for other, s_lng, s_lat, _ in self.stations
                    if other != station_id
                )
            ]
            if len(lonely) >= 3:
                self.t_lng, self.t_lat, self.d2, self.lonely = lng, lat, opened, lonely[:3]
                break
        self.d1 = self.d2 - timedelta(days=1)
        self.unit = seed("units")[0]
        rng = random.Random(7)
        # 6 riders (11-16) x 30 deliveries a day within ~2 km of T, the lonely points, and two points due
        # east of T at 995 m and 1005 m, which straddle the radius and usually a grid-cell edge.
        east = self._ring(self.t_lng, self.t_lat, 995)[0], self._ring(self.t_lng, self.t_lat, 1005)[0]
        self.orders: list[tuple[str, date, int, float, float]] = []
        for day in (self.d1, self.d2):
            points = (
                [(self.t_lng + rng.uniform(-0.02, 0.02), self.t_lat + rng.uniform(-0.02, 0.02)) for _ in range(180)]
                + self.lonely
                + list(east)
            )
            for n, (lng, lat) in enumerate(points):
                self.orders.append((f"C{day:%m%d}-{n:03d}", day, 11 + n % 6, lng, lat))

    @staticmethod
    def _ring(lng: float, lat: float, metres: float) -> list[tuple[float, float]]:
        """36 points at ``metres`` around (lng, lat), the first due east."""
        d_lat = math.degrees(metres / EARTH_RADIUS_M)
        d_lng = d_lat / math.cos(math.radians(lat))
        return [
            (lng + d_lng * math.cos(math.radians(a)), lat + d_lat * math.sin(math.radians(a)))
            for a in range(0, 360, 10)
        ]

    def check_ins(self) -> list[tuple[int, date]]:
        """(rider, day) check-ins: riders 11, 14, 15 and 16 on the first day of d2's 30-day window, rider 12
        the day before it (inside d1's window only), rider 13 on d2 itself (after d1). So d1 and d2 each
        have K = 5 visitors, published, and a window one day longer or shorter at either end changes d2's
        count (6, or 1 and suppressed)."""
        first = self.d2 - timedelta(days=29)
        return [(11, first), (14, first), (15, first), (16, first), (12, first - timedelta(days=1)), (13, self.d2)]

    def within_reach(self, day: date, lng: float, lat: float) -> bool:
        return any(
            opened <= day and distance_m(lng, lat, s_lng, s_lat) <= RADIUS_M
            for _, s_lng, s_lat, opened in self.stations
        )


def dbt(data_dir: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "XIHU_DATA_DIR": str(data_dir), "DO_NOT_TRACK": "1"}
    return subprocess.run(
        [
            str(DBT),
            *args,
            "--profiles-dir",
            ".",
            "--vars",
            json.dumps(dbt_vars()),
            "--target-path",
            str(data_dir / "target"),
            "--log-path",
            str(data_dir / "logs"),
        ],
        cwd=PROJECT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )


def build(data_dir: Path) -> None:
    """Models, seeds and the snapshot this area reads or writes, then this area's data and unit tests.

    Other areas' tests are left to their own suites: their failures on this tiny data must not skip the
    models under test here."""
    parents = " ".join(f"+{name}" for name in MY_MODELS)
    # the dims: no model here reads them, but the relationships tests of these marts do
    done = dbt(
        data_dir,
        "build",
        "--select",
        parents,
        "+dim_streets",
        "+dim_units",
        "+dim_union_orgs",
        "--exclude-resource-type",
        "test",
        "unit_test",
    )
    assert done.returncode == 0, done.stdout[-6000:]
    tested = dbt(data_dir, "test", "--select", " ".join(MY_MODELS))
    assert tested.returncode == 0, tested.stdout[-6000:]


def query(warehouse: Path, sql: str, params: list | None = None) -> list[tuple]:
    with duckdb.connect(str(warehouse), read_only=True) as con:
        return con.execute(sql, params or []).fetchall()


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("org_health")
    warehouse = data_dir / "warehouse" / "xihu.duckdb"
    warehouse.parent.mkdir(parents=True)
    scenario = Scenario()
    unit_lng, unit_lat = float(scenario.unit["lng"]), float(scenario.unit["lat"])

    with duckdb.connect(str(warehouse)) as con:
        con.execute(raw_schema_ddl())
        # coverage riders: 1-6 deliver on 30/31 October and 1/2 November at the first unit's centre
        for day in (OCT30, OCT31, NOV1, NOV2):
            insert_records(
                con,
                "meituan_orders",
                day,
                "run_b",
                [
                    (f"K{day:%m%d}-{i}", meituan_order(f"K{day:%m%d}-{i}", day, i, unit_lng, unit_lat))
                    for i in range(1, 7)
                ],
            )
        for day in (scenario.d1, scenario.d2):
            insert_records(
                con,
                "meituan_orders",
                day,
                "run_circle",
                [(oid, meituan_order(oid, d, r, lng, lat)) for oid, d, r, lng, lat in scenario.orders if d == day],
            )
        check_ins = scenario.check_ins() + [(1, NOV1)]
        events = [
            (
                f"e{n}",
                {
                    "event_id": f"e{n}",
                    "station_id": "NF-0001",
                    "type": "check_in",
                    "ts": f"{day.isoformat()}T09:00:00+08:00",
                    "rider_phone": rider(r),
                },
            )
            for n, (r, day) in enumerate(check_ins)
        ] + [
            (
                "p1",
                {
                    "event_id": "p1",
                    "station_id": "NF-0001",
                    "type": "points_earn",
                    "points": 10,
                    "reason": "elderly_meal",
                    "team_id": "VT-01",
                    "ts": "2026-11-01T10:00:00+08:00",
                    "rider_phone": rider(1),
                },
            ),
            (
                "p2",
                {
                    "event_id": "p2",
                    "station_id": "NF-0001",
                    "type": "points_redeem",
                    "points": 4,
                    "item": "towel",
                    "ts": "2026-11-01T11:00:00+08:00",
                    "rider_phone": rider(1),
                },
            ),
        ]
        insert_records(con, "station_events", NOV2, "run_b", events)
        insert_records(con, "union_orgs", OCT31, "run_a", [(o["工会编码"], o) for o in ORGS])
        insert_records(con, "union_members", OCT31, "run_a", export_records(EXPORT_OCT31))
        # run_a loaded 1 November with one bad record; run_b re-pulled it (the D-1 re-pull) and replaced it
        # run_b's 2 November: one record quarantined, one further copy of a loaded record removed
        con.executemany(
            "insert into raw.load_audit (source, business_date, fetch_id, fetched, loaded, "
            "quarantined, loaded_at, duplicates_removed) values (?, ?, ?, ?, ?, ?, ?, ?)",
            [
                ("meituan", NOV1, "run_a", 7, 6, 1, LOADED_AT - timedelta(days=1), 0),
                ("meituan", NOV1, "run_b", 7, 7, 0, LOADED_AT, 0),
                ("meituan", NOV2, "run_b", 8, 6, 1, LOADED_AT, 1),
                ("union_members", NOV2, "run_b", 8, 8, 0, LOADED_AT, 0),
            ],
        )
        # The daily figures' other sources were fetched too, long after the days (final: their status is
        # int_source_date_status's), as one run of its own, run_circle, left out of the pipeline_runs checks:
        # the platforms without orders here (empty partitions) on 1/2 November and every platform on the
        # service circle's days; the station log on 1/2 November and on the 30 days of d1's and d2's windows.
        settled = datetime(2026, 12, 31, tzinfo=CST)
        circle_days = [scenario.d2 - timedelta(days=n) for n in range(31)]
        con.executemany(
            "insert into raw.load_audit (source, business_date, fetch_id, fetched, loaded, quarantined, loaded_at, "
            "duplicates_removed, fetched_at, past_correction_window) values (?, ?, 'run_circle', ?, ?, 0, ?, 0, ?, "
            "true)",
            [(p, day, 0, 0, LOADED_AT, settled) for p in ("eleme", "sf", "shansong") for day in (NOV1, NOV2)]
            + [
                (p, day, n, n, LOADED_AT, settled)
                for p in ("meituan", "eleme", "sf", "shansong")
                for day in (scenario.d1, scenario.d2)
                for n in [sum(o[1] == day for o in scenario.orders) if p == "meituan" else 0]
            ]
            + [("stations", day, 0, 0, LOADED_AT, settled) for day in [NOV1, NOV2, *circle_days]],
        )
        con.executemany(
            "insert into raw.quarantine values (?, ?, ?, 'page-00001.json.gz', ?, ?, '{}', ?)",
            [
                ("meituan", NOV1, "run_a", 3, "bad_coordinates", LOADED_AT),
                ("meituan", NOV2, "run_b", 4, "wrong_type:recipient_lng", LOADED_AT),
            ],
        )

    build(data_dir)
    runs_before_gates = query(
        warehouse,
        "select run_id, business_date, publication_status, raw_suites "
        "from marts.pipeline_runs where run_id <> 'run_circle' order by all",
    )

    with duckdb.connect(str(warehouse)) as con:
        insert_records(con, "union_members", NOV2, "run_b", export_records(EXPORT_NOV2))
        con.execute("""
            create schema if not exists audit;
            create table audit.gate_results (run_id varchar, business_date date, suite varchar, stage varchar,
                evaluated integer, failed_critical integer, failed_warning integer, success boolean,
                checked_at timestamp);
            create table audit.publications (run_id varchar, business_date date, version varchar,
                published_at timestamp, status varchar);
            insert into audit.gate_results values
                ('run_b', '2026-11-02', 'raw_orders', 'raw', 10, 0, 1, true, '2026-11-03 01:45:00'),
                ('run_b', '2026-11-02', 'raw_union', 'raw', 4, 0, 0, true, '2026-11-03 01:45:00'),
                ('run_b', '2026-11-02', 'marts_core', 'marts', 20, 1, 2, false, '2026-11-03 01:55:00');
            insert into audit.publications values
                ('run_b', '2026-11-02', null, '2026-11-03 01:56:00', 'blocked'),
                ('run_c', '2026-11-02', '20261103T0300', '2026-11-03 03:00:00', 'published');
        """)
    build(data_dir)
    return {"warehouse": warehouse, "scenario": scenario, "runs_before_gates": runs_before_gates}


COVERAGE_COLUMNS = (
    "active_riders, active_riders_in_good_standing, coverage_rate, members_in_good_standing, "
    "new_members, withdrawals, expulsions, suppressed_cells, membership_as_of"
)


def coverage_row(built, month: date, platform: str, occupation: str, basis: str, street_id: str, level: str, org: str):
    rows = query(
        built["warehouse"],
        f"""
        select {COVERAGE_COLUMNS} from marts.union_coverage_monthly
        where month = ? and platform = ? and occupation = ? and street_basis = ? and street_id = ?
          and org_level = ? and union_org_code = ?""",
        [month, platform, occupation, basis, street_id, level, org],
    )
    assert len(rows) == 1, rows
    return rows[0]


def test_union_staging_dedupes_transfers_and_flags_id_defects(built):
    rows = query(
        built["warehouse"],
        """
        select member_id, union_code, status, union_rows, id_check, rider_key is null
        from staging.stg_union__members where snapshot_date = '2026-10-31' order by member_id""",
    )
    assert [r[0] for r in rows] == ["M1", "M2", "M3", "M4", "M5", "M6"]  # 7 export rows, M6 once
    assert rows[5][1:4] == ("EU01", "in_good_standing", 2)
    assert rows[4][4:] == ("bad_check_digit", True)  # kept and flagged, not dropped


def test_coverage_october_residence_cell_by_hand(built):
    # Riders 1-5 are members M1, M2, M3, M4, M6 (via hashed phone); M4 withdrew on 20 Oct.
    # In good standing at month end: M1, M2, M3, M6; new: M2, M3; withdrawn: M4. A residence row carries
    # the member-only counts and no rider figures; 4, 2 and 1 members are fewer than K people, so NULL and
    # named; the expulsions, 0, describe no one.
    # 居住街道 北山街道 is street S01
    row = coverage_row(built, date(2026, 10, 1), "meituan", "food_delivery_rider", "residence", "S01", "all", "all")
    assert row[:7] == (None, None, None, None, None, None, 0) and row[8] == OCT31
    assert named(row[7]) == {"members_in_good_standing", "new_members", "withdrawals"}


def named(suppressed_cells: str) -> set[str]:
    return set(filter(None, suppressed_cells.split(",")))


def test_coverage_november_uses_the_later_export(built):
    # 2 Nov export: M3 auto-withdrawn on 1 Nov, rider 6 joined as M7. Good standing M1 M2 M6 M7: 4, with
    # 1 new member and 1 withdrawal, all fewer than K people; the same at their union and federation.
    for level, org in (("all", "all"), ("union", "EU01"), ("industry_federation", "FD01")):
        row = coverage_row(built, date(2026, 11, 1), "meituan", "food_delivery_rider", "residence", "S01", level, org)
        assert row[:7] == (None, None, None, None, None, None, 0) and row[8] == NOV2, (level, row)
        assert named(row[7]) == {"members_in_good_standing", "new_members", "withdrawals"}, level


def work_streets_by_hand(built, month: date) -> dict[tuple[str, str], str]:
    """(platform, rider_key) -> work street_id, recounted in Python from the matched deliveries and the
    seeds: the street with most unit deliveries, ties to the street whose name sorts first, none ->
    no_unit_delivery."""
    street_of = {
        u["unit_id"]: (s["street_name"], s["street_id"])
        for u in seed("units")
        for s in seed("streets")
        if u["street_id"] == s["street_id"]
    }
    votes: dict[tuple[str, str], dict[tuple[str, str], int]] = {}
    for platform, rider_key, unit_id in query(
        built["warehouse"],
        """
            select platform, rider_key, unit_id from intermediate.int_orders_matched
            where is_delivered and rider_key is not null and date_trunc('month', business_date) = ?""",
        [month],
    ):
        tally = votes.setdefault((platform, rider_key), {})
        if unit_id in street_of:
            tally[street_of[unit_id]] = tally.get(street_of[unit_id], 0) + 1
    return {
        key: min(tally, key=lambda s: (-tally[s], s))[1] if tally else "no_unit_delivery"
        for key, tally in votes.items()
    }


def test_coverage_by_work_street_recounted(built):
    # Riders 1-6 deliver at the first unit's centre, so they work in its street; the service-circle riders
    # 11-16 deliver at random points and work wherever most of their unit deliveries went. A published figure
    # equals the recount; a count of 1..K-1 people is NULL; every NULL figure is named in suppressed_cells.
    first_unit_street = seed("units")[0]["street_id"]
    for month, good_standing in ((date(2026, 10, 1), {1, 2, 3, 5}), (date(2026, 11, 1), {1, 2, 5, 6})):
        work = work_streets_by_hand(built, month)
        assert all(work["meituan", rider(i)] == first_unit_street for i in range(1, 7))
        expected: dict[tuple[str, str], list[int]] = {}
        for (platform, rider_key), street in work.items():
            cell = expected.setdefault((platform, street), [0, 0])
            cell[0] += 1
            cell[1] += rider_key in {rider(i) for i in good_standing}
        got = {
            (r[0], r[1]): r[2:]
            for r in query(
                built["warehouse"],
                """
            select platform, street_id, active_riders, active_riders_in_good_standing, coverage_rate,
                   suppressed_cells, members_in_good_standing, new_members
            from marts.union_coverage_monthly
            where month = ? and street_basis = 'work' and org_level = 'all'""",
                [month],
            )
        }
        assert set(got) == set(expected)
        for key, (active, good) in expected.items():
            published_active, published_good, rate, cells, *members = got[key]
            for column, value, truth in (
                ("active_riders", published_active, active),
                ("active_riders_in_good_standing", published_good, good),
                ("coverage_rate", rate, good / active),
            ):
                if value is None:
                    assert column in named(cells), (key, column)
                else:
                    assert value == pytest.approx(truth), (key, column)
            for count, value in ((active, published_active), (good, published_good)):
                assert not 0 < count < K_ANON or value is None, key
            assert members == [None, None], key  # member-only counts live on residence rows
        # the first unit's street holds riders 1-6 (and any circle rider who worked there): 4 of them in
        # good standing, a rate that no longer counts only members
        assert expected["meituan", first_unit_street][0] >= 6


def test_coverage_district_row_and_small_cells_suppressed(built):
    # October, whole district: riders 1-6 active (rider 6 not a member) and the service-circle riders
    # 11-16; 4 in good standing (fewer than K: NULL with the rate); M5 counts as a member in good standing
    # who delivered nothing, so 5 members.
    active = len({rider_key for _, rider_key in work_streets_by_hand(built, date(2026, 10, 1))})
    row = coverage_row(built, date(2026, 10, 1), "all", "all", "all", "all", "district", "all")
    assert row[0] in (active, None) and row[1:3] == (None, None)
    assert row[3] in (5, None) and {"active_riders_in_good_standing", "coverage_rate"} <= named(row[7])
    for column, value in zip(("active_riders", "members_in_good_standing"), (row[0], row[3]), strict=True):
        assert value is not None or column in named(row[7])
    # M5 alone (didi, 西溪街道: S02) is a member cell of one person: hidden; its 0 new members, withdrawals and
    # expulsions count no one and are published
    didi = coverage_row(built, date(2026, 10, 1), "didi", "ride_hailing_driver", "residence", "S02", "all", "all")
    assert didi[3:7] == (None, 0, 0, 0) and named(didi[7]) == {"members_in_good_standing"}


def test_membership_snapshot_keeps_history_by_export_date(built):
    rows = query(
        built["warehouse"],
        """
        select status, cast(dbt_valid_from as date), cast(dbt_valid_to as date)
        from snapshots.union_members_snapshot where member_id = 'M3' order by dbt_valid_from""",
    )
    assert rows == [("in_good_standing", OCT31, NOV2), ("auto_withdrawn", NOV2, None)]
    unchanged = query(
        built["warehouse"], "select count(*) from snapshots.union_members_snapshot where member_id = 'M1'"
    )
    assert unchanged == [(1,)]


def test_service_circle_matches_brute_force(built):
    scenario: Scenario = built["scenario"]
    warehouse = built["warehouse"]
    streets = dict(
        query(
            warehouse,
            """
        select orders.order_id, coalesce(units.street_id, 'unmatched')
        from intermediate.int_orders_matched as orders
        left join seeds.units as units using (unit_id)
        where orders.business_date in (?, ?)""",
            [scenario.d1, scenario.d2],
        )
    )
    visits = scenario.check_ins()
    expected: dict[tuple, dict] = {}
    for oid, day, rider_no, lng, lat in scenario.orders:
        cell = expected.setdefault((day, streets[oid]), {"n": 0, "within": 0, "riders": set()})
        cell["n"] += 1
        cell["within"] += scenario.within_reach(day, lng, lat)
        cell["riders"].add(rider_no)
    got = {
        (r[0], r[1]): r[2:]
        for r in query(
            warehouse,
            """
        select business_date, street_id, deliveries, deliveries_within_reach, active_riders,
               riders_visited_30d, suppressed_cells
        from marts.service_circle_daily where business_date in (?, ?)""",
            [scenario.d1, scenario.d2],
        )
    }
    assert set(got) == set(expected)
    published = 0
    for key, cell in expected.items():
        day = key[0]
        visited = {r for r in cell["riders"] if any(v == r and day - timedelta(days=29) <= d <= day for v, d in visits)}
        if len(cell["riders"]) < K_ANON:
            assert got[key][:4] == (None, None, None, None), key
            assert {"deliveries", "active_riders"} <= set(got[key][4].split(",")), key
        else:
            published += 1
            # riders_visited_30d counts people: NULL when 1..K-1 of them visited
            small = 0 < len(visited) < K_ANON
            assert got[key][:4] == (cell["n"], cell["within"], len(cell["riders"]), None if small else len(visited)), (
                key
            )
            assert ("riders_visited_30d" in got[key][4].split(",")) is small, key
    assert published >= 2  # the check above compared real figures, not only suppressed cells
    # the lonely points are reached only through T, which opens on d2
    assert [scenario.within_reach(d, *p) for d in (scenario.d1, scenario.d2) for p in scenario.lonely] == [
        False
    ] * 3 + [True] * 3


def test_district_kpis_take_the_latest_load_of_each_partition(built):
    rows = query(
        built["warehouse"],
        """
        select business_date, deliveries, meituan_fetched, meituan_loaded, meituan_quarantined,
               meituan_duplicates_removed, union_members_loaded, eleme_fetched, station_visits, points_earned,
               suppressed_cells, union_coverage_month, union_coverage_rate
        from marts.district_daily_kpis where business_date in ('2026-11-01', '2026-11-02') order by 1""",
    )
    nov1, nov2 = rows
    # 1 Nov: run_b's reload (7/7/0) replaced run_a's (7/6/1); 6 deliveries by 6 riders; rider 1's check-in
    # and points are one rider's, so those cells are suppressed and the row says so
    assert nov1[:8] == (NOV1, 6, 7, 7, 0, 0, None, 0)
    assert nov1[8:11] == (None, None, "station_visits,points_earned,points_redeemed")
    assert nov2[:8] == (NOV2, 6, 8, 6, 1, 1, 8, 0)
    # November district coverage: riders 1-6 active, 4 in good standing, fewer than K people: the rate is
    # suppressed in union_coverage_monthly and so here
    assert nov2[11:] == (date(2026, 11, 1), None)


def test_pipeline_runs_before_and_after_the_gates(built):
    # before the gate and publisher ever ran, their tables do not exist and every run is "not reached"
    assert built["runs_before_gates"] == [
        ("run_a", NOV1, "not_reached", 0),
        ("run_b", NOV1, "not_reached", 0),
        ("run_b", NOV2, "not_reached", 0),
    ]
    rows = query(
        built["warehouse"],
        """
        select run_id, business_date, meituan_fetched, meituan_loaded, meituan_quarantined,
               meituan_duplicates_removed, total_duplicates_removed, quarantined_wrong_type,
               quarantined_other_reason, quarantined_bad_coordinates,
               raw_suites, raw_expectations_evaluated, raw_failed_warning, raw_gate_passed,
               marts_failed_critical, marts_gate_passed, publication_status, published_version
        from marts.pipeline_runs where run_id <> 'run_circle' order by run_id, business_date""",
    )
    assert rows == [
        ("run_a", NOV1, 7, 6, 1, 0, 0, 0, 0, 1, 0, None, None, None, None, None, "not_reached", None),
        ("run_b", NOV1, 7, 7, 0, 0, 0, 0, 0, 0, 0, None, None, None, None, None, "not_reached", None),
        # the removed copy is counted beside the quarantine, not as a quarantine reason
        ("run_b", NOV2, 8, 6, 1, 1, 1, 1, 0, 0, 2, 14, 1, True, 1, False, "blocked", None),
        (
            "run_c",
            NOV2,
            None,
            None,
            None,
            None,
            0,
            0,
            0,
            0,
            0,
            None,
            None,
            None,
            None,
            None,
            "published",
            "20261103T0300",
        ),
    ]


# district_daily_kpis' cells and the riders each stands on, recounted from the orders (the model counts a
# day's riders from one row per date and rider). The scenario's dates have 4, 5 and 6 such riders for
# these two cells; its deliveries always stand on 6 riders, so the other cells could not tell.
_KPI_ORDERS = """(select o.*, coalesce(u.friendly_since <= o.business_date, false) as to_friendly
    from intermediate.int_orders_matched o left join seeds.units u using (unit_id))"""
KPI_PEOPLE = {
    "share_to_friendly_units": """case
        when count(distinct rider_key) filter (where is_delivered and to_friendly) = 0
            then count(distinct rider_key) filter (where is_delivered)
        else least(count(distinct rider_key) filter (where is_delivered and to_friendly),
                   count(distinct rider_key) filter (where is_delivered)) end""",
    "median_last100_min_friendly": "count(distinct rider_key) filter (where last100_plausible and to_friendly)",
}


@pytest.mark.parametrize("cell", KPI_PEOPLE)
def test_district_kpis_cells_stand_on_k_riders(built, cell):
    """A date's cell behind 1..K-1 riders is NULL and named in suppressed_cells; a published one stands on 0
    or >= K riders, and the scenario has dates of both kinds."""
    rows = query(
        built["warehouse"],
        f"""
        select k.{cell}, r.n, list_contains(string_split(k.suppressed_cells, ','), '{cell}')
        from marts.district_daily_kpis k
        inner join (select business_date, {KPI_PEOPLE[cell]} as n from {_KPI_ORDERS} group by all) r
            using (business_date)""",
    )
    small = [r for r in rows if 0 < r[1] < K_ANON]
    published = [r for r in rows if r[0] is not None]
    assert small and [r for r in published if r[1] >= K_ANON], rows
    assert all(value is None and named for value, _, named in small), small
    assert all(n == 0 or n >= K_ANON for _, n, _ in published), published
