"""The frames each suite validates, read from the warehouse with a read-only DuckDB connection.

Great Expectations 1.24 has no DuckDB data source and its SQL route through duckdb-engine is broken for
metrics, so every suite validates a pandas frame. A frame carries only the columns the suite gates on, or
aggregates computed in DuckDB where the rule is about a total (points outstanding, balance violations per
date). The raw suites read what the warehouse's models parse: each source's staging model (the registry's
``staging``, ``ingest/registry.py``), never the payload's JSON paths a second time; the points balance reads
``int_rider_points_ledger``. That keeps a 500k-row
day well under a second and keeps rider-level detail inside DuckDB.

Marts are built concurrently by dbt; the frames of mart suites find their columns by the naming
convention of ``docs/internals.md`` (``share_*``, ``*last100*``, ``suppressed_cells``, ``*outstanding*``,
``month``) instead of hard-coding every indicator column.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass

import duckdb
import pandas as pd

from ingest.registry import NAMES, REGISTRY, Source
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


# What the raw suites read of each kind of source's staging model (columns named as staging names them;
# the frame's date column and its row label). No JSON path here: staging parses the payload, once.
_STAGED: dict[str, tuple[str, str, str]] = {
    "order_platform": (
        """
        order_id,
        status,
        dest_lng as lng,
        dest_lat as lat,
        rider_key is not null as has_rider_key
        """,
        "business_date",
        "order_id",
    ),
    # The row label is the row's position: a member record_id holds a keyed hash (the member number).
    "union_export": (
        """
        row_number() over (order by record_id) as row_no,
        count(*) over (partition by record_id) as copies_of_record,
        coalesce(member_id, '') <> '' as has_member_no,
        status as member_status,
        id_check
        """,
        "snapshot_date",
        "row_no",
    ),
    # An event is the file date's when that file brought it first (staging keeps one copy per event_id).
    "station_log": (
        """
        event_id,
        event_type as type,
        station_id,
        event_at as ts
        """,
        "file_date",
        "event_id",
    ),
}


def _staged(source: Source) -> Callable[[duckdb.DuckDBPyConnection, dt.date], pd.DataFrame]:
    """A raw suite's frame: the business date's rows of the source's staging model (parsed from the raw
    table by the run's ``dbt build``; the raw gate runs after it, see the DAG's docstring)."""
    select, date_column, _ = _STAGED[source.kind]
    relation = f"staging.{source.staging}"

    def frame(con: duckdb.DuckDBPyConnection, business_date: dt.date) -> pd.DataFrame:
        _require(con, relation)
        try:
            return con.execute(f"select {select} from {relation} where {date_column} = ?", [business_date]).df()
        except (duckdb.BinderException, duckdb.CatalogException) as error:
            # a column it reads is gone (or, for a view, its raw table): name it instead of crashing the task
            raise FrameUnavailable(f"{relation}: {str(error).splitlines()[0]}") from error

    return frame


def _raw_suites() -> tuple[SuiteSpec, ...]:
    """One raw suite per registry entry that names one; its row count is compared with the raw table's."""
    return tuple(
        SuiteSpec(s.suite, "raw", _staged(s), _STAGED[s.kind][2], f"raw.{s.table}") for s in REGISTRY if s.suite
    )


def load_audit_frame(con: duckdb.DuckDBPyConnection, business_date: dt.date) -> pd.DataFrame:
    """One row per source: its latest load for the date (a re-run replaces the partition, so only the
    latest load describes what is in ``raw``) and that load's quarantine rate, of quarantined records only
    (removed duplicate copies break no contract)."""
    _require(con, "raw.load_audit")
    return con.execute(
        """
        select source, fetched, loaded, duplicates_removed, quarantined,
               loaded + duplicates_removed + quarantined as loaded_removed_quarantined,
               quarantined / nullif(fetched, 0) as quarantine_rate
        from raw.load_audit
        where business_date = ?
        qualify row_number() over (partition by source order by loaded_at desc) = 1
        """,
        [business_date],
    ).df()


def _known(column: str, seed: str, key: str) -> str:
    """SQL: the row's ``column`` is a key of a seed table (NULL when the column is NULL: the not-null
    expectations speak for those, and expect_column_values_to_be_in_set skips NULLs)."""
    return f"{column} in (select {key} from seeds.{seed})"


