"""Headline numbers recomputed by hand from the STAGING models and the seeds, compared with the marts.

indicators.md promises that an analyst can recompute any published number from the staging tables with
plain SQL. The SQL below is written from the definitions, not copied from the models: unit matching
(crosswalk AOI first, else the nearest unit whose radius holds the point, by haversine) and the
last-100-metres rule (delivered, 0 < minutes <= 120) are redone here, on a date in the middle of the
district fixture.
"""

from __future__ import annotations

from datetime import date

import pytest

pytestmark = pytest.mark.slow  # builds the sandbox district (minutes)

TEST_DATE = date(2026, 8, 20)

# The day's orders of every platform, matched to units by hand.
DAY_ORDERS = """
with orders as (
    select * from staging.stg_meituan__orders where business_date = $d
    union all by name
    select * from staging.stg_eleme__orders where business_date = $d
    union all by name
    select * from staging.stg_sf__orders where business_date = $d
    union all by name
    select * from staging.stg_shansong__orders where business_date = $d
),
by_aoi as (
    select o.platform, o.order_id, c.unit_id
    from orders o join seeds.aoi_crosswalk c on c.platform = o.platform and c.aoi_id = o.aoi_id
),
by_radius as (
    select platform, order_id, arg_min(unit_id, metres) as unit_id
    from (
        select o.platform, o.order_id, u.unit_id, u.radius_m,
               2 * 6371008.8 * asin(sqrt(
                   pow(sin(radians(u.lat - o.dest_lat) / 2), 2)
                   + cos(radians(o.dest_lat)) * cos(radians(u.lat))
                     * pow(sin(radians(u.lng - o.dest_lng) / 2), 2)
               )) as metres
        from orders o cross join seeds.units u
        where abs(u.lat - o.dest_lat) < 0.02 and abs(u.lng - o.dest_lng) < 0.02
    ) where metres <= radius_m
    group by platform, order_id
),
day_orders as (
    select o.*,
           coalesce(a.unit_id, r.unit_id) as unit_id,
           coalesce(u.friendly_since <= o.business_date, false) as to_friendly,
           o.status = 'delivered' as delivered,
           date_diff('second', o.gate_at, o.delivered_at) / 60.0 as minutes,
           o.status = 'delivered' and date_diff('second', o.gate_at, o.delivered_at) / 60.0 > 0
               and date_diff('second', o.gate_at, o.delivered_at) / 60.0 <= 120 as timed
    from orders o
    left join by_aoi a on a.platform = o.platform and a.order_id = o.order_id
    left join by_radius r on r.platform = o.platform and r.order_id = o.order_id
    left join seeds.units u on u.unit_id = coalesce(a.unit_id, r.unit_id)
)
"""


def by_hand(district, select: str) -> dict:
    rows = district.rows(DAY_ORDERS.replace("$d", f"date '{TEST_DATE}'") + select)
    assert len(rows) == 1
    return rows[0]


@pytest.fixture(scope="module")
def kpis(district) -> dict:
    rows = district.rows("select * from marts.district_daily_kpis where business_date = ?", [TEST_DATE])
    assert len(rows) == 1
    return rows[0]


def test_deliveries_and_share_to_friendly_units(district, kpis):
    hand = by_hand(district, """
        select count(*) filter (where delivered) as deliveries,
               count(*) filter (where delivered and to_friendly) / count(*) filter (where delivered) as share
        from day_orders""")
    assert hand["deliveries"] > 5000  # a real district day at scale 0.02
    assert kpis["deliveries"] == hand["deliveries"]
    assert kpis["share_to_friendly_units"] == pytest.approx(hand["share"], abs=1e-12)


def test_median_last100_friendly_vs_not(district, kpis):
    hand = by_hand(district, """
        select median(minutes) filter (where timed and to_friendly) as friendly,
               median(minutes) filter (where timed and unit_id is not null and not to_friendly) as other
        from day_orders""")
    assert kpis["median_last100_min_friendly"] == pytest.approx(hand["friendly"], abs=1e-9)
    assert kpis["median_last100_min_non_friendly"] == pytest.approx(hand["other"], abs=1e-9)
    # The world's friendly saving shows in the medians (2-4.5 min by type).
    assert hand["other"] - hand["friendly"] > 1.0


