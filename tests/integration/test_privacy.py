"""The privacy rule of indicators.md on every published mart (schema `marts`) of the district fixture.

- No published table carries a rider key: no column named like one, and no text value shaped like the
  32-hex keyed hashes the ingest writes for phones, ID numbers and names.
- No published value is computed from fewer than K distinct riders: rider counts are 0 or >= K, and the
  cells that count deliveries or visits are recounted here from intermediate/staging rows: a published
  value stands on >= K riders, a NULL one on 1..K-1, and the row says `suppressed`.
"""

from __future__ import annotations

import re

import pytest

pytestmark = pytest.mark.slow  # builds the sandbox district (minutes)

K = 5  # dbt var k_anon
HEX32 = re.compile(r"^[0-9a-f]{32}$")


def mart_columns(district) -> dict[str, list[tuple[str, str]]]:
    out: dict[str, list[tuple[str, str]]] = {}
    for table, column, dtype in district.query(
        "select table_name, column_name, data_type from information_schema.columns "
        "where table_schema = 'marts' order by table_name, ordinal_position"
    ):
        out.setdefault(table, []).append((column, dtype))
    return out


def test_every_mart_is_checked(district):
    assert set(mart_columns(district)) >= {
        "unit_access_daily", "friendly_effect", "street_coverage_monthly", "station_usage_daily",
        "service_circle_daily", "volunteer_activity_monthly", "union_coverage_monthly", "district_daily_kpis",
    }


def test_no_rider_key_column_or_value(district):
    for table, columns in mart_columns(district).items():
        for column, dtype in columns:
            assert "rider_key" not in column.lower() and "phone" not in column.lower(), (table, column)
            if dtype != "VARCHAR":
                continue
            values = [v for (v,) in district.query(f'select distinct "{column}" from marts."{table}"')]
            assert not [v for v in values if v and HEX32.match(v)], (table, column)


# Published counts of people: the population a row describes, and the sub-counts taken out of it.
POPULATIONS = ("active_riders", "distinct_riders", "active_volunteers")
SUB_COUNTS = {"active_riders_in_good_standing": "active_riders", "riders_visited_30d": "active_riders"}


def test_rider_counts_are_zero_or_at_least_k(district):
    """Every published count of riders or volunteers is 0 or >= K (a count of 1..K-1 would name them);
    a sub-count (members among the active riders) may be small only when its row's population is >= K:
    it is then a share of K or more riders, as the rate beside it is."""
    checked = set()
    for table, columns in mart_columns(district).items():
        names = [c for c, _ in columns]
        for column, dtype in columns:
            if column in POPULATIONS:
                small = district.scalar(
                    f'select count(*) from marts."{table}" where "{column}" between 1 and {K - 1}')
                assert small == 0, (table, column)
                checked.add(column)
            elif column in SUB_COUNTS and SUB_COUNTS[column] in names:
                population = SUB_COUNTS[column]
                small = district.scalar(
                    f'select count(*) from marts."{table}" where "{column}" between 1 and {K - 1} '
                    f'and "{population}" is not null and "{population}" < {K}')
                assert small == 0, (table, column)
                checked.add(column)
            elif dtype in ("BIGINT", "INTEGER", "HUGEINT"):
                assert not re.search(r"riders|volunteers", column), (
                    f"{table}.{column}: a count of people this test does not know")
    assert checked >= set(POPULATIONS) | set(SUB_COUNTS)


@pytest.mark.parametrize("cell, riders_filter", [
    ("deliveries", "is_delivered"),
    ("cancellations", "status = 'cancelled'"),
    ("median_last100_min", "last100_plausible"),
])
def test_unit_access_daily_cells_recounted(district, cell, riders_filter):
    rows = district.query(f"""
        with riders as (
            select unit_id, business_date, count(distinct rider_key) filter (where {riders_filter}) as n
            from intermediate.int_orders_matched where unit_id is not null
            group by unit_id, business_date
        )
        select m.{cell} is null as nulled, m.suppressed, coalesce(r.n, 0) as n
        from marts.unit_access_daily m
        left join riders r using (unit_id, business_date)""")
    assert rows
    published_small = [r for r in rows if not r[0] and 0 < r[2] < K]
    assert not published_small, f"{len(published_small)} {cell} cells published from < {K} riders"
    nulled = [r for r in rows if r[0] and 0 < r[2] < K]
    assert nulled, "the fixture should hold small cells to suppress"
    assert all(suppressed for _, suppressed, _ in nulled)
    # A NULL never hides a cell that had enough riders.
    assert not [r for r in rows if r[0] and r[2] >= K]