def _value_cells(con: duckdb.DuckDBPyConnection, qualified: str) -> list[str]:
    """Every numeric column of a mart: the cells the K rule may suppress (a row's flag can come from any)."""
    schema, table = qualified.split(".")
    return [
        row[0]
        for row in con.execute(
            "select column_name from information_schema.columns where table_schema = ? and table_name = ? "
            "and (data_type in ('TINYINT', 'SMALLINT', 'INTEGER', 'BIGINT', 'HUGEINT', 'FLOAT', 'DOUBLE') "
            "or data_type like 'DECIMAL%') order by ordinal_position",
            [schema, table],
        ).fetchall()
    ]


def _published_suppressed_cells(cells: list[str]) -> str:
    """SQL: how many names in the row's ``suppressed_cells`` are not a NULL k-anonymised cell of ``cells``
    (a suppressed cell still published, or a name that is no such cell), so one ``== 0`` expectation says
    that every cell the row calls suppressed is NULL."""
    named = "string_split(nullif(m.suppressed_cells, ''), ',')"
    nulls = " + ".join(f"(m.{c} is null and list_contains({named}, '{c}'))::integer" for c in cells)
    return f"coalesce(len({named}), 0) - ({nulls})"


def unit_access_frame(con: duckdb.DuckDBPyConnection, business_date: dt.date) -> pd.DataFrame:
    """The mart's rows of the date with, beside them, row-wise extremes over every share and minute column
    (so one expectation guards them all), whether the unit and street are in the seeds, and two privacy
    checks: every cell named in ``suppressed_cells`` is NULL, and a published delivery count stands
    on at least K distinct riders (recounted from ``intermediate.int_orders_matched``, not trusted from
    the mart; a count of 0 describes no rider and is published)."""
    table = "marts.unit_access_daily"
    _require(con, table)
    columns = _columns(con, table)
    missing = {"unit_id", "business_date", "deliveries", "suppressed_cells"} - set(columns)
    if missing:
        raise FrameUnavailable(f"{table} lacks column(s) {', '.join(sorted(missing))}")
    shares = [c for c in columns if c.startswith("share_")]
    minutes = [c for c in columns if "last100" in c]

    def extreme(fn: str, cols: list[str]) -> str:
        return f"{fn}({', '.join(cols)})" if cols else "null::double"

    riders = (
        "(select count(distinct o.rider_key) from intermediate.int_orders_matched o "
        "where o.unit_id = m.unit_id and o.business_date = m.business_date and o.is_delivered)"
    )
    return con.execute(
        f"""
        select m.*,
               {extreme("least", shares)} as share_min, {extreme("greatest", shares)} as share_max,
               {extreme("least", minutes)} as minutes_min, {extreme("greatest", minutes)} as minutes_max,
               {_known("m.unit_id", "units", "unit_id")} as unit_known,
               {_published_suppressed_cells(_value_cells(con, table))} as published_suppressed_cells,
               case when deliveries > 0 then {riders} else {k_anon()} end as riders_behind_deliveries
        from {table} as m
        where business_date = ?
        """,
        [business_date],
    ).df()


def volunteer_activity_frame(con: duckdb.DuckDBPyConnection, business_date: dt.date) -> pd.DataFrame:
    """The business date's month, aggregated in DuckDB to one row: its smallest points outstanding and
    how many of its team ids the volunteer_teams seed does not know."""
    table = "marts.volunteer_activity_monthly"
    _require(con, table)
    columns = _columns(con, table)
    outstanding = [c for c in columns if "outstanding" in c]
    if "month" not in columns or "team_id" not in columns or not outstanding:
        raise FrameUnavailable(f"{table} lacks a month, a team_id or a points-outstanding column")
    _require(con, "seeds.volunteer_teams")
    # `month` may be a date (first of month) or 'YYYY-MM' text: both start with YYYY-MM.
    return con.execute(
        f"""
        select min({outstanding[0]}) as min_points_outstanding,
               count(distinct team_id) filter (where not {_known("team_id", "volunteer_teams", "team_id")})
                   as unknown_team_ids
        from {table}
        where cast(month as varchar) like strftime(?::date, '%Y-%m') || '%'
        having count(*) > 0
        """,
        [business_date],
    ).df()