def test_station_visits_and_points(district, kpis):
    hand = district.rows("""
        select count(*) filter (where event_type = 'check_in') as visits,
               sum(points) filter (where event_type = 'points_earn') as earned,
               sum(points) filter (where event_type = 'points_redeem') as redeemed
        from staging.stg_stations__events
        where cast(event_at as date) = ?""", [TEST_DATE])[0]
    assert hand["visits"] > 0 and hand["earned"] > 0 and hand["redeemed"] > 0
    assert (kpis["station_visits"], kpis["points_earned"], kpis["points_redeemed"]) == (
        hand["visits"], hand["earned"], hand["redeemed"])


def test_unit_access_daily_row_of_the_busiest_unit(district):
    """The busiest unit of the day with no suppressed cell: every published figure of its row."""
    unsuppressed = {u for (u,) in district.query(
        "select unit_id from marts.unit_access_daily where business_date = ? and not suppressed",
        [TEST_DATE])}
    assert unsuppressed
    hand_rows = district.rows(DAY_ORDERS.replace("$d", f"date '{TEST_DATE}'") + """
        select unit_id,
               count(*) filter (where delivered) as deliveries,
               count(*) filter (where status = 'cancelled') as cancellations,
               median(minutes) filter (where timed) as median_min,
               quantile_cont(minutes, 0.9) filter (where timed) as p90_min,
               count(*) filter (where delivered and entry_method in ('code_scan', 'nfc_tap'))
                   / count(*) filter (where delivered and entry_method is not null) as code_or_nfc,
               count(*) filter (where delivered and parking = 'rider_bay')
                   / count(*) filter (where delivered) as rider_bay,
               count(*) filter (where delivered and locker_used)
                   / count(*) filter (where delivered) as locker,
               count(*) filter (where delivered and elderly_meal) as elderly
        from day_orders
        where unit_id is not null
        group by unit_id
        order by deliveries desc, unit_id""")
    hand = next(r for r in hand_rows if r["unit_id"] in unsuppressed)
    mart = district.rows("select * from marts.unit_access_daily where unit_id = ? and business_date = ?",
                         [hand["unit_id"], TEST_DATE])[0]
    assert (mart["deliveries"], mart["cancellations"], mart["elderly_meal_deliveries"]) == (
        hand["deliveries"], hand["cancellations"], hand["elderly"])
    assert mart["median_last100_min"] == pytest.approx(hand["median_min"], abs=1e-9)
    assert mart["p90_last100_min"] == pytest.approx(hand["p90_min"], abs=1e-9)
    assert mart["share_entry_code_or_nfc"] == pytest.approx(hand["code_or_nfc"], abs=1e-12)
    assert mart["share_parked_rider_bay"] == pytest.approx(hand["rider_bay"], abs=1e-12)
    assert mart["share_locker"] == pytest.approx(hand["locker"], abs=1e-12)


def test_unit_access_daily_totals_match_the_matched_deliveries(district):
    """Summed over units, the day's published deliveries (K-suppressed cells aside) equal the hand count."""
    hand = district.rows(DAY_ORDERS.replace("$d", f"date '{TEST_DATE}'") + """
        select unit_id, count(*) filter (where delivered) as deliveries
        from day_orders where unit_id is not null group by unit_id""")
    published = dict(district.query(
        "select unit_id, deliveries from marts.unit_access_daily where business_date = ?", [TEST_DATE]))
    assert set(published) == {r["unit_id"] for r in hand}
    for r in hand:
        assert published[r["unit_id"]] in (None, r["deliveries"]), r["unit_id"]
    assert sum(v for v in published.values() if v is not None) > 0.5 * sum(r["deliveries"] for r in hand)
