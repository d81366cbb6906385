"""The sandbox world: determinism, registry counts, volumes, consistency, defects, and its truth."""

from __future__ import annotations

import collections
import datetime as dt
import json
import re
import resource
import shutil
import time

import numpy as np
import pytest

from sandbox.registry import (
    DID_WINDOW,
    LATER_SPAN,
    SEED_FILES,
    SEEDS_DIR,
    UNIT_TYPE_ORDER,
    load_registries,
    read_seeds,
)
from sandbox.world import (
    PLATFORM_SHARE,
    SAVING_MIN,
    World,
    gb11643_check_digit,
)

DAY = dt.date(2026, 11, 25)  # a Wednesday
TIME_KEYS = ("t_ordered", "t_accepted", "t_at_shop", "t_picked_up", "t_gate", "t_delivered")


@pytest.fixture(scope="module")
def world() -> World:
    return World(seed=7, scale=0.05)


def test_gb11643_check_digit():
    # The standard's own example and two checked by hand (weights 7 9 10 5 8 4 2 1 6 3 7 9 10 5 8 4 2).
    assert gb11643_check_digit("11010519491231002") == "X"
    assert gb11643_check_digit("44052418800101001") == "4"
    assert gb11643_check_digit("33010619900101001") == "8"


def test_same_seed_same_world_and_days_independent():
    a, b = World(7, 0.01), World(7, 0.01)
    b.orders("eleme", DAY - dt.timedelta(days=3))  # generating another day first changes nothing
    assert a.orders("eleme", DAY, corrected=True) == b.orders("eleme", DAY, corrected=True)
    assert a.station_events(DAY) == b.station_events(DAY)
    assert a.union_members(DAY) == b.union_members(DAY)
    assert a.orders("eleme", DAY) != World(8, 0.01).orders("eleme", DAY)


def test_registries_counts_and_independent_of_seed():
    rows = World(1, 0.01).registries()
    assert rows == World(99, 2.0).registries()
    assert len(rows["streets"]) == 11 and len(rows["volunteer_teams"]) == 17
    types = collections.Counter(u["unit_type"] for u in rows["units"])
    assert types == {
        "residential_compound": 447,
        "office_building": 301,
        "scenic_area": 8,
        "hospital": 48,
        "university": 23,
        "construction_site": 111,
    }
    kinds = collections.Counter(s["station_kind"] for s in rows["stations"])
    assert kinds == {"rest_station": 264, "canteen": 31, "caring_merchant": 226}
    assert rows["stations"][0]["station_id"] == "NF-0001"
    for u in rows["units"]:
        assert 120.02 <= u["lng"] <= 120.17 and 30.18 <= u["lat"] <= 30.33
    mapped = collections.Counter(c["platform"] for c in rows["aoi_crosswalk"])
    for p in PLATFORM_SHARE:
        assert 0.80 < mapped[p] / 938 < 0.90


def test_the_world_uses_exactly_the_seeds_registry():
    """Every unit, station, street and team the world serves is the committed seeds' (read, never written)."""
    reg = load_registries()
    seeds = read_seeds(SEEDS_DIR)
    assert reg.rows == seeds
    assert [u["unit_id"] for u in seeds["units"]] == [f"U{i + 1:04d}" for i in range(len(reg.unit_lng))]
    assert reg.unit_lng.tolist() == [u["lng"] for u in seeds["units"]]
    assert reg.unit_radius.tolist() == [u["radius_m"] for u in seeds["units"]]
    assert reg.station_ids == [s["station_id"] for s in seeds["stations"]]
    assert [s for s, _ in reg.streets] == [s["street_id"] for s in seeds["streets"]]
    world = World(7, 0.01)
    events = world.station_events(DAY)
    assert {e["station_id"] for e in events} <= set(reg.station_ids)
    assert {e["team_id"] for e in events if "team_id" in e} <= set(reg.team_ids)
    streets = {s["street_name"] for s in seeds["streets"]}
    assert {m["居住街道"] for m in world.union_members(DAY)} <= streets
    units = world.order_columns("meituan", DAY)["unit_idx"]
    assert units.max() < len(seeds["units"])