@dataclass(frozen=True)
class MartFrame:
    """The frame of a mart suite: the mart's rows of the business date's period (every column, so the
    suite can check the published schema), plus derived check columns computed in DuckDB.

    ``period`` is the SQL condition that picks the period of the business date (``$day``); each value of
    ``checks`` is SQL over the mart's row ``m`` (and may query seeds or other marts for ``$day``);
    ``private`` are the k-anonymised cells, each NULL where the row's ``suppressed_cells`` names it
    (empty for a mart without a privacy rule, pipeline_runs).
    """

    table: str
    period: str
    checks: tuple[tuple[str, str], ...]
    private: tuple[str, ...]

    def __call__(self, con: duckdb.DuckDBPyConnection, business_date: dt.date) -> pd.DataFrame:
        _require(con, self.table)
        derived = list(self.checks)
        if self.private:
            derived.append(("published_suppressed_cells", _published_suppressed_cells(list(self.private))))
        select = ",\n".join(f"({sql}) as {name}" for name, sql in derived)
        try:
            return con.execute(
                f"select m.*, {select} from {self.table} as m where {self.period}", {"day": business_date}
            ).df()
        except (duckdb.BinderException, duckdb.CatalogException) as error:
            # A column or seed the checks need is missing: name it instead of crashing the task.
            raise FrameUnavailable(f"{self.table}: {str(error).splitlines()[0]}") from error


_DAY = "$day::date"
_MONTH = "date_trunc('month', $day::date)::date"
_SOURCES = NAMES
_UNIT_TYPES = ("residential_compound", "office_building", "scenic_area", "hospital", "university", "construction_site")


def _all(conditions: list[str]) -> str:
    """SQL: every condition holds where it can be evaluated (a NULL cell, suppressed or not applicable,
    makes its condition true rather than unknown)."""
    return " and ".join(f"coalesce({c}, true)" for c in conditions)


FRIENDLY_EFFECT = MartFrame(
    table="marts.friendly_effect",
    period=f"reporting_date = {_DAY}",
    checks=(
        ("count_min", "least(units_adopted, units_measured, after_window_deliveries, deliveries_last_30_days)"),
        ("measured_within_adopted", _all(["units_measured <= units_adopted"])),
        (
            "interval_holds_estimate",
            _all(["did_saving_ci_low_min <= did_saving_min", "did_saving_min <= did_saving_ci_high_min"]),
        ),
    ),
    private=(
        "after_window_deliveries",
        "naive_saving_min",
        "did_saving_min",
        "did_saving_ci_low_min",
        "did_saving_ci_high_min",
        "deliveries_last_30_days",
        "rider_hours_saved_per_month",
    ),
)

FRIENDLY_EVENT_STUDY = MartFrame(
    table="marts.friendly_event_study",
    period=f"business_date = {_DAY}",
    checks=(
        (
            "whole_grid",
            "(select count(*) = 63 and min(g.rel_day) = -28 and max(g.rel_day) = 34 "
            "from marts.friendly_event_study as g "
            "where g.business_date = m.business_date and g.unit_type = m.unit_type)",
        ),
        ("count_min", "least(adopted_units, adopted_deliveries, adopted_riders, control_deliveries, control_riders)"),
        (
            "riders_within_deliveries",
            _all(["adopted_riders <= adopted_deliveries", "control_riders <= control_deliveries"]),
        ),
        # bool_and, not a scalar subquery: a duplicated friendly_effect row is its own suite's failure
        (
            "units_match_friendly_effect",
            "coalesce((select bool_and(e.units_measured = m.adopted_units) "
            "from marts.friendly_effect as e where e.reporting_date = m.business_date "
            "and e.unit_type = m.unit_type), false)",
        ),
        (
            "means_plausible",
            _all(
                [
                    "adopted_mean_last100_min > 0",
                    "adopted_mean_last100_min <= 120",
                    "control_mean_last100_min > 0",
                    "control_mean_last100_min <= 120",
                ]
            ),
        ),
    ),
    private=(
        "adopted_deliveries",
        "adopted_riders",
        "adopted_mean_last100_min",
        "control_deliveries",
        "control_riders",
        "control_mean_last100_min",
    ),
)

