"""friendly_effect against the world's truth: the DiD recovers the generating saving, the naive
before/after carries the trend.

Two separate claims, so that a failure says which part is wrong:
- the mart is *exact*: it equals the DiD of indicators.md recomputed here from the generator's own
  columns, with the generator's true unit of every order (never on the wire). A difference can only come
  from the pipeline (fetch, load, staging, unit matching, the model's SQL);
- the estimate is *right*: within 0.5 min of the saving the world was generated with. The distance left
  is the world's sampling noise (few deliveries per adopted unit at this scale), not the pipeline's.
"""

from __future__ import annotations

from datetime import date, timedelta

import pandas as pd
import pytest
from scipy.stats import t as student_t

from sandbox.world import PLATFORMS, World

pytestmark = pytest.mark.slow  # builds the sandbox district (minutes)

TOLERANCE_MIN = 0.5


def _true_unit_deliveries(district) -> pd.DataFrame:
    """Deliveries (indicators.md: final status delivered) with their true unit, as generated, and whether
    their last-100 value is plausible (0 < x <= 120; a missing gate time is not)."""
    world = World(district.seed, district.scale)
    frames = []
    for day in district.dates:
        for platform in PLATFORMS:
            c = world.order_columns(platform, day, corrected=True)
            last100 = (c["t_delivered"] - c["t_gate"]) / 60.0
            keep = (c["status"] == "delivered") & (c["unit_idx"] >= 0)
            frames.append(
                pd.DataFrame(
                    {
                        "unit_idx": c["unit_idx"][keep],
                        "minutes": last100[keep],
                        "plausible": (last100[keep] > 0) & (last100[keep] <= 120),
                        "day": day.toordinal(),
                    }
                )
            )
    return pd.concat(frames, ignore_index=True)


def _did_from_truth(district) -> pd.DataFrame:
    """friendly_effect's per-type DiD and naive savings, computed the way indicators.md defines them:
    adoptions whose after window ended within the 365 days up to the reporting date, >= 20 deliveries in
    each window, means over the plausible values only; per type the mean effect, its sample sd and n."""
    units = pd.DataFrame(World(district.seed, district.scale).registries()["units"])
    units["adopted"] = [date.fromisoformat(s).toordinal() if s else None for s in units["friendly_since"]]
    never = date.max.toordinal()
    units["friendly_from"] = units["adopted"].fillna(never).astype(int)
    d = _true_unit_deliveries(district).merge(
        units[["unit_type", "friendly_from"]], left_on="unit_idx", right_index=True
    )
    reporting = district.reporting_date.toordinal()
    rows = []
    for idx, unit in units[units["adopted"].notna()].iterrows():
        a = int(unit["adopted"])
        if not reporting - 365 < a + 34 <= reporting:
            continue
        own = d[d["unit_idx"] == idx]
        before = own[(own["day"] >= a - 28) & (own["day"] <= a - 1)]
        after = own[(own["day"] >= a + 7) & (own["day"] <= a + 34)]
        if len(before) < 20 or len(after) < 20:
            continue
        control = d[(d["unit_type"] == unit["unit_type"]) & (d["friendly_from"] > a + 34) & d["plausible"]]
        c_before = control[(control["day"] >= a - 28) & (control["day"] <= a - 1)]["minutes"]
        c_after = control[(control["day"] >= a + 7) & (control["day"] <= a + 34)]["minutes"]
        change = after[after["plausible"]]["minutes"].mean() - before[before["plausible"]]["minutes"].mean()
        rows.append(
            {"unit_type": unit["unit_type"], "naive": -change, "did": (c_after.mean() - c_before.mean()) - change}
        )
    return (
        pd.DataFrame(rows)
        .groupby("unit_type")
        .agg(units=("did", "size"), did=("did", "mean"), naive=("naive", "mean"), sd=("did", "std"))
    )