def test_a_changed_registry_is_served_as_it_is(tmp_path):
    """A unit added and a station removed in the seeds: the world follows, and nothing writes the seeds."""
    for name in SEED_FILES:
        shutil.copy(SEEDS_DIR / f"{name}.csv", tmp_path / f"{name}.csv")
    before = {name: (SEEDS_DIR / f"{name}.csv").read_bytes() for name in SEED_FILES}
    with open(tmp_path / "units.csv", "a", encoding="utf-8") as f:
        f.write("U9999,测试新小区,residential_compound,S01,120.0300,30.1900,80,2026-01-05,true,20,true,true,true\n")
    stations = (tmp_path / "stations.csv").read_text(encoding="utf-8").splitlines(keepends=True)
    (tmp_path / "stations.csv").write_text("".join(stations[:-1]), encoding="utf-8")
    world = World(7, 0.05, seeds_dir=tmp_path)
    rows = world.registries()
    assert rows["units"][-1]["unit_id"] == "U9999" and len(rows["stations"]) == len(stations) - 2
    c = world.order_columns("meituan", DAY)
    new = c["unit_idx"] == len(rows["units"]) - 1
    assert new.any()
    dx = (c["dest_lng"][new] - 120.03) * 111_320 * np.cos(np.radians(30.255))
    dy = (c["dest_lat"][new] - 30.19) * 110_574
    assert np.all(np.hypot(dx, dy) < 80)
    removed = stations[-1].split(",")[0]
    assert removed not in {e["station_id"] for e in world.station_events(DAY)}
    assert {name: (SEEDS_DIR / f"{name}.csv").read_bytes() for name in SEED_FILES} == before


def test_units_do_not_overlap_so_radius_matching_is_unambiguous():
    reg = load_registries()
    x = (reg.unit_lng - 120.095) * 111_320 * np.cos(np.radians(30.255))
    y = (reg.unit_lat - 30.255) * 110_574
    d = np.hypot(x[:, None] - x[None, :], y[:, None] - y[None, :])
    np.fill_diagonal(d, np.inf)
    assert np.all(d > reg.unit_radius[:, None] + reg.unit_radius[None, :])


def test_friendly_adoption_plan():
    units = load_registries().rows["units"]
    w0, w1 = DID_WINDOW
    for t in UNIT_TYPE_ORDER:
        of_type = [u for u in units if u["unit_type"] == t]
        adopters = [
            u for u in of_type if u["friendly_since"] and w0.isoformat() <= u["friendly_since"] <= w1.isoformat()
        ]
        late = (w1 + dt.timedelta(days=34)).isoformat()
        controls = [u for u in of_type if not u["friendly_since"] or u["friendly_since"] > late]
        assert len(adopters) >= 3 and len(controls) >= 3, t
    for t in ("residential_compound", "office_building"):
        of_type = [u for u in units if u["unit_type"] == t]
        share = sum(1 for u in of_type if u["friendly_since"] and u["friendly_since"] <= "2026-11-30") / len(of_type)
        assert 0.35 <= share <= 0.45
    dates = sorted(u["friendly_since"] for u in units if u["friendly_since"])
    assert dates[0] >= "2025-03-01" and dates[-1] <= LATER_SPAN[1].isoformat()


def test_later_adoptions_keep_the_demo_measurable():
    """Whatever day make demo runs on until LATER_SPAN ends + 34 days, its 73 loaded days hold the after
    window and >= 10 before days of two adoptions or more of at least three unit types."""
    adopted = [
        (u["unit_type"], dt.date.fromisoformat(u["friendly_since"]))
        for u in load_registries().rows["units"]
        if u["friendly_since"]
    ]
    last = LATER_SPAN[0] - dt.timedelta(days=1)
    while last <= LATER_SPAN[1] + dt.timedelta(days=34):
        first = last - dt.timedelta(days=72)
        measurable = collections.Counter(
            t for t, a in adopted if a - dt.timedelta(days=10) >= first and a + dt.timedelta(days=34) <= last
        )
        assert sum(n >= 2 for n in measurable.values()) >= 3, (last, measurable)
        last += dt.timedelta(days=1)