def test_station_usage_daily_visits_recounted(district):
    rows = district.query("""
        with riders as (
            select station_id, event_date, count(distinct rider_key) as n
            from staging.stg_stations__events where event_type = 'check_in'
            group by station_id, event_date
        )
        select m.visits is null, m.suppressed, coalesce(r.n, 0)
        from marts.station_usage_daily m left join riders r using (station_id, event_date)
        where m.status <> 'partial'""")
    assert rows
    assert not [r for r in rows if not r[0] and 0 < r[2] < K]
    assert all(r[1] for r in rows if r[0] and 0 < r[2] < K)
    # A NULL never hides a cell that had enough riders, except on a date whose file was never fetched,
    # where every figure is NULL whatever its riders (the status rule, tests/integration/test_row_status.py).
    assert not [r for r in rows if r[0] and r[2] >= K]


def test_friendly_effect_groups_stand_on_k_riders(district):
    """Each published estimate stands on the riders of its measured units' window deliveries (final status
    delivered, whatever their last-100 value)."""
    for unit_type, did, suppressed in district.query(
        "select unit_type, did_saving_min, suppressed from marts.friendly_effect where units_measured > 0"
    ):
        assert did is not None and not suppressed, unit_type
    riders = dict(district.query("""
        select u.unit_type, count(distinct o.rider_key)
        from intermediate.int_orders_matched o join seeds.units u using (unit_id)
        where o.is_delivered and u.friendly_since between date '2026-08-01' and date '2026-08-14'
          and (o.business_date between u.friendly_since - 28 and u.friendly_since - 1
               or o.business_date between u.friendly_since + 7 and u.friendly_since + 34)
        group by u.unit_type"""))
    assert riders and min(riders.values()) >= K


def _suppressed_cells(path) -> tuple[int, int]:
    """(rows flagged suppressed, NULL numeric cells in them) over every mart with a `suppressed` flag."""
    import duckdb

    rows = cells = 0
    with duckdb.connect(str(path), read_only=True) as con:
        tables = [t for (t,) in con.execute(
            "select table_name from information_schema.columns where table_schema = 'marts' "
            "and column_name = 'suppressed' order by 1").fetchall()]
        for table in tables:
            numeric = [c for (c,) in con.execute(
                "select column_name from information_schema.columns where table_schema = 'marts' "
                "and table_name = ? and data_type in ('BIGINT', 'INTEGER', 'DOUBLE', 'HUGEINT') "
                "or (table_schema = 'marts' and table_name = ? and data_type like 'DECIMAL%')",
                [table, table]).fetchall()]
            nulls = " + ".join(f'("{c}" is null)::int' for c in numeric) or "0"
            r, n = con.execute(f'select count(*), coalesce(sum({nulls}), 0) from marts."{table}" '
                               "where suppressed").fetchone()
            rows, cells = rows + r, cells + n
    return rows, cells


def test_one_k_reaches_dbt_and_the_gate(district, tmp_path, monkeypatch):
    """XIHU_K_ANON is set once (ingest.settings.dbt_vars): a build at K=10 gated at K=10 passes the marts
    gate, with more cells suppressed than at K=5; a K=5 build gated at K=10 (what dbt's var default did
    to every run with XIHU_K_ANON=10) is blocked by the recount."""
    import shutil

    from expectations.gate import run_gate
    from tests.integration.conftest import run_dbt

    day = district.reporting_date
    monkeypatch.setenv("XIHU_DATA_DIR", str(district.data_dir))
    at_5 = run_gate("marts", district.path, day, "k5", raise_on_failure=False)
    assert at_5.success, at_5.summary
    k5 = _suppressed_cells(district.path)

    data_dir = tmp_path / "k10"
    (data_dir / "warehouse").mkdir(parents=True)
    shutil.copy(district.path, data_dir / "warehouse" / "xihu.duckdb")
    monkeypatch.setenv("XIHU_DATA_DIR", str(data_dir))
    monkeypatch.setenv("XIHU_K_ANON", "10")
    blocked = run_gate("marts", data_dir / "warehouse" / "xihu.duckdb", day, "k5-at-10", raise_on_failure=False)
    assert not blocked.success and "riders" in blocked.summary, blocked.summary
    run_dbt(data_dir, "build", day, "--full-refresh")
    at_10 = run_gate("marts", data_dir / "warehouse" / "xihu.duckdb", day, "k10", raise_on_failure=False)
    assert at_10.success, at_10.summary
    k10 = _suppressed_cells(data_dir / "warehouse" / "xihu.duckdb")
    print(f"\nsuppressed rows / NULL cells in them: K=5 {k5}, K=10 {k10}")
    assert k10[0] > k5[0] and k10[1] > k5[1]
