"""The frames each suite validates, read from the warehouse with a read-only DuckDB connection.

Great Expectations 1.24 has no DuckDB data source and its SQL route through duckdb-engine is broken for
metrics, so every suite validates a pandas frame. A frame carries only the columns the suite gates on,
extracted from ``payload`` with DuckDB's JSON operators for raw tables, or aggregates computed in DuckDB
where the rule is about a total (points outstanding, per-rider balances). That keeps a 500k-row day well
under a second and keeps rider-level detail inside DuckDB.

Marts are built concurrently by dbt; the frames of mart suites find their columns by the naming
convention of ``docs/internals.md`` (``share_*``, ``*last100*``, ``suppressed``, ``*outstanding*``,
``month``) instead of hard-coding every indicator column.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass

import duckdb
import pandas as pd

from ingest.settings import k_anon


class FrameUnavailable(Exception):
    """The table or column a suite needs is missing: the gate reports it as a failed critical check."""


@dataclass(frozen=True)
class SuiteSpec:
    """One suite: where its frame comes from, the column that names a failing row in the summary, and
    the table whose daily row count is compared with its trailing 7-day median (``None``: no such
    check)."""

    name: str
    stage: str
    frame: Callable[[duckdb.DuckDBPyConnection, dt.date], pd.DataFrame]
    row_label: str | None = None
    daily_table: str | None = None


def _table_exists(con: duckdb.DuckDBPyConnection, qualified: str) -> bool:
    schema, table = qualified.split(".")
    return bool(
        con.execute(
            "select count(*) from information_schema.tables where table_schema = ? and table_name = ?",
            [schema, table],
        ).fetchone()[0]
    )


def _columns(con: duckdb.DuckDBPyConnection, qualified: str) -> list[str]:
    schema, table = qualified.split(".")
    return [
        row[0]
        for row in con.execute(
            "select column_name from information_schema.columns where table_schema = ? and table_name = ?"
            " order by ordinal_position",
            [schema, table],
        ).fetchall()
    ]


def _require(con: duckdb.DuckDBPyConnection, qualified: str) -> None:
    if not _table_exists(con, qualified):
        raise FrameUnavailable(f"table {qualified} does not exist")


def _daily(table: str, select: str) -> Callable[[duckdb.DuckDBPyConnection, dt.date], pd.DataFrame]:
    """A frame of one raw table's partition for the business date; ``select`` reads ``payload``."""

    def frame(con: duckdb.DuckDBPyConnection, business_date: dt.date) -> pd.DataFrame:
        _require(con, table)
        return con.execute(f"select {select} from {table} where business_date = ?", [business_date]).df()

    return frame


_MEITUAN = """
    payload->>'order_id' as order_id,
    try_cast(payload->>'status' as integer) as status,
    try_cast(payload->>'recipient_lng' as double) as lng,
    try_cast(payload->>'recipient_lat' as double) as lat,
    payload->>'courier_phone' as rider_key
"""
_ELEME = """
    payload->>'open_order_code' as order_id,
    try_cast(payload->>'order_status' as integer) as status,
    try_cast(payload->>'lng' as double) as lng,
    try_cast(payload->>'lat' as double) as lat,
    payload->>'carrier_driver_phone' as rider_key
"""
_SF = """
    payload->>'sf_order_id' as order_id,
    try_cast(payload->>'order_status' as integer) as status,
    try_cast(payload->>'user_lng' as double) as lng,
    try_cast(payload->>'user_lat' as double) as lat,
    try_cast(payload->>'lbs_type' as integer) as lbs_type,
    payload->>'operator_phone' as rider_key
"""
# shansong has no current status field: the last entry of the status log is the status.
_SHANSONG = """
    payload->>'orderNo' as order_id,
    try_cast(json_extract_string(payload, '$.statusChangeLog[#-1].status') as integer) as status,
    try_cast(payload->'receiver'->>'lng' as double) as lng,
    try_cast(payload->'receiver'->>'lat' as double) as lat,
    payload->'courier'->>'mobile' as rider_key
"""
_UNION_MEMBERS = """
    record_id,
    payload->>'会员编号' as member_no,
    payload->>'会员状态' as member_status,
    payload->>'身份证校验' as id_check
"""
_STATION_EVENTS = """
    payload->>'event_id' as event_id,
    payload->>'type' as type,
    payload->>'station_id' as station_id,
    try_cast(payload->>'ts' as timestamptz) as ts
"""


def load_audit_frame(con: duckdb.DuckDBPyConnection, business_date: dt.date) -> pd.DataFrame:
    """One row per source: its latest load for the date (a re-run replaces the partition, so only the
    latest load describes what is in ``raw``) and that load's quarantine rate."""
    _require(con, "raw.load_audit")
    return con.execute(
        """
        select source, fetched, loaded, quarantined,
               loaded + quarantined as loaded_plus_quarantined,
               quarantined / nullif(fetched, 0) as quarantine_rate
        from raw.load_audit
        where business_date = ?
        qualify row_number() over (partition by source order by loaded_at desc) = 1
        """,
        [business_date],
    ).df()


