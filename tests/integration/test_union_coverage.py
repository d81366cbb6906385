"""Union coverage by work street over the sandbox district (issue 10, item 6).

Street of residence is known for members only, so a residence-street coverage rate reads ~90% by
construction; the work street (where the rider delivered most that month) is known for every active rider.
"""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.slow  # builds the sandbox district (minutes)


def test_every_active_rider_has_one_work_street(district):
    # active riders per platform and month, recounted from the matched deliveries
    riders = dict(
        ((m, p), n)
        for m, p, n in district.query("""
        select date_trunc('month', business_date)::date, platform, count(distinct rider_key)
        from intermediate.int_orders_matched where is_delivered and rider_key is not null group by 1, 2""")
    )
    cells = district.query("""
        select month, platform, sum(active_riders), count(*) filter (where hidden),
               count(*) filter (where active_riders is null and not hidden)
        from (select *, list_contains(string_split(suppressed_cells, ','), 'active_riders') as hidden
              from marts.union_coverage_monthly where street_basis = 'work' and org_level = 'all')
        group by 1, 2""")
    assert {(m, p) for m, p, *_ in cells} == set(riders)
    exact = 0
    for month, platform, active, n_suppressed, unexplained_nulls in cells:
        assert unexplained_nulls == 0, (month, platform)
        if n_suppressed == 0:
            # nothing hidden: the work streets partition the platform's active riders exactly
            assert active == riders[month, platform], (month, platform)
            exact += 1
        else:
            # each suppressed cell hides at least one rider (fewer than K, or more when hidden by secondary
            # suppression)
            assert 0 <= active <= riders[month, platform] - n_suppressed, (month, platform)
    assert exact >= 1  # the identity was checked on real sums, not only bounded


def test_work_street_coverage_is_not_members_only(district):
    rows = district.rows("""
        select month, street_basis, street_id, active_riders, active_riders_in_good_standing, coverage_rate
        from marts.union_coverage_monthly
        where org_level = 'all' and platform = 'meituan' and coverage_rate is not null
          and street_id not in ('unknown', 'outside_registry', 'no_unit_delivery', 'all')""")
    work = [r for r in rows if r["street_basis"] == "work"]
    assert len(work) >= 10
    district_rate = dict(
        district.query("""
        select month, coverage_rate from marts.union_coverage_monthly where org_level = 'district'""")
    )
    for r in work:
        # a work street holds members and non-members alike: its rate is near the district's, far from the
        # ~90% a members-only denominator gives
        assert r["coverage_rate"] < 0.8, r
        assert abs(r["coverage_rate"] - district_rate[r["month"]]) < 0.25, (r, district_rate[r["month"]])
    # residence rows publish no rider figures at all
    assert district.query("""
        select count(*) from marts.union_coverage_monthly
        where street_basis = 'residence' and (active_riders is not null or coverage_rate is not null)""") == [(0,)]