def test_volumes_split_and_weekend(world):
    n = {p: len(world.order_columns(p, DAY)["order_id"]) for p in PLATFORM_SHARE}
    total = sum(n.values())
    assert abs(total - 400_000 * 0.05) < 600
    for p, share in PLATFORM_SHARE.items():
        assert abs(n[p] / total - share) < 0.01
    saturday = len(world.order_columns("meituan", dt.date(2026, 11, 28))["order_id"])
    assert 1.10 < saturday / n["meituan"] < 1.20
    riders = set()
    for p in PLATFORM_SHARE:
        c = world.order_columns(p, DAY)
        riders |= set(c["rider_phone"][c["status"] == "delivered"].tolist())
    assert 22_000 * 0.05 * 0.9 < len(riders) < 22_000 * 0.05 * 1.1


def test_statuses_destinations_and_flags(world):
    c = world.order_columns("meituan", DAY)
    status = collections.Counter(c["status"].tolist())
    n = len(c["status"])
    assert 0.92 < status["delivered"] / n < 0.94 and 0.04 < status["cancelled"] / n < 0.06
    delivered = c["status"] == "delivered"
    assert 0.02 < np.isnan(c["t_gate"][delivered]).mean() < 0.04
    assert 0.012 < c["elderly_meal"].mean() < 0.018
    assert 0.04 < (c["unit_idx"] < 0).mean() < 0.06
    reg = load_registries()
    # Orders without an AOI lie inside their unit's radius (or outside every unit).
    u = c["unit_idx"]
    no_aoi = np.array([a is None for a in c["aoi_id"]]) & (u >= 0)
    assert 0.10 < no_aoi.sum() / (u >= 0).sum() < 0.20
    dx = (c["dest_lng"] - reg.unit_lng[u]) * 111_320 * np.cos(np.radians(30.255))
    dy = (c["dest_lat"] - reg.unit_lat[u]) * 110_574
    assert np.all(np.hypot(dx, dy)[u >= 0] < reg.unit_radius[u][u >= 0])
    # Friendly destinations: easy entry and rider bays.
    friendly = (u >= 0) & (reg.unit_friendly_ord[np.maximum(u, 0)] <= DAY.toordinal()) & delivered
    other = (u >= 0) & ~friendly & delivered
    easy = np.isin(c["entry_method"], ["code_scan", "nfc_tap"])
    assert easy[friendly].mean() > 0.8 and easy[other].mean() < 0.1
    assert (c["parking"][friendly] == "rider_bay").mean() > 0.7
    assert c["locker_used"][friendly].mean() > 2 * c["locker_used"][other].mean()


def test_milestones_in_order(world):
    orders = world.orders("sf", DAY)
    assert all(o["t_ordered"].date() == DAY for o in orders)
    implausible = 0
    for o in orders:
        times = [o[k] for k in TIME_KEYS if o[k] is not None]
        both = o["t_gate"] and o["t_delivered"]
        last100_s = (o["t_delivered"] - o["t_gate"]).total_seconds() if both else 1
        if not 0 < last100_s <= 7200:
            implausible += 1
            times = times[:-1]
        assert times == sorted(times), o
        if o["t_cancelled"]:
            assert all(t <= o["t_cancelled"] for t in times)
            assert o["status"] == "cancelled" and o["t_delivered"] is None
        assert (o["status"] == "delivered") == (o["t_delivered"] is not None)
    delivered = sum(o["status"] == "delivered" for o in orders)
    assert 0.001 < implausible / delivered < 0.006


def test_late_corrections(world):
    before = world.orders("meituan", DAY)
    after = world.orders("meituan", DAY, corrected=True)
    assert [o["order_id"] for o in before] == [o["order_id"] for o in after]
    changed = [(b, a) for b, a in zip(before, after, strict=True) if a != b]
    assert 0.007 < len(changed) / len(before) < 0.013
    kinds = collections.Counter((b["status"], a["status"]) for b, a in changed)
    assert set(kinds) == {("picked_up", "delivered"), ("delivered", "cancelled")}
    assert after == world.orders("meituan", DAY, corrected=True)