STREET_COVERAGE_MONTHLY = MartFrame(
    table="marts.street_coverage_monthly",
    period=f"month = {_MONTH}",
    checks=(
        ("street_known", _known("m.street_id", "streets", "street_id")),
        ("share_min", "least(friendly_unit_share, target_progress, share_deliveries_to_friendly_units)"),
        ("share_max", "greatest(friendly_unit_share, target_progress, share_deliveries_to_friendly_units)"),
        (
            "count_min",
            "least(units_total, friendly_units_total, target_units, target_units_friendly, deliveries, "
            + ", ".join(f"units_{t}, friendly_units_{t}" for t in _UNIT_TYPES)
            + ")",
        ),
        (
            "friendly_within_units",
            _all(
                [f"friendly_units_{t} <= units_{t}" for t in _UNIT_TYPES]
                + [
                    "friendly_units_total <= units_total",
                    "target_units_friendly <= target_units",
                    "units_total = " + " + ".join(f"units_{t}" for t in _UNIT_TYPES),
                ]
            ),
        ),
    ),
    private=("deliveries", "share_deliveries_to_friendly_units"),
)

_STATION_COUNTS = (
    "visits",
    "distinct_riders",
    "services_charging",
    "services_water",
    "services_microwave",
    "services_rest",
    "services_restroom",
    "services_first_aid",
    "services_haircut",
    "services_bike_repair",
    "canteen_meals",
    "points_redeemed",
)
STATION_USAGE_DAILY = MartFrame(
    table="marts.station_usage_daily",
    period=f"event_date = {_DAY}",
    checks=(
        ("station_known", _known("m.station_id", "stations", "station_id")),
        ("count_min", f"least({', '.join(_STATION_COUNTS)})"),
    ),
    private=(*_STATION_COUNTS, "median_stay_min", "avg_meal_price_cents"),
)

SERVICE_CIRCLE_DAILY = MartFrame(
    table="marts.service_circle_daily",
    period=f"business_date = {_DAY}",
    checks=(
        ("street_known", f"m.street_id = 'unmatched' or {_known('m.street_id', 'streets', 'street_id')}"),
        ("share_min", "least(share_within_reach, share_riders_visited_30d)"),
        ("share_max", "greatest(share_within_reach, share_riders_visited_30d)"),
        ("count_min", "least(deliveries, deliveries_within_reach, active_riders, riders_visited_30d)"),
        ("parts_within_totals", _all(["deliveries_within_reach <= deliveries", "riders_visited_30d <= active_riders"])),
    ),
    private=(
        "deliveries",
        "deliveries_within_reach",
        "share_within_reach",
        "active_riders",
        "riders_visited_30d",
        "share_riders_visited_30d",
    ),
)

UNION_COVERAGE_MONTHLY = MartFrame(
    table="marts.union_coverage_monthly",
    period=f"month = {_MONTH}",
    checks=(
        (
            "count_min",
            "least(active_riders, active_riders_in_good_standing, members_in_good_standing,"
            " new_members, withdrawals, expulsions)",
        ),
        ("covered_within_active", _all(["active_riders_in_good_standing <= active_riders"])),
    ),
    # a figure NULL by design (of the other street basis; active riders and the rate on organisation rows)
    # is not named in suppressed_cells, so only the named cells are checked
    private=(
        "active_riders",
        "active_riders_in_good_standing",
        "coverage_rate",
        "members_in_good_standing",
        "new_members",
        "withdrawals",
        "expulsions",
    ),
)

DISTRICT_DAILY_KPIS = MartFrame(
    table="marts.district_daily_kpis",
    period=f"business_date = {_DAY}",
    checks=(
        ("share_min", "least(share_to_friendly_units, union_coverage_rate)"),
        ("share_max", "greatest(share_to_friendly_units, union_coverage_rate)"),
        ("minutes_min", "least(median_last100_min_friendly, median_last100_min_non_friendly)"),
        ("minutes_max", "greatest(median_last100_min_friendly, median_last100_min_non_friendly)"),
        (
            "count_min",
            "least(deliveries, station_visits, points_earned, points_redeemed, unit_deliveries_no_gate_time, "
            "unit_deliveries_last100_out_of_range, "
            + ", ".join(f"{s}_fetched, {s}_loaded, {s}_quarantined, {s}_duplicates_removed" for s in _SOURCES)
            + ")",
        ),
        (
            "loads_balance",
            _all([f"{s}_fetched = {s}_loaded + {s}_duplicates_removed + {s}_quarantined" for s in _SOURCES]),
        ),
        # Cross-table: the district's totals cover what the detailed marts published for the date
        # (suppressed cells are NULL there, so a sum of the published cells can only be smaller).
        (
            "deliveries_cover_units",
            _all(
                [
                    "deliveries >= (select coalesce(sum(u.deliveries), 0) from marts.unit_access_daily u"
                    f" where u.business_date = {_DAY})"
                ]
            ),
        ),
        (
            "visits_cover_stations",
            _all(
                [
                    "station_visits >= (select coalesce(sum(s.visits), 0) from marts.station_usage_daily s"
                    f" where s.event_date = {_DAY})"
                ]
            ),
        ),
    ),
    private=(
        "deliveries",
        "share_to_friendly_units",
        "median_last100_min_friendly",
        "median_last100_min_non_friendly",
        "station_visits",
        "points_earned",
        "points_redeemed",
    ),
)