def unit_access_frame(con: duckdb.DuckDBPyConnection, business_date: dt.date) -> pd.DataFrame:
    """Row-wise extremes over every share and minute column, so one expectation guards them all, and two
    privacy checks: a row flagged ``suppressed`` has at least one NULL cell, and a published delivery count
    stands on at least K distinct riders (recounted from ``intermediate.int_orders_matched``, not trusted
    from the mart; a count of 0 describes no rider and is published)."""
    table = "marts.unit_access_daily"
    _require(con, table)
    columns = _columns(con, table)
    missing = {"unit_id", "business_date", "deliveries", "suppressed"} - set(columns)
    if missing:
        raise FrameUnavailable(f"{table} lacks column(s) {', '.join(sorted(missing))}")
    shares = [c for c in columns if c.startswith("share_")]
    minutes = [c for c in columns if "last100" in c]

    def extreme(fn: str, cols: list[str]) -> str:
        return f"{fn}({', '.join(cols)})" if cols else "null::double"

    cells = ["deliveries", *shares, *minutes]
    null_cells = " + ".join(f"({c} is null)::integer" for c in cells)
    riders = ("(select count(distinct o.rider_key) from intermediate.int_orders_matched o "
              "where o.unit_id = m.unit_id and o.business_date = m.business_date and o.is_delivered)")
    return con.execute(
        f"""
        select unit_id, business_date, deliveries,
               {extreme("least", shares)} as share_min, {extreme("greatest", shares)} as share_max,
               {extreme("least", minutes)} as minutes_min, {extreme("greatest", minutes)} as minutes_max,
               case when suppressed then {null_cells} else 1 end as suppressed_null_cells,
               case when deliveries > 0 then {riders} else {k_anon()} end as riders_behind_deliveries
        from {table} as m
        where business_date = ?
        """,
        [business_date],
    ).df()


def volunteer_activity_frame(con: duckdb.DuckDBPyConnection, business_date: dt.date) -> pd.DataFrame:
    """The business date's month, aggregated in DuckDB to one row: its smallest points outstanding."""
    table = "marts.volunteer_activity_monthly"
    _require(con, table)
    columns = _columns(con, table)
    outstanding = [c for c in columns if "outstanding" in c]
    if "month" not in columns or not outstanding:
        raise FrameUnavailable(f"{table} lacks a month column or a points-outstanding column")
    # `month` may be a date (first of month) or 'YYYY-MM' text: both start with YYYY-MM.
    return con.execute(
        f"""
        select min({outstanding[0]}) as min_points_outstanding
        from {table}
        where cast(month as varchar) like strftime(?::date, '%Y-%m') || '%'
        having count(*) > 0
        """,
        [business_date],
    ).df()


def rider_points_frame(con: duckdb.DuckDBPyConnection, business_date: dt.date) -> pd.DataFrame:
    """Per rider, points earned minus redeemed up to the end of the business date, computed in DuckDB
    from the station logs (events deduplicated by id: a late event can arrive in a later day's file).
    The station system must refuse a redemption beyond the balance; this checks that it did."""
    _require(con, "raw.station_events")
    return con.execute(
        """
        with events as (
            select payload->>'rider_phone' as rider_key, payload->>'type' as type,
                   coalesce(try_cast(payload->>'points' as bigint), 0) as points,
                   try_cast(left(payload->>'ts', 19) as timestamp) as local_ts
            from raw.station_events
            where payload->>'type' in ('points_earn', 'points_redeem')
            qualify row_number() over (partition by record_id order by loaded_at desc) = 1
        )
        select rider_key,
               sum(points) filter (where type = 'points_earn') as earned,
               sum(points) filter (where type = 'points_redeem') as redeemed,
               coalesce(earned, 0) - coalesce(redeemed, 0) as balance
        from events
        where local_ts < ?::date + interval 1 day
        group by rider_key
        """,
        [business_date],
    ).df()


SUITES: tuple[SuiteSpec, ...] = (
    SuiteSpec("raw_meituan_orders", "raw", _daily("raw.meituan_orders", _MEITUAN), "order_id",
              "raw.meituan_orders"),
    SuiteSpec("raw_eleme_orders", "raw", _daily("raw.eleme_orders", _ELEME), "order_id", "raw.eleme_orders"),
    SuiteSpec("raw_sf_orders", "raw", _daily("raw.sf_orders", _SF), "order_id", "raw.sf_orders"),
    SuiteSpec("raw_shansong_orders", "raw", _daily("raw.shansong_orders", _SHANSONG), "order_id",
              "raw.shansong_orders"),
    SuiteSpec("raw_union_members", "raw", _daily("raw.union_members", _UNION_MEMBERS), "record_id",
              "raw.union_members"),
    SuiteSpec("raw_station_events", "raw", _daily("raw.station_events", _STATION_EVENTS), "event_id",
              "raw.station_events"),
    SuiteSpec("raw_load_audit", "raw", load_audit_frame, "source"),
    SuiteSpec("unit_access_daily", "marts", unit_access_frame, "unit_id", "marts.unit_access_daily"),
    SuiteSpec("volunteer_activity_monthly", "marts", volunteer_activity_frame),
    SuiteSpec("rider_points_balance", "marts", rider_points_frame, "rider_key"),
)


def trailing_median_rows(con: duckdb.DuckDBPyConnection, table: str, business_date: dt.date) -> float | None:
    """Median daily row count of ``table`` over the 7 dates before the business date (None: no history)."""
    if not _table_exists(con, table):
        return None
    return con.execute(
        f"""
        select median(n) from (
            select business_date, count(*) as n from {table}
            where business_date between ?::date - 7 and ?::date - 1
            group by business_date
        )
        """,
        [business_date, business_date],
    ).fetchone()[0]