def _last100_by_unit(world: World, first: dt.date, last: dt.date) -> dict[tuple[int, int], list[float]]:
    """Plausible last-100-metres minutes of delivered orders per (unit, day ordinal), all platforms."""
    out: dict[tuple[int, int], list[float]] = collections.defaultdict(list)
    d = first
    while d <= last:
        for p in PLATFORM_SHARE:
            c = world.order_columns(p, d, corrected=True)
            x = (c["t_delivered"] - c["t_gate"]) / 60
            ok = (c["status"] == "delivered") & (c["unit_idx"] >= 0) & (x > 0) & (x <= 120)
            for u, v in zip(c["unit_idx"][ok].tolist(), x[ok].tolist(), strict=True):
                out[(u, d.toordinal())].append(v)
        d += dt.timedelta(days=1)
    return out


def test_difference_in_differences_recovers_the_saving_and_naive_is_biased():
    world = World(seed=11, scale=0.03)
    reg = load_registries()
    w0, w1 = (d.toordinal() for d in DID_WINDOW)
    first, last = DID_WINDOW[0] - dt.timedelta(days=28), DID_WINDOW[1] + dt.timedelta(days=34)
    data = _last100_by_unit(world, first, last)
    fs = reg.unit_friendly_ord

    def pooled(units: np.ndarray, lo: int, hi: int) -> float:
        vals = [v for u in units.tolist() for d in range(lo, hi + 1) for v in data.get((u, d), [])]
        return float(np.mean(vals))

    did_all, naive_all, truth_all = [], [], []
    for t, name in enumerate(UNIT_TYPE_ORDER):
        adopters = np.flatnonzero((reg.unit_type_idx == t) & (fs >= w0) & (fs <= w1))
        effects, naives = [], []
        for u in adopters.tolist():
            a = int(fs[u])
            controls = np.flatnonzero((reg.unit_type_idx == t) & (fs > a + 34))
            change = pooled(np.array([u]), a + 7, a + 34) - pooled(np.array([u]), a - 28, a - 1)
            control_change = pooled(controls, a + 7, a + 34) - pooled(controls, a - 28, a - 1)
            effects.append(control_change - change)
            naives.append(-change)
        did, naive = float(np.mean(effects)), float(np.mean(naives))
        print(f"{name}: truth {SAVING_MIN[name]} did {did:.2f} naive {naive:.2f} (n={len(adopters)})")
        assert abs(did - SAVING_MIN[name]) < 0.9, name
        did_all += effects
        naive_all += naives
        truth_all += [SAVING_MIN[name]] * len(effects)
    bias = np.mean(naive_all) - np.mean(truth_all)
    print(f"all types: truth {np.mean(truth_all):.2f} did {np.mean(did_all):.2f} naive bias {bias:.2f}")
    assert abs(np.mean(did_all) - np.mean(truth_all)) < 0.3
    assert bias >= 0.8
    assert world.truth()["naive_bias_min_in_test_window"] >= 0.8


def test_station_events_contract(world):
    days = [DAY + dt.timedelta(days=k) for k in range(3)]
    files = {d: world.station_events(d) for d in days}
    order_phones = set()
    for p in PLATFORM_SHARE:
        for d in (DAY - dt.timedelta(days=1), DAY, DAY + dt.timedelta(days=1)):
            order_phones |= set(world.order_columns(p, d)["rider_phone"].tolist())
    for d, events in files.items():
        assert 40_000 * 0.05 * 0.9 < len(events) < 40_000 * 0.05 * 1.1
        ids = collections.Counter(e["event_id"] for e in events)
        dup_share = sum(v - 1 for v in ids.values()) / len(events)
        assert 0.004 < dup_share < 0.02
        for e in events:
            json.dumps(e)  # every line is complete, serialisable JSON
            assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+08:00", e["ts"])
            if e.get("service") == "meal":  # meals only at canteens, always priced
                assert e["station_id"].startswith("CT-") and 1000 <= e["meal_price_cents"] <= 2500
        slipped = [
            e
            for e in events
            if e["ts"][:10] < (d - dt.timedelta(days=1)).isoformat()
            or e["ts"][:10] == (d - dt.timedelta(days=1)).isoformat()
            and e["ts"][11:13] < "23"
        ]
        assert 0.01 < len(slipped) / len(events) < 0.03
    # Visitors are riders of the order feeds (one can be idle for days, so allow a few).
    visitors = {e["rider_phone"] for e in files[DAY] if e["ts"].startswith(DAY.isoformat())}
    assert len(visitors - order_phones) / len(visitors) < 0.01
    # Redemptions never exceed the balance: replay every event once, in time order, per rider.
    unique = {e["event_id"]: e for es in files.values() for e in es}
    balance: dict[str, int] = collections.defaultdict(int)
    redemptions = 0
    for e in sorted(unique.values(), key=lambda e: e["ts"]):
        if e["type"] == "points_earn":
            balance[e["rider_phone"]] += e["points"]
        elif e["type"] == "points_redeem":
            balance[e["rider_phone"]] -= e["points"]
            redemptions += 1
            assert balance[e["rider_phone"]] >= 0
    assert redemptions > 50
    earns = [e for e in unique.values() if e["type"] == "points_earn"]
    assert any("team_id" in e for e in earns) and any("report_valid" in e for e in earns)