@pytest.fixture(scope="module")
def effect(district) -> dict[str, dict]:
    rows = district.rows("select * from marts.friendly_effect")
    assert {r["reporting_date"] for r in rows} == {district.reporting_date}
    return {r["unit_type"]: r for r in rows}


def test_measured_units_are_the_test_window_adopters(district, effect):
    window = district.truth["did_test_window"]
    units = World(district.seed, district.scale).registries()["units"]
    expected: dict[str, int] = {}
    for u in units:
        if u["friendly_since"] and window["start"] <= u["friendly_since"] <= window["end"]:
            expected[u["unit_type"]] = expected.get(u["unit_type"], 0) + 1
    measured = {t: r["units_measured"] for t, r in effect.items() if t != "all" and r["units_measured"]}
    assert measured == expected
    assert effect["all"]["units_measured"] == sum(expected.values())
    assert all(n >= 3 for n in expected.values())  # the world's promise: >= 3 adopters per type


def test_did_is_exact_against_the_generator(district, effect):
    truth = _did_from_truth(district)
    for unit_type, row in truth.iterrows():
        mart = effect[unit_type]
        assert mart["units_measured"] == row["units"], unit_type
        assert mart["did_saving_min"] == pytest.approx(row["did"], abs=1e-9), unit_type
        assert mart["naive_saving_min"] == pytest.approx(row["naive"], abs=1e-9), unit_type
        # 95% interval: Student's t with n - 1 degrees of freedom (scipy as the reference here).
        half = student_t.ppf(0.975, row["units"] - 1) * row["sd"] / row["units"] ** 0.5
        assert mart["did_saving_ci_high_min"] - mart["did_saving_min"] == pytest.approx(half, abs=1e-5), unit_type
        assert mart["did_saving_min"] - mart["did_saving_ci_low_min"] == pytest.approx(half, abs=1e-5), unit_type


def test_did_recovers_the_true_saving_and_naive_is_biased_by_the_trend(district, effect):
    saving = district.truth["saving_min_by_type"]
    bias = district.truth["naive_bias_min_in_test_window"]
    report = []
    for unit_type, true_saving in saving.items():
        row = effect[unit_type]
        assert row["units_measured"] > 0 and row["suppressed_cells"] == "", unit_type
        did, naive = row["did_saving_min"], row["naive_saving_min"]
        report.append(f"{unit_type}: did {did:.3f} naive {naive:.3f} true {true_saving}")
        assert abs(did - true_saving) < TOLERANCE_MIN, report[-1]
        assert abs(naive - true_saving) > abs(did - true_saving), report[-1]
        # The naive figure overstates by the trend over the 35 days between the windows' centres.
        assert naive - did == pytest.approx(bias, abs=0.15), report[-1]
        assert row["did_saving_ci_low_min"] < did < row["did_saving_ci_high_min"]
    print("\n".join(report))


def test_rider_hours_follow_the_recent_deliveries(district, effect):
    """rider_hours_saved_per_month = DiD x deliveries to the measured units in the last 30 days / 60."""
    for unit_type, row in effect.items():
        if not row["units_measured"]:
            continue
        assert row["deliveries_last_30_days"] > 0, unit_type
        assert row["rider_hours_saved_per_month"] == pytest.approx(
            row["did_saving_min"] * row["deliveries_last_30_days"] / 60.0
        ), unit_type


def test_window_dates_cover_every_measured_adoption(district):
    """The fixture's dates hold both windows of every test-window adoption (a guard on the fixture)."""
    window = district.truth["did_test_window"]
    assert district.dates[0] == date.fromisoformat(window["start"]) - timedelta(days=28)
    assert district.dates[-1] == date.fromisoformat(window["end"]) + timedelta(days=34)
    loaded = dict(district.query("select business_date, count(*) from raw.meituan_orders group by business_date"))
    assert sorted(loaded) == district.dates
    expected = district.truth["expected_daily"]
    meituan_share = expected["orders_share_by_platform"]["meituan"]
    assert min(loaded.values()) > 0.9 * expected["orders_weekday"] * meituan_share
