"""A small warehouse of good data: 8 days of every raw table of the raw contract (docs/internals.md),
the load audit, and the marts the gates read. Tests break one rule at a time with plain SQL."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import duckdb
import pytest

DAY = dt.date(2026, 11, 28)
HISTORY_DAYS = 7
SOURCES = {
    # source: (raw table, rows per day)
    "meituan": ("meituan_orders", 40),
    "eleme": ("eleme_orders", 30),
    "sf": ("sf_orders", 20),
    "shansong": ("shansong_orders", 10),
    "union_members": ("union_members", 25),
    "union_orgs": ("union_orgs", 5),
    "stations": ("station_events", 24),
}


def _rider(i: int) -> str:
    return f"{i % 7:032x}"  # hashed phones are 32 hex characters


def _payload(source: str, day: dt.date, i: int) -> tuple[str, dict]:
    """(record_id, payload) of the i-th record of a source on a day, as the loader stores it."""
    key = f"{day:%Y%m%d}-{i:04d}"
    lng, lat = 120.10 + i * 0.001, 30.25 + i * 0.001
    if source == "meituan":
        return key, {"order_id": key, "status": [20, 30, 50, 99][i % 4], "recipient_lng": lng,
                     "recipient_lat": lat, "courier_phone": _rider(i)}
    if source == "eleme":
        return key, {"open_order_code": key, "order_status": [1, 20, 80, 2, 3, 4, 5][i % 7],
                     "lng": str(lng), "lat": str(lat), "carrier_driver_phone": _rider(i)}
    if source == "sf":
        return key, {"sf_order_id": key, "order_status": [10, 12, 15, 17, 2][i % 5], "user_lng": lng,
                     "user_lat": lat, "lbs_type": 1 + i % 2, "operator_phone": _rider(i)}
    if source == "shansong":
        log = [{"status": s, "time": f"{day}T12:0{n}:00+08:00"} for n, s in enumerate([20, 30, 40, 50])]
        return key, {"orderNo": key, "statusChangeLog": log, "receiver": {"lng": lng, "lat": lat},
                     "courier": {"id": i, "mobile": _rider(i)}}
    if source == "union_members":
        return f"M{i:05d}-U01", {"会员编号": f"M{i:05d}", "会员状态": "在册" if i % 5 else "退会",
                                 "身份证校验": "valid" if i % 30 else "bad_check_digit"}
    if source == "union_orgs":
        return f"U{i:02d}", {"工会编码": f"U{i:02d}"}
    # stations: check-ins, and for riders 0..6 an earning of 10 points then a redemption of 5.
    kinds = ["check_in", "check_out", "points_earn", "points_redeem"]
    event = {"event_id": f"ev-{key}", "station_id": f"NF-{i % 9 + 1:04d}", "type": kinds[i % 4],
             "ts": f"{day}T{8 + i % 12:02d}:{i % 60:02d}:00+08:00", "rider_phone": _rider(i // 4)}
    if event["type"] == "points_earn":
        event["points"] = 10
    if event["type"] == "points_redeem":
        event["points"] = 5
    return f"ev-{key}", event


def build_warehouse(path: Path, day: dt.date = DAY) -> Path:
    con = duckdb.connect(str(path))
    con.execute("create schema raw")
    con.execute("create schema marts")
    con.execute("create schema intermediate")
    days = [day - dt.timedelta(days=n) for n in range(HISTORY_DAYS, -1, -1)]
    for source, (table, rows) in SOURCES.items():
        con.execute(
            f"create table raw.{table} (record_id varchar, business_date date, payload json,"
            " fetch_id varchar, page_file varchar, record_no integer, loaded_at timestamp)"
        )
        values = []
        for d in days:
            for i in range(rows):
                record_id, payload = _payload(source, d, i)
                values.append((record_id, d, json.dumps(payload, ensure_ascii=False), f"f-{d}",
                               "page-00001.json.gz", i, dt.datetime.combine(d, dt.time(18))))
        con.executemany(f"insert into raw.{table} values (?, ?, ?, ?, ?, ?, ?)", values)
    con.execute(
        "create table raw.load_audit (source varchar, business_date date, fetch_id varchar, fetched integer,"
        " loaded integer, quarantined integer, loaded_at timestamp)"
    )
    # One quarantined record per load, except where one of ten would exceed the 5% limit.
    audit = []
    for d in days:
        for source, (_, rows) in SOURCES.items():
            quarantined = 1 if rows >= 20 else 0
            audit.append((source, d, f"f-{d}", rows + quarantined, rows, quarantined,
                          dt.datetime.combine(d, dt.time(18))))
    con.executemany("insert into raw.load_audit values (?, ?, ?, ?, ?, ?, ?)", audit)
    con.execute(
        """
        create table marts.unit_access_daily as
        select 'U' || lpad(u::varchar, 4, '0') as unit_id, d::date as business_date,
               case when u = 9 then null else 10 + u end as deliveries,
               case when u = 9 then null else 0.5 end as share_entry_code_or_nfc,
               case when u = 9 then null else 0.25 end as share_parked_rider_bay,
               case when u = 9 then null else 3.5 + u end as median_last100_min,
               case when u = 9 then null else 9.0 + u end as p90_last100_min,
               u % 3 = 0 as is_friendly,
               u = 9 as suppressed
        from range(10) t(u), range(?::date - 7, ?::date + 1, interval 1 day) r(d)
        """,
        [day, day],
    )
    # The deliveries behind unit_access_daily: unit u has 10 + u deliveries by 5 + u distinct riders.
    con.execute(
        """
        create table intermediate.int_orders_matched as
        select 'U' || lpad(u::varchar, 4, '0') as unit_id, d::date as business_date,
               'rider-' || (n % (5 + u)) as rider_key, true as is_delivered
        from range(10) t(u), range(?::date - 7, ?::date + 1, interval 1 day) r(d), range(30) o(n)
        where n < 10 + u
        """,
        [day, day],
    )
    con.execute(
        """
        create table marts.volunteer_activity_monthly as
        select 'VT-' || lpad(t::varchar, 2, '0') as team_id, date_trunc('month', ?::date)::date as month,
               20 + t as points_earned, 5 as points_redeemed, 15 + t as points_outstanding,
               false as suppressed
        from range(1, 18) r(t)
        """,
        [day],
    )
    con.close()
    return path


@pytest.fixture
def data_dir(tmp_path, monkeypatch) -> Path:
    root = tmp_path / "data"
    monkeypatch.setenv("XIHU_DATA_DIR", str(root))
    monkeypatch.setenv("GX_ANALYTICS_ENABLED", "False")
    return root


@pytest.fixture
def warehouse(data_dir) -> Path:
    (data_dir / "warehouse").mkdir(parents=True)
    return build_warehouse(data_dir / "warehouse" / "xihu.duckdb")
