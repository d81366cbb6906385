"""The privacy rule of indicators.md on every published mart (schema `marts`) of the district fixture.

- No published table carries a rider key: no column named like one, and no text value shaped like the
  32-hex keyed hashes the ingest writes for phones, ID numbers and names.
- No published value is computed from fewer than K distinct people: every count of people is 0 or >= K,
  and the cells that count deliveries, visits, points or members are recounted here from
  intermediate/staging rows: a published value stands on >= K people, a NULL one on 1..K-1 (or was hidden
  by secondary suppression), and the row's `suppressed_cells` names exactly its NULLed cells.
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
        "unit_access_daily",
        "friendly_effect",
        "street_coverage_monthly",
        "station_usage_daily",
        "service_circle_daily",
        "volunteer_activity_monthly",
        "union_coverage_monthly",
        "district_daily_kpis",
        "friendly_event_study",
    }


def test_no_rider_key_column_or_value(district):
    for table, columns in mart_columns(district).items():
        for column, dtype in columns:
            assert "rider_key" not in column.lower() and "phone" not in column.lower(), (table, column)
            if dtype != "VARCHAR":
                continue
            values = [v for (v,) in district.query(f'select distinct "{column}" from marts."{table}"')]
            assert not [v for v in values if v and HEX32.match(v)], (table, column)


# Published counts of people, by the column's name: each counts the people it names, so its own value is
# the number of people behind it.
PEOPLE_COUNTS = (
    "active_riders",
    "distinct_riders",
    "active_volunteers",
    "riders_visited_30d",
    "active_riders_in_good_standing",
    "members_in_good_standing",
    "new_members",
    "withdrawals",
    "expulsions",
    "adopted_riders",
    "control_riders",
)
PEOPLE_WORDS = re.compile(r"riders|volunteers|members|withdrawals|expulsions")
# Data health: rows of a source's whole file per stage (union_members_fetched...), not cells of people.
LOAD_COUNTS = re.compile(r"_(fetched|loaded|quarantined|duplicates_removed)$")


def test_people_counts_are_zero_or_at_least_k(district):
    """indicators.md: a cell that counts fewer than K distinct people is suppressed, every count in every
    mart, members, new members and withdrawals included (checked against the people each count counts, not
    the row's population). Every published count of people is 0 or >= K."""
    checked = set()
    small = {}
    for table, columns in mart_columns(district).items():
        for column, dtype in columns:
            if column in PEOPLE_COUNTS:
                n = district.scalar(f'select count(*) from marts."{table}" where "{column}" between 1 and {K - 1}')
                if n:
                    small[f"{table}.{column}"] = n
                checked.add(column)
            elif dtype in ("BIGINT", "INTEGER", "HUGEINT") and not LOAD_COUNTS.search(column):
                assert not PEOPLE_WORDS.search(column), f"{table}.{column}: a count of people this test does not know"
    assert not small, f"published counts of 1..{K - 1} people: {small}"
    assert checked == set(PEOPLE_COUNTS)


def test_union_membership_counts_recounted(district):
    """The district row's membership counts recounted from staging (the month's export): each published
    one equals the recount and stands on >= K members; each NULL one is a recount of 1..K-1, or is named
    by secondary suppression."""
    rows = district.query("""
        with snap as (
            select m.month, max(e.snapshot_date) as as_of
            from (select distinct month from marts.union_coverage_monthly) m
            join (select distinct snapshot_date from staging.stg_union__members) e
              on e.snapshot_date < m.month + interval 1 month
            group by m.month
        ),
        recount as (
            select snap.month,
                   count(distinct member_id) filter (where status = 'in_good_standing') as good,
                   count(distinct member_id) filter (
                       where joined_on >= snap.month and joined_on < snap.month + interval 1 month) as joined
            from snap join staging.stg_union__members s on s.snapshot_date = snap.as_of
            group by snap.month
        )
        select u.month, u.members_in_good_standing, r.good, u.new_members, r.joined, u.suppressed_cells
        from marts.union_coverage_monthly u join recount r using (month)
        where u.org_level = 'district'""")
    assert rows
    for month, good, good_n, joined, joined_n, named in rows:
        for value, n, column in ((good, good_n, "members_in_good_standing"), (joined, joined_n, "new_members")):
            if value is None:
                assert 0 < n < K or column in named.split(","), (month, column, n)
            else:
                assert value == n and (n == 0 or n >= K), (month, column, value, n)


# Counts of events (deliveries, visits, points), and some medians and shares, and the people each stands
# on, recounted from intermediate/staging: (mart, column, key columns, SQL giving the keys and n = distinct
# riders).
_ORDERS = "intermediate.int_orders_matched"
_EVENTS = "staging.stg_stations__events"
_UNIT_STREET = f"""(select o.*, coalesce(u.street_id, 'unmatched') as street_id,
                           cast(date_trunc('month', o.business_date) as date) as month
                    from {_ORDERS} o left join seeds.units u using (unit_id))"""
EVENT_COUNTS = [
    (
        "unit_access_daily",
        "deliveries",
        "unit_id, business_date",
        f"select unit_id, business_date, count(distinct rider_key) filter (where is_delivered) as n "
        f"from {_ORDERS} where unit_id is not null group by all",
    ),
    (
        "unit_access_daily",
        "cancellations",
        "unit_id, business_date",
        f"select unit_id, business_date, count(distinct rider_key) filter (where status = 'cancelled') as n "
        f"from {_ORDERS} where unit_id is not null group by all",
    ),
    (
        "unit_access_daily",
        "elderly_meal_deliveries",
        "unit_id, business_date",
        f"select unit_id, business_date, count(distinct rider_key) filter (where is_delivered and elderly_meal) "
        f"as n from {_ORDERS} where unit_id is not null group by all",
    ),
    # unit_access_daily counts its riders from one row per unit, date and rider: its medians and shares are
    # recounted here too, from the orders
    (
        "unit_access_daily",
        "median_last100_min",
        "unit_id, business_date",
        f"select unit_id, business_date, count(distinct rider_key) filter (where last100_plausible) as n "
        f"from {_ORDERS} where unit_id is not null group by all",
    ),
    (
        "unit_access_daily",
        "share_entry_code_or_nfc",
        "unit_id, business_date",
        f"select unit_id, business_date, "
        f"count(distinct rider_key) filter (where is_delivered and entry_method is not null) as n "
        f"from {_ORDERS} where unit_id is not null group by all",
    ),
    (
        "unit_access_daily",
        "share_locker",
        "unit_id, business_date",
        # a share's people (macro share_people): the fewer of its numerator's and denominator's riders
        "select unit_id, business_date, case when lockers = 0 then riders else least(lockers, riders) end as n "
        "from (select unit_id, business_date, count(distinct rider_key) filter (where is_delivered) as riders, "
        "count(distinct rider_key) filter (where is_delivered and locker_used) as lockers "
        f"from {_ORDERS} where unit_id is not null group by all)",
    ),
    (
        "service_circle_daily",
        "deliveries",
        "street_id, business_date",
        f"select street_id, business_date, count(distinct rider_key) as n from {_UNIT_STREET} "
        "where is_delivered group by all",
    ),
    (
        "street_coverage_monthly",
        "deliveries",
        "street_id, month",
        f"select street_id, month, count(distinct rider_key) as n from {_UNIT_STREET} "
        "where is_delivered and unit_id is not null group by all",
    ),
    (
        "district_daily_kpis",
        "deliveries",
        "business_date",
        f"select business_date, count(distinct rider_key) as n from {_ORDERS} where is_delivered group by all",
    ),
    (
        "district_daily_kpis",
        "station_visits",
        "business_date",
        f"select event_date as business_date, count(distinct rider_key) as n from {_EVENTS} "
        "where event_type = 'check_in' group by all",
    ),
    (
        "district_daily_kpis",
        "points_earned",
        "business_date",
        f"select event_date as business_date, count(distinct rider_key) as n from {_EVENTS} "
        "where event_type = 'points_earn' group by all",
    ),
    (
        "station_usage_daily",
        "visits",
        "station_id, event_date",
        f"select station_id, event_date, count(distinct rider_key) as n from {_EVENTS} "
        "where event_type = 'check_in' group by all",
    ),
    (
        "station_usage_daily",
        "canteen_meals",
        "station_id, event_date",
        f"select station_id, event_date, count(distinct rider_key) as n from {_EVENTS} "
        "where event_type = 'service' and service = 'meal' group by all",
    ),
    (
        "station_usage_daily",
        "points_redeemed",
        "station_id, event_date",
        f"select station_id, event_date, count(distinct rider_key) as n from {_EVENTS} "
        "where event_type = 'points_redeem' group by all",
    ),
    (
        "station_usage_daily",
        "services_charging",
        "station_id, event_date",
        f"select station_id, event_date, count(distinct rider_key) as n from {_EVENTS} "
        "where event_type = 'service' and service = 'charging' group by all",
    ),
]


@pytest.mark.parametrize("mart, cell, keys, recount", EVENT_COUNTS, ids=[f"{m}.{c}" for m, c, *_ in EVENT_COUNTS])
def test_event_counts_stand_on_k_riders(district, mart, cell, keys, recount):
    """Every published count of events stands on >= K distinct riders (or on none, a count of 0); every
    cell of 1..K-1 riders is NULL and named in suppressed_cells; a NULL never hides a cell of >= K riders
    unless suppressed_cells names it (secondary suppression)."""
    on = " and ".join(f"m.{k.strip()} = r.{k.strip()}" for k in keys.split(","))
    rows = district.query(f"""
        select m.{cell}, coalesce(r.n, 0) as n,
               list_contains(string_split(m.suppressed_cells, ','), '{cell}') as named
        from marts.{mart} m left join ({recount}) r on {on}""")
    assert rows
    published_small = [r for r in rows if r[0] is not None and 0 < r[1] < K]
    assert not published_small, f"{len(published_small)} {mart}.{cell} published from 1..{K - 1} riders"
    assert not [r for r in rows if r[0] not in (None, 0) and r[1] == 0], "a count of events of no rider"
    assert all(named for value, n, named in rows if 0 < n < K)
    assert not [r for r in rows if r[0] is None and r[1] > 0 and not r[2]], (
        "a NULL count that suppressed_cells does not name"
    )
    assert not [r for r in rows if r[0] is not None and r[2]], "a named cell that is published"


def test_friendly_effect_groups_stand_on_k_riders(district):
    """Each published estimate stands on the riders of its measured units' window deliveries (final status
    delivered, whatever their last-100 value)."""
    for unit_type, did, named in district.query(
        "select unit_type, did_saving_min, suppressed_cells from marts.friendly_effect where units_measured > 0"
    ):
        assert did is not None and "did_saving_min" not in named.split(","), unit_type
    riders = dict(
        district.query("""
        select u.unit_type, count(distinct o.rider_key)
        from intermediate.int_orders_matched o join seeds.units u using (unit_id)
        where o.is_delivered and u.friendly_since between date '2026-08-01' and date '2026-08-14'
          and (o.business_date between u.friendly_since - 28 and u.friendly_since - 1
               or o.business_date between u.friendly_since + 7 and u.friendly_since + 34)
        group by u.unit_type""")
    )
    assert riders and min(riders.values()) >= K


def _suppressed_cells(path) -> tuple[int, int]:
    """(rows with a suppressed cell, cells named in suppressed_cells) over every mart."""
    import duckdb

    rows = cells = 0
    with duckdb.connect(str(path), read_only=True) as con:
        tables = [
            t
            for (t,) in con.execute(
                "select table_name from information_schema.columns where table_schema = 'marts' "
                "and column_name = 'suppressed_cells' order by 1"
            ).fetchall()
        ]
        for table in tables:
            r, n = con.execute(
                "select count(*) filter (where suppressed_cells <> ''), "
                "coalesce(sum(len(string_split(nullif(suppressed_cells, ''), ','))), 0) "
                f'from marts."{table}"'
            ).fetchone()
            rows, cells = rows + r, cells + n
    return rows, cells


def test_one_k_reaches_dbt_and_the_gate(district, tmp_path, monkeypatch):
    """XIHU_K_ANON is set once (ingest.settings.dbt_vars): a build at K=10 gated at K=10 passes the marts
    gate, with more cells suppressed than at K=5; a K=5 build gated at K=10 (what dbt's var default did
    to every run with XIHU_K_ANON=10) is blocked by the recount."""
    import shutil

    from expectations.gate import run_gate
    from tests.warehouse_helpers import run_dbt

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
    print(f"\nrows with a suppressed cell / suppressed cells: K=5 {k5}, K=10 {k10}")
    assert k10[0] > k5[0] and k10[1] > k5[1]