PIPELINE_RUNS = MartFrame(
    table="marts.pipeline_runs",
    period=f"business_date = {_DAY}",
    checks=(("totals_balance", _all(["total_fetched = total_loaded + total_duplicates_removed + total_quarantined"])),),
    private=(),
)


def rider_points_frame(con: duckdb.DuckDBPyConnection, business_date: dt.date) -> pd.DataFrame:
    """Redemptions the riders' balances could not cover, counted for each date of the run's scope: the
    business date and D-1, whose station file the run fetches again.

    dbt decides what a violation is (``intermediate.int_rider_points_ledger``: an opening balance for
    points earned before the first loaded file, each shortfall dated on the day it happens); the gate
    reads that model instead of re-deriving balances from raw events, and a violation dated on an older
    day, which blocked its own run, never blocks a later one. One row per date with counts only, so the
    summary names dates and counts, never a rider."""
    table = "intermediate.int_rider_points_ledger"
    _require(con, table)
    try:
        return con.execute(
            f"""
            select strftime(scope.d, '%Y-%m-%d') as event_date,
                   count(ledger.event_id) as violations
            from range(?::date - 1, ?::date + 1, interval 1 day) as scope(d)
            left join {table} as ledger on ledger.event_date = scope.d and ledger.is_violation
            group by scope.d
            order by scope.d
            """,
            [business_date, business_date],
        ).df()
    except duckdb.BinderException as error:
        raise FrameUnavailable(f"{table}: {str(error).splitlines()[0]}") from error


def drift_frame(con: duckdb.DuckDBPyConnection, business_date: dt.date) -> pd.DataFrame:
    """The business date's drift measures, each with its flag and reason.

    dbt compares every measure with its trailing 7-day median and decides the flag
    (``intermediate.int_drift_measures_daily``, tolerances in dbt_project.yml), so the warning here and the
    flag that pipeline_runs publishes for the day are one decision, made in the build that publishes it."""
    table = "intermediate.int_drift_measures_daily"
    _require(con, table)
    try:
        return con.execute(
            f"select source, measure, observed_value, trailing_median, is_flagged, flag_reason from {table}"
            " where business_date = ? order by source, measure",
            [business_date],
        ).df()
    except duckdb.BinderException as error:
        raise FrameUnavailable(f"{table}: {str(error).splitlines()[0]}") from error


SUITES: tuple[SuiteSpec, ...] = (
    *_raw_suites(),
    SuiteSpec("raw_load_audit", "raw", load_audit_frame, "source"),
    SuiteSpec("unit_access_daily", "marts", unit_access_frame, "unit_id", "marts.unit_access_daily"),
    SuiteSpec("volunteer_activity_monthly", "marts", volunteer_activity_frame),
    SuiteSpec("friendly_effect", "marts", FRIENDLY_EFFECT, "unit_type"),
    SuiteSpec("friendly_event_study", "marts", FRIENDLY_EVENT_STUDY, "unit_type"),
    SuiteSpec("street_coverage_monthly", "marts", STREET_COVERAGE_MONTHLY, "street_id"),
    SuiteSpec("station_usage_daily", "marts", STATION_USAGE_DAILY, "station_id"),
    SuiteSpec("service_circle_daily", "marts", SERVICE_CIRCLE_DAILY, "street_id", "marts.service_circle_daily"),
    SuiteSpec("union_coverage_monthly", "marts", UNION_COVERAGE_MONTHLY, "platform"),
    SuiteSpec("district_daily_kpis", "marts", DISTRICT_DAILY_KPIS, "business_date"),
    SuiteSpec("pipeline_runs", "marts", PIPELINE_RUNS, "run_id"),
    SuiteSpec("rider_points_balance", "marts", rider_points_frame, "event_date"),
    SuiteSpec("data_drift", "marts", drift_frame, "flag_reason"),
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