def test_union_members_defects_and_history(world):
    rows = world.union_members(DAY)
    by_no = collections.defaultdict(list)
    for r in rows:
        by_no[r["会员编号"]].append(r)
        "".join(r.values()).encode("gbk")  # the export is GBK
    members = len(by_no)
    assert 11_000 * 0.05 < members < 13_500 * 0.05
    ids = [rs[0]["身份证号"] for rs in by_no.values()]
    old = sum(len(i) == 15 for i in ids)
    bad = sum(len(i) == 18 and gb11643_check_digit(i[:17]) != i[17] for i in ids)
    assert 0.01 < bad / members < 0.035 and 0.002 < old / members < 0.025
    assert 0.008 < sum(rs[0]["手机号"] == "" for rs in by_no.values()) / members < 0.035
    twice = [rs for rs in by_no.values() if len(rs) == 2]
    assert twice and all(rs[0]["所属工会编码"] != rs[1]["所属工会编码"] for rs in twice)
    assert all(rs[0]["状态变更日期"] != rs[1]["状态变更日期"] for rs in twice)
    spellings = collections.Counter(
        "slash" if "/" in r["入会日期"] else "dash" if "-" in r["入会日期"] else "compact" for r in rows
    )
    assert len(spellings) == 3
    assert {"在册", "退会"} <= {r["会员状态"] for r in rows}
    later = world.union_members(DAY + dt.timedelta(days=7))
    assert later != rows and len(later) > len(rows) - 20
    # Members who ride share the rider's phone with the order feeds.
    phones = set()
    for p in PLATFORM_SHARE:
        phones |= set(world.order_columns(p, DAY)["rider_phone"].tolist())
    riders = [r for r in rows if r["职业类别"] == "外卖配送员" and r["手机号"]]
    assert sum(r["手机号"] in phones for r in riders) / len(riders) > 0.6
    orgs = world.union_orgs()
    types = collections.Counter(o["类型"] for o in orgs)
    assert types["行业工会联合会"] == 4 and types["企业工会"] == 16
    assert {r["所属工会编码"] for r in rows} <= {o["工会编码"] for o in orgs}


def test_truth_is_json(world):
    truth = json.loads(json.dumps(world.truth()))
    assert truth["seed"] == 7 and truth["scale"] == 0.05
    assert set(truth["saving_min_by_type"]) == set(UNIT_TYPE_ORDER)
    assert truth["did_test_window"] == {"start": "2026-08-01", "end": "2026-08-14"}
    assert truth["trend_min_per_day"] < 0
    assert truth["expected_daily"]["orders_weekday"] == 20_000


def test_orders_budget_at_scale_1():
    world = World(seed=7, scale=1.0)
    world.registries()
    started = time.perf_counter()
    orders = world.orders("meituan", DAY)
    seconds = time.perf_counter() - started
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"orders('meituan', {DAY}) at scale 1: {len(orders)} orders in {seconds:.2f} s, "
        f"peak RSS of the test process {rss_mb:.0f} MB"
    )
    assert 170_000 < len(orders) < 190_000
