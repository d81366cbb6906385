"""friendly_event_study against the world's truth (sandbox/world.py: last100 = base + trend(d) +
effect(u) - saving(type) * [u friendly on d] + noise).

- The recount is exact: per day relative to adoption, the adopted units' deliveries are those the generator
  made to the units friendly_effect measures, with their true unit (never on the wire).
- The trends were parallel: before adoption the adopted-minus-control gap is flat (the common trend
  cancels; the units' own effects leave a constant).
- The saving shows: after adoption the gap drops by the generating saving, within friendly_effect's
  tolerance, for every unit type whose cells are published and for 'all'.
"""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pytest

from sandbox.world import World
from tests.integration.test_friendly_effect import TOLERANCE_MIN, _true_unit_deliveries

pytestmark = pytest.mark.slow  # builds the sandbox district (minutes)

PRE, POST = range(-28, 0), range(7, 35)  # friendly_effect's windows (indicators.md)
FLAT_MIN_PER_DAY = 0.05  # the world's trend is -0.04 min/day: a gap that moved with it would show


@pytest.fixture(scope="module")
def study(district) -> pd.DataFrame:
    rows = pd.DataFrame(district.rows("select * from marts.friendly_event_study"))
    assert set(rows["business_date"]) == {district.reporting_date}
    assert set(rows["rel_day"]) == set(range(-28, 35))
    return rows


def _gaps(study: pd.DataFrame, unit_type: str) -> pd.Series:
    """Adopted minus control mean last-100 minutes per published rel_day of ``unit_type``."""
    rows = study[
        (study["unit_type"] == unit_type)
        & study["adopted_mean_last100_min"].notna()
        & study["control_mean_last100_min"].notna()
    ].set_index("rel_day")
    return rows["adopted_mean_last100_min"] - rows["control_mean_last100_min"]


def test_adopted_deliveries_are_exact_against_the_generator(district, study):
    effect = {r["unit_type"]: r for r in district.rows("select * from marts.friendly_effect")}
    measured = int(effect["all"]["units_measured"])
    assert measured > 0 and set(study[study["unit_type"] == "all"]["adopted_units"]) == {measured}
    # The measured adoptions: friendly_effect's (>= 20 deliveries in each window, after window ended by the
    # reporting date), recounted from the generator with every order's true unit.
    units = pd.DataFrame(World(district.seed, district.scale).registries()["units"])
    deliveries = _true_unit_deliveries(district)
    reporting = district.reporting_date.toordinal()
    counts = pd.Series(0, index=range(-28, 35))
    adopted = 0
    for idx, unit in units[units["friendly_since"].astype(bool)].iterrows():
        a = date.fromisoformat(unit["friendly_since"]).toordinal()
        if not reporting - 365 < a + 34 <= reporting:
            continue
        own = deliveries[deliveries["unit_idx"] == idx]
        if (own["day"].between(a - 28, a - 1).sum() < 20) or (own["day"].between(a + 7, a + 34).sum() < 20):
            continue
        adopted += 1
        near = own[own["day"].between(a - 28, a + 34)]
        counts = counts.add((near["day"] - a).value_counts(), fill_value=0)
    assert adopted == measured
    rows = study[study["unit_type"] == "all"].set_index("rel_day")
    published = rows["adopted_deliveries"].dropna()
    assert len(published) > 50, "most days of 'all' are suppressed: the recount compares nothing"
    assert {int(r): int(v) for r, v in published.items()} == {int(r): int(counts[r]) for r in published.index}


def test_trends_were_parallel_before_adoption(study):
    report = []
    for unit_type in ("all", *sorted(set(study["unit_type"]) - {"all"})):
        pre = _gaps(study, unit_type).reindex(PRE).dropna()
        if len(pre) < 20:
            continue
        slope = np.polyfit(pre.index, pre.values, 1)[0]
        report.append(f"{unit_type}: pre-adoption gap slope {slope:+.3f} min/day over {len(pre)} days")
        assert abs(slope) < FLAT_MIN_PER_DAY, report[-1]
    assert report and report[0].startswith("all"), "no unit type had a published pre-adoption gap"
    print("\n".join(report))


def test_the_gap_drops_by_the_true_saving_after_adoption(district, study):
    saving = district.truth["saving_min_by_type"]
    report = []
    for unit_type in ("all", *saving):
        gaps = _gaps(study, unit_type)
        pre, post = gaps.reindex(PRE).dropna(), gaps.reindex(POST).dropna()
        if len(pre) < 20 or len(post) < 20:
            continue
        drop = pre.mean() - post.mean()
        true = np.mean(list(saving.values())) if unit_type == "all" else saving[unit_type]
        report.append(f"{unit_type}: gap drop {drop:.3f} min, true saving {true}")
        if unit_type != "all":  # 'all' mixes types in proportion to their deliveries: reported, not bounded
            assert abs(drop - true) < TOLERANCE_MIN, report[-1]
        assert drop > 0, report[-1]
    assert len(report) >= 2, f"too few unit types with published days: {report}"
    print("\n".join(report))
