"""The deterministic world the sandbox serves: orders, station events, union members, and their truth.

Why a generated world with a known truth: the indicators (indicators.md) must be checked against numbers
that are known in advance. The world's last-100-metres minutes follow an explicit model,

    last100(u, d) = base(type) + trend(d) + effect(u) - saving(type) * [u friendly on d] + noise,

and ``World.truth()`` publishes its parameters, so a test can check that ``friendly_effect``'s
difference-in-differences recovers ``saving`` while the naive before/after is biased by the trend.

Determinism: everything is a pure function of (seed, scale, date). Each (stream, platform, day) draws from
its own generator seeded by (seed, stream, platform, day), so any day can be generated alone, in any order.
The registry (units, stations, streets, teams) is the committed dbt seeds, read by ``registry.py``;
volumes scale with ``scale``, the registry does not.

Two ways to read orders: ``orders()`` returns the documented list of dicts; ``order_columns()`` returns
the same orders as numpy columns (epoch seconds, NaN when missing) for callers that encode in bulk, plus
the truth-only ``unit_idx`` (never on the wire).
"""

from __future__ import annotations

import datetime as dt
import uuid
import zlib
from functools import cached_property
from pathlib import Path

import numpy as np

from sandbox.registry import (
    ADOPTION_SPAN,
    DID_WINDOW,
    M_PER_DEG_LAT,
    M_PER_DEG_LNG,
    NEVER,
    PLATFORMS,
    REGISTRY_SEED,
    SEEDS_DIR,
    UNIT_TYPE_ORDER,
    load_registries,
)

TZ = dt.timezone(dt.timedelta(hours=8), "Asia/Shanghai")
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)

# --- volumes at scale 1 (sources.md)
ORDERS_PER_WEEKDAY = 400_000
WEEKEND_FACTOR = 1.15
PLATFORM_SHARE = {"meituan": 0.45, "eleme": 0.35, "sf": 0.12, "shansong": 0.08}
RIDER_POOL = 27_800  # x mean activity 0.79 -> ~22,000 distinct active riders a day
SECOND_PLATFORM_SHARE = 0.08  # riders working two platforms with the same phone
VOLUNTEER_SHARE = 0.06
STATION_EVENTS_PER_DAY = 40_000
UNION_POOL = 13_000  # members ever on record; ~11,000-12,500 on record during 2026

# --- the truth of the last 100 metres (minutes)
BASE_MIN = {
    "residential_compound": 14.0,
    "office_building": 13.0,
    "scenic_area": 16.0,
    "hospital": 12.0,
    "university": 15.0,
    "construction_site": 12.0,
}
SAVING_MIN = {
    "residential_compound": 3.0,
    "office_building": 2.5,
    "scenic_area": 4.5,
    "hospital": 2.0,
    "university": 3.5,
    "construction_site": 1.5,
}
OUTSIDE_BASE_MIN = 10.0
TREND_START, TREND_END = dt.date(2026, 6, 15), dt.date(2026, 10, 15)
TREND_MIN_PER_DAY = -0.03
UNIT_EFFECT_SD, UNIT_EFFECT_CLIP = 1.0, 2.0
NOISE_SD, NOISE_FLOOR = 2.5, 4.0  # shifted gamma: mean 0, sd 2.5, never below -4
IMPLAUSIBLE_SHARE = 0.003
GATE_MISSING_SHARE = 0.03

# --- statuses at export, and late corrections
P_CANCELLED, P_OPEN_ACCEPTED, P_OPEN_PICKED_UP = 0.05, 0.008, 0.012
P_CORRECT_OPEN, P_CORRECT_DELIVERED = 0.7, 0.002

# --- stations
SERVICES = ("charging", "water", "microwave", "rest", "restroom", "first_aid", "haircut", "bike_repair")
SERVICE_P = (0.25, 0.25, 0.10, 0.15, 0.15, 0.02, 0.03, 0.05)
MERCHANT_SERVICES = (0, 1, 2, 4)  # caring merchants: charging, water, microwave, restroom
EARN_REASONS = ("elderly_meal", "hazard_report", "emergency_assist", "volunteer_event", "training")
EARN_P = (0.30, 0.25, 0.05, 0.20, 0.20)
EARN_POINTS = (5, 10, 20, 15, 10)  # hazard_report earns 2 when the report is not valid
ITEMS = (("soap", 2), ("water_cup", 8), ("towel", 10), ("umbrella", 20), ("raincoat", 25), ("power_bank", 30))
DUPLICATE_SHARE, SLIP_SHARE, DRIFT_MAX_S = 0.01, 0.02, 300

# --- union
FEDERATIONS = (
    ("XHGH-HY01", "西湖区货运行业工会联合会"),
    ("XHGH-HY02", "西湖区网约车行业工会联合会"),
    ("XHGH-HY03", "西湖区快递行业工会联合会"),
    ("XHGH-HY04", "西湖区外卖配送行业工会联合会"),
)
# (code, name, federation index, occupation, platform)
ENTERPRISE_UNIONS = (
    ("XHGH-QY01", "美团西湖一站工会", 3, "外卖配送员", "美团"),
    ("XHGH-QY02", "美团西湖二站工会", 3, "外卖配送员", "美团"),
    ("XHGH-QY03", "美团文新站工会", 3, "外卖配送员", "美团"),
    ("XHGH-QY04", "美团转塘站工会", 3, "外卖配送员", "美团"),
    ("XHGH-QY05", "饿了么西湖站工会", 3, "外卖配送员", "饿了么"),
    ("XHGH-QY06", "饿了么翠苑站工会", 3, "外卖配送员", "饿了么"),
    ("XHGH-QY07", "饿了么三墩站工会", 3, "外卖配送员", "饿了么"),
    ("XHGH-QY08", "顺丰同城西湖分部工会", 3, "外卖配送员", "顺丰同城"),
    ("XHGH-QY09", "顺丰同城留下分部工会", 3, "外卖配送员", "顺丰同城"),
    ("XHGH-QY10", "闪送西湖服务站工会", 3, "外卖配送员", "闪送"),
    ("XHGH-QY11", "中通快递西湖网点工会", 2, "快递员", "其他"),
    ("XHGH-QY12", "圆通速递西湖网点工会", 2, "快递员", "其他"),
    ("XHGH-QY13", "韵达快递西湖网点工会", 2, "快递员", "其他"),
    ("XHGH-QY14", "滴滴出行西湖服务中心工会", 1, "网约车司机", "滴滴"),
    ("XHGH-QY15", "曹操出行西湖分公司工会", 1, "网约车司机", "其他"),
    ("XHGH-QY16", "西湖区物流运输企业联合工会", 0, "货车司机", ""),
)
PLATFORM_ZH = {"meituan": "美团", "eleme": "饿了么", "sf": "顺丰同城", "shansong": "闪送"}
P_BAD_CHECK, P_OLD_ID, P_NO_PHONE, P_TRANSFER, P_WITHDRAW = 0.02, 0.01, 0.02, 0.03, 0.10

GB11643_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈姚卢"
_GIVEN = "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华建国志红文斌波辉鹏宇浩凯健俊峰晨阳林亮成龙飞鑫"
_PHONE_PREFIX = np.array(
    [
        130,
        131,
        132,
        133,
        135,
        136,
        137,
        138,
        139,
        150,
        151,
        152,
        155,
        157,
        158,
        159,
        166,
        173,
        175,
        176,
        177,
        180,
        181,
        182,
        183,
        185,
        186,
        187,
        188,
        189,
        191,
        199,
    ]
)
_REGION_CODES = np.array(
    [330106, 330105, 330110, 330183, 341222, 342422, 362330, 412726, 422823, 513030, 522426, 532128, 330382, 330522]
)


def gb11643_check_digit(first17: str) -> str:
    """GB 11643-1999 check character of an 18-digit resident ID: ISO 7064 MOD 11-2 over the first 17."""
    total = sum(int(c) * w for c, w in zip(first17, GB11643_WEIGHTS, strict=True))
    return "10X98765432"[total % 11]


def _tag(name: str) -> int:
    return zlib.crc32(name.encode())


def _rng(seed: int, *parts: int | str) -> np.random.Generator:
    """A generator for one stream: (seed, stream name, platform, day ordinal, ...)."""
    entropy = [seed, REGISTRY_SEED] + [_tag(p) if isinstance(p, str) else int(p) for p in parts]
    return np.random.default_rng(np.random.SeedSequence(entropy))


def _day_start_epoch(day: dt.date) -> int:
    return int((dt.datetime(day.year, day.month, day.day, tzinfo=TZ) - _EPOCH).total_seconds())


def trend_min(ordinals: np.ndarray) -> np.ndarray:
    """District-wide trend: flat, then -0.03 min/day from TREND_START to TREND_END, then flat again."""
    days = np.clip(np.asarray(ordinals) - TREND_START.toordinal(), 0, (TREND_END - TREND_START).days)
    return TREND_MIN_PER_DAY * days


def _noise(rng: np.random.Generator, n: int) -> np.ndarray:
    """Shifted gamma noise: mean 0, sd NOISE_SD, bounded below by -NOISE_FLOOR (keeps minutes positive)."""
    theta = NOISE_SD**2 / NOISE_FLOOR
    return rng.gamma(NOISE_FLOOR / theta, theta, n) - NOISE_FLOOR


def _pick(rng: np.random.Generator, options: tuple, probs: tuple, n: int) -> np.ndarray:
    return np.array(options, dtype=object)[rng.choice(len(options), n, p=probs)]


class World:
    """The sandbox's world for one (seed, scale). Cheap to construct; populations are built on first use."""

    def __init__(self, seed: int, scale: float, seeds_dir: Path = SEEDS_DIR):
        if scale <= 0:
            raise ValueError("scale must be positive")
        self.seed = int(seed)
        self.scale = float(scale)
        self._reg = load_registries(Path(seeds_dir))

    # ------------------------------------------------------------------ registries and truth
    def registries(self) -> dict[str, list[dict]]:
        """The seeds the world is built on (streets, units, aoi_crosswalk, stations, volunteer_teams)."""
        return self._reg.rows

    def truth(self) -> dict:
        """The parameters the world was generated from (JSON-serialisable)."""
        weekday_orders = ORDERS_PER_WEEKDAY * self.scale
        units = self._reg.rows["units"]
        friendly_by_type = {}
        for t in UNIT_TYPE_ORDER:
            of_type = [u for u in units if u["unit_type"] == t]
            friendly_by_type[t] = round(
                sum(1 for u in of_type if u["friendly_since"] and u["friendly_since"] <= ADOPTION_SPAN[1].isoformat())
                / len(of_type),
                3,
            )
        return {
            "seed": self.seed,
            "scale": self.scale,
            "registry_seed": REGISTRY_SEED,
            "base_min_by_type": BASE_MIN,
            "saving_min_by_type": SAVING_MIN,
            "outside_unit_base_min": OUTSIDE_BASE_MIN,
            "trend": (
                f"district-wide, all units alike: 0 until {TREND_START}, "
                f"then {TREND_MIN_PER_DAY} min/day "
                f"until {TREND_END}, flat afterwards; a naive before/after over the windows of "
                f"indicators.md overstates the saving by 35 x {-TREND_MIN_PER_DAY} = "
                f"{round(-35 * TREND_MIN_PER_DAY, 2)} min for adoptions in the test window"
            ),
            "trend_min_per_day": TREND_MIN_PER_DAY,
            "trend_start": TREND_START.isoformat(),
            "trend_end": TREND_END.isoformat(),
            "naive_bias_min_in_test_window": round(-35 * TREND_MIN_PER_DAY, 3),
            "did_test_window": {"start": DID_WINDOW[0].isoformat(), "end": DID_WINDOW[1].isoformat()},
            "unit_effect_sd_min": UNIT_EFFECT_SD,
            "noise_sd_min": NOISE_SD,
            "implausible_share": IMPLAUSIBLE_SHARE,
            "gate_missing_share": GATE_MISSING_SHARE,
            "friendly_share_by_type_2026_11_30": friendly_by_type,
            "expected_daily": {
                "orders_weekday": round(weekday_orders),
                "orders_weekend": round(weekday_orders * WEEKEND_FACTOR),
                "orders_share_by_platform": PLATFORM_SHARE,
                "orders_outside_units_share": 0.05,
                "status_share": {
                    "delivered": round(1 - P_CANCELLED - P_OPEN_ACCEPTED - P_OPEN_PICKED_UP, 4),
                    "cancelled": P_CANCELLED,
                    "accepted": P_OPEN_ACCEPTED,
                    "picked_up": P_OPEN_PICKED_UP,
                },
                "late_correction_share": round(P_OPEN_PICKED_UP * P_CORRECT_OPEN + P_CORRECT_DELIVERED, 4),
                "active_riders": round(self._riders["active_p"].sum()),
                "station_events": round(STATION_EVENTS_PER_DAY * self.scale),
                "station_duplicate_share": DUPLICATE_SHARE,
                "station_slip_share": SLIP_SHARE,
                "union_members_pool": len(self._members["member_no"]),
            },
        }

    # ------------------------------------------------------------------ riders
    @cached_property
    def _riders(self) -> dict[str, np.ndarray]:
        """The rider population: stable across days, so riders recur (30-day activity, union coverage)."""
        rng = _rng(self.seed, "riders")
        n = max(20, round(RIDER_POOL * self.scale))
        shares = np.array([PLATFORM_SHARE[p] for p in PLATFORMS])
        primary = rng.choice(4, n, p=shares)
        second = np.where(rng.random(n) < SECOND_PLATFORM_SHARE, (primary + rng.integers(1, 4, n)) % 4, -1)
        # Unique 11-digit phones: prefix + 8 digits drawn without replacement per prefix-free number space.
        tails = rng.choice(100_000_000, n, replace=False)
        prefixes = _PHONE_PREFIX[rng.integers(len(_PHONE_PREFIX), size=n)]
        phones = [f"{p}{t:08d}" for p, t in zip(prefixes, tails, strict=True)]
        s_idx = rng.integers(len(_SURNAMES), size=n)
        g1 = rng.integers(len(_GIVEN), size=n)
        g2 = np.where(rng.random(n) < 0.6, rng.integers(len(_GIVEN), size=n), -1)
        names = [
            _SURNAMES[s] + _GIVEN[a] + (_GIVEN[b] if b >= 0 else "") for s, a, b in zip(s_idx, g1, g2, strict=True)
        ]
        team = np.where(rng.random(n) < VOLUNTEER_SHARE, rng.integers(len(self._reg.team_ids), size=n), -1)
        ids = {
            p: [f"{code}{k:07d}" for k in rng.permutation(n) + 1_000_000]
            for p, code in zip(PLATFORMS, ("mt", "elm", "sf", "ss"), strict=True)
        }
        return {
            "primary": primary,
            "second": second,
            "phone": np.array(phones, dtype=object),
            "name": np.array(names, dtype=object),
            "team": team,
            "productivity": rng.gamma(2.0, 1.0, n),
            "active_p": rng.beta(6.0, 1.6, n),
            "station_p": rng.gamma(1.5, 1.0, n),
            "ids": {p: np.array(v, dtype=object) for p, v in ids.items()},
        }

    def _active(self, day: dt.date) -> np.ndarray:
        r = self._riders
        return _rng(self.seed, "active", day.toordinal()).random(len(r["active_p"])) < r["active_p"]

    @cached_property
    def _unit_effect(self) -> np.ndarray:
        eff = _rng(self.seed, "unit_effects").normal(0.0, UNIT_EFFECT_SD, len(self._reg.unit_type_idx))
        return np.clip(eff, -UNIT_EFFECT_CLIP, UNIT_EFFECT_CLIP)

    # ------------------------------------------------------------------ orders
    def order_columns(self, platform: str, day: dt.date, corrected: bool = False) -> dict[str, np.ndarray]:
        """The orders of ``orders()`` as numpy columns, in the same order.

        Times are epoch seconds (float64, NaN = missing); string columns are object arrays; ``unit_idx``
        is the destination unit's row in the units seed (-1 outside every unit): truth only, not on the wire.
        """
        if platform not in PLATFORMS:
            raise ValueError(f"unknown platform {platform!r}")
        p_idx = PLATFORMS.index(platform)
        reg, riders = self._reg, self._riders
        rng = _rng(self.seed, "orders", p_idx, day.toordinal())
        weekend = day.weekday() >= 5
        n = int(
            rng.poisson(
                ORDERS_PER_WEEKDAY * PLATFORM_SHARE[platform] * self.scale * (WEEKEND_FACTOR if weekend else 1.0)
            )
        )

        # Riders: today's active riders working this platform, weighted by productivity.
        active = self._active(day)
        works = (riders["primary"] == p_idx) | (riders["second"] == p_idx)
        pool = np.flatnonzero(active & works)
        if len(pool) == 0:
            pool = np.flatnonzero(works)
        w = riders["productivity"][pool] * np.where(riders["primary"][pool] == p_idx, 1.0, 0.5)
        rider = pool[rng.choice(len(pool), n, p=w / w.sum())]

        # Order time: lunch and dinner peaks over a daytime background, seconds since local midnight.
        comp = rng.choice(3, n, p=(0.35, 0.30, 0.35))
        secs = np.where(
            comp == 0,
            rng.normal(11.75 * 3600, 40 * 60, n),
            np.where(comp == 1, rng.normal(18.0 * 3600, 50 * 60, n), rng.uniform(0, 86_400, n)),
        )
        secs = np.sort(np.clip(secs, 0, 86_399).astype(np.int64))

        # Destination: 95% a unit (weighted), 5% an ordinary address outside every unit.
        outside = rng.random(n) < 0.05
        unit = np.where(outside, -1, rng.choice(len(reg.unit_weight), n, p=reg.unit_weight))
        u = np.maximum(unit, 0)
        r = reg.unit_radius[u] * 0.8 * np.sqrt(rng.random(n))  # strictly inside the unit's radius
        ang = rng.uniform(0, 2 * np.pi, n)
        dest_lng = reg.unit_lng[u] + r * np.cos(ang) / M_PER_DEG_LNG
        dest_lat = reg.unit_lat[u] + r * np.sin(ang) / M_PER_DEG_LAT
        out_pick = rng.integers(len(reg.outside_lng), size=n)
        dest_lng = np.where(outside, reg.outside_lng[out_pick], dest_lng).round(6)
        dest_lat = np.where(outside, reg.outside_lat[out_pick], dest_lat).round(6)
        aoi_codes = np.array(reg.unit_aoi[platform] + [None], dtype=object)
        aoi = aoi_codes[np.where(outside, -1, unit)]

        # Milestones (seconds since midnight, latent: as if everything completed).
        t_acc = secs + 12 + rng.exponential(90, n)
        t_shop = t_acc + rng.gamma(3.0, 160, n)
        t_pick = t_shop + rng.gamma(2.0, 150, n)
        distance = np.clip(rng.lognormal(np.log(2300), 0.5, n), 200, 15_000).round()
        t_gate = t_pick + distance / rng.uniform(4.5, 6.5, n) + rng.gamma(2.0, 45, n)
        type_idx = reg.unit_type_idx[u]
        friendly = (~outside) & (reg.unit_friendly_ord[u] <= day.toordinal())
        base = np.array([BASE_MIN[t] for t in UNIT_TYPE_ORDER])[type_idx]
        saving = np.array([SAVING_MIN[t] for t in UNIT_TYPE_ORDER])[type_idx]
        mean = np.where(outside, OUTSIDE_BASE_MIN, base + self._unit_effect[u] - saving * friendly)
        last100 = mean + trend_min(np.array([day.toordinal()]))[0] + _noise(rng, n)
        implausible = rng.random(n) < IMPLAUSIBLE_SHARE
        wild = np.where(rng.random(n) < 0.5, -rng.uniform(0.5, 10, n), rng.uniform(125, 400, n))
        last100 = np.where(implausible, wild, last100)
        t_deliv = t_gate + last100 * 60

        # Status at export.
        s = rng.random(n)
        c1 = P_CANCELLED
        c2 = c1 + P_OPEN_ACCEPTED
        cancelled = s < c1
        open_acc = (s >= c1) & (s < c2)
        open_pick = (s >= c2) & (s < c2 + P_OPEN_PICKED_UP)
        delivered = ~(cancelled | open_acc | open_pick)
        stage = rng.choice(3, n, p=(0.55, 0.35, 0.10))  # cancelled before accept / before pickup / after
        half = rng.random(n) < 0.5  # coin for the partial milestones of open and cancelled orders
        t_cancel = np.where(
            stage == 0,
            secs + rng.uniform(60, 1200, n),
            np.where(
                stage == 1,
                np.where(half, t_acc + rng.uniform(0.2, 0.9, n) * (t_shop - t_acc), t_shop + rng.uniform(30, 600, n)),
                t_pick + rng.uniform(300, 1800, n),
            ),
        )
        gate_missing = rng.random(n) < GATE_MISSING_SHARE

        # Entry, parking, locker: friendly destinations are easy to enter and have rider bays.
        entry_f = _pick(rng, ("code_scan", "nfc_tap", "order_show", "registration"), (0.55, 0.30, 0.10, 0.05), n)
        entry_n = _pick(rng, ("code_scan", "order_show", "registration", None), (0.05, 0.45, 0.45, 0.05), n)
        entry_o = _pick(rng, (None, "order_show", "registration"), (0.70, 0.20, 0.10), n)
        park_f = _pick(rng, ("rider_bay", "roadside", "none"), (0.80, 0.15, 0.05), n)
        park_n = _pick(rng, ("rider_bay", "roadside", "none"), (0.05, 0.80, 0.15), n)
        park_o = _pick(rng, ("roadside", "none"), (0.70, 0.30), n)
        lock_u = rng.random(n)
        entry = np.where(outside, entry_o, np.where(friendly, entry_f, entry_n))
        parking = np.where(outside, park_o, np.where(friendly, park_f, park_n))
        locker = lock_u < np.where(outside, 0.05, np.where(friendly, 0.45, 0.10))
        elder_p = np.where(outside, 0.003, np.where(type_idx == 0, 0.026, 0.003))
        elderly = rng.random(n) < elder_p
        fee = (300 + distance * 0.15 + rng.integers(0, 300, n)).astype(np.int64)
        shop_no = rng.integers(10_000_000, 100_000_000, n)
        seq = rng.permutation(n)

        # Late corrections (drawn whatever ``corrected`` is, so both views share every other draw).
        fix_open = open_pick & (rng.random(n) < P_CORRECT_OPEN)
        fix_cancel = delivered & (rng.random(n) < P_CORRECT_DELIVERED)
        late_cancel = t_deliv + rng.uniform(600, 7200, n)
        if corrected:
            delivered = (delivered & ~fix_cancel) | fix_open
            open_pick = open_pick & ~fix_open
            t_cancel = np.where(fix_cancel, late_cancel, t_cancel)
            cancelled = cancelled | fix_cancel
            gate_missing = gate_missing & ~fix_open

        nan = np.nan
        reached_gate = delivered & ~gate_missing | (open_pick & half)
        entered = delivered | (open_pick & half) | (corrected & fix_cancel)
        cols_t = {
            "t_ordered": secs.astype(float),
            "t_accepted": np.where(cancelled & (stage == 0) & ~fix_cancel, nan, t_acc),
            "t_at_shop": np.where(
                (cancelled & (stage == 0) & ~fix_cancel)
                | (open_acc & half)
                | (cancelled & (stage == 1) & half & ~fix_cancel),
                nan,
                t_shop,
            ),
            "t_picked_up": np.where(delivered | open_pick | (cancelled & ((stage == 2) | fix_cancel)), t_pick, nan),
            "t_gate": np.where(reached_gate | (fix_cancel & ~gate_missing), t_gate, nan),
            "t_delivered": np.where(delivered, t_deliv, nan),
            "t_cancelled": np.where(cancelled, t_cancel, nan),
        }
        start = _day_start_epoch(day)
        cols = {k: np.floor(v) + start for k, v in cols_t.items()}
        status = np.where(
            delivered, "delivered", np.where(cancelled, "cancelled", np.where(open_pick, "picked_up", "accepted"))
        ).astype(object)
        ymd = day.strftime("%Y%m%d")
        prefix = {"meituan": "27", "eleme": "30", "sf": "39", "shansong": "TD"}[platform]
        cols.update(
            {
                "order_id": np.array([f"{prefix}{ymd}{k:07d}" for k in seq.tolist()], dtype=object),
                "shop_order_id": np.array([f"SO{ymd}{k}" for k in shop_no.tolist()], dtype=object),
                "rider_id": riders["ids"][platform][rider],
                "rider_phone": riders["phone"][rider],
                "rider_name": riders["name"][rider],
                "dest_lng": dest_lng,
                "dest_lat": dest_lat,
                "aoi_id": aoi,
                "status": status,
                "entry_method": np.where(entered, entry, None),
                "parking": np.where(entered, parking, "none"),
                "locker_used": entered & locker,
                "elderly_meal": elderly,
                "distance_m": distance.astype(np.int64),
                "fee_cents": fee,
                "unit_idx": unit,
            }
        )
        return cols

    def orders(self, platform: str, day: dt.date, corrected: bool = False) -> list[dict]:
        """Canonical orders placed on ``day`` (docs/internals.md "World model"), times as aware datetimes."""
        c = self.order_columns(platform, day, corrected)
        start = _day_start_epoch(day)
        time_keys = ("t_ordered", "t_accepted", "t_at_shop", "t_picked_up", "t_gate", "t_delivered", "t_cancelled")
        # One shared datetime object per distinct second: far cheaper than one conversion per field.
        offsets = {k: np.where(np.isnan(c[k]), -1, c[k] - start).astype(np.int64) for k in time_keys}
        hi = max(int(v.max(initial=0)) for v in offsets.values())
        midnight = dt.datetime(day.year, day.month, day.day, tzinfo=TZ)
        cache = [midnight + dt.timedelta(seconds=s) for s in range(hi + 1)]  # every time is >= midnight
        times = {k: [cache[o] if o >= 0 else None for o in v.tolist()] for k, v in offsets.items()}
        keys = (
            (
                "order_id",
                "shop_order_id",
                "rider_id",
                "rider_phone",
                "rider_name",
                "dest_lng",
                "dest_lat",
                "aoi_id",
                "status",
            )
            + time_keys
            + ("entry_method", "parking", "locker_used", "elderly_meal", "distance_m", "fee_cents")
        )
        columns = [times[k] if k in times else c[k].tolist() for k in keys]
        return [dict(zip(keys, row, strict=True)) for row in zip(*columns, strict=True)]

    # ------------------------------------------------------------------ station events
    def _station_day(self, day: dt.date) -> tuple[list[dict], np.ndarray]:
        """Day D's events in time order as the stations recorded them, and which of them slip to D+1.

        Points events never slip: a redemption is only ever backed by points earned earlier the same day,
        so a warehouse that has D's file but not yet D+1's must still see every earning behind it.
        """
        rng = _rng(self.seed, "stations", day.toordinal())
        reg, riders = self._reg, self._riders
        open_st = np.flatnonzero(reg.station_open_ord <= day.toordinal())
        active = np.flatnonzero(self._active(day))
        if len(open_st) == 0 or len(active) == 0:
            return [], np.zeros(0, dtype=bool)
        sw = np.array([1.0, 2.5, 0.6])[reg.station_kind_idx[open_st]]
        nv = int(rng.poisson(STATION_EVENTS_PER_DAY * self.scale / 3.33))  # ~3.33 events per visit
        vw = riders["station_p"][active]
        visitor = active[rng.choice(len(active), nv, p=vw / vw.sum())]
        station = open_st[rng.choice(len(open_st), nv, p=sw / sw.sum())]
        kind = reg.station_kind_idx[station]
        comp = rng.choice(3, nv, p=(0.40, 0.25, 0.35))
        t_in = np.where(
            comp == 0,
            rng.normal(15 * 3600, 3600, nv),
            np.where(comp == 1, rng.normal(21 * 3600, 3000, nv), rng.uniform(7 * 3600, 23.5 * 3600, nv)),
        )
        t_in = np.clip(t_in, 0, 86_399)
        stay = np.clip(rng.lognormal(np.log(20 * 60), 0.6, nv), 5 * 60, 60 * 60)
        stay = np.where(rng.random(nv) < 0.03, rng.uniform(60 * 60, 300 * 60, nv), stay)
        volunteer = riders["team"][visitor] >= 0
        earn = rng.random(nv) < np.where(volunteer, 0.5, 0.1)
        reason = rng.choice(len(EARN_REASONS), nv, p=EARN_P)
        reason = np.where((reason == 3) & ~volunteer, 4, reason)  # only volunteers earn at volunteer events
        valid = rng.random(nv) < 0.7
        points = np.where((reason == 1) & ~valid, 2, np.array(EARN_POINTS)[reason])
        t_earn = t_in + rng.uniform(60, 180, nv)
        costs = np.array([c for _, c in ITEMS])
        affordable = (costs[None, :] <= points[:, None]).sum(axis=1)  # ITEMS sorted by cost
        item = np.floor(rng.random(nv) * affordable).astype(np.int64)
        redeem = earn & (affordable > 0) & (rng.random(nv) < 0.4)
        stay = np.where(redeem, np.maximum(stay, 25 * 60), stay)
        # Redemption at least 15 min after the earning: station clocks drift by at most 2 x 5 min.
        t_redeem = t_earn + 900 + rng.random(nv) * np.maximum(t_in + stay - 120 - (t_earn + 900), 0)
        t_out = t_in + stay
        checked_out = rng.random(nv) < 0.96

        n_serv = np.where(kind == 1, 1 + rng.poisson(0.3, nv), rng.poisson(1.2, nv))
        sv = np.repeat(np.arange(nv), n_serv)
        first = np.ones(len(sv), dtype=bool)
        first[1:] = sv[1:] != sv[:-1]
        s_kind = kind[sv]
        serv = np.array(SERVICES + ("meal",), dtype=object)[
            np.where(
                (s_kind == 1) & first,
                len(SERVICES),
                np.where(
                    s_kind == 2,
                    np.array(MERCHANT_SERVICES)[rng.integers(4, size=len(sv))],
                    rng.choice(len(SERVICES), len(sv), p=SERVICE_P),
                ),
            )
        ]
        t_serv = t_in[sv] + rng.uniform(0.05, 0.95, len(sv)) * stay[sv]
        meal_price = rng.integers(24, 41, len(sv)) * 50

        # Assemble: (visit, type code, time, extra) per event, then sort by the true time.
        ev_visit = np.concatenate(
            [np.arange(nv), np.flatnonzero(checked_out), sv, np.flatnonzero(earn), np.flatnonzero(redeem)]
        )
        ev_type = np.concatenate(
            [
                np.zeros(nv, int),
                np.ones(checked_out.sum(), int),
                np.full(len(sv), 2),
                np.full(earn.sum(), 3),
                np.full(redeem.sum(), 4),
            ]
        )
        ev_time = np.concatenate([t_in, t_out[checked_out], t_serv, t_earn[earn], t_redeem[redeem]])
        ev_serv = np.concatenate(
            [np.full(nv + checked_out.sum(), -1), np.arange(len(sv)), np.full(earn.sum() + redeem.sum(), -1)]
        )
        order = np.argsort(ev_time, kind="stable")
        ev_visit, ev_type, ev_time, ev_serv = ev_visit[order], ev_type[order], ev_time[order], ev_serv[order]
        drift = rng.integers(-DRIFT_MAX_S, DRIFT_MAX_S + 1, len(reg.station_ids))
        stamp = np.datetime64(day.isoformat(), "s") + (ev_time + drift[station[ev_visit]]).astype(np.int64)
        ts = np.char.add(np.datetime_as_string(stamp, unit="s").astype(str), "+08:00").tolist()
        ids = rng.bytes(16 * len(ev_time))
        slip = (rng.random(len(ev_time)) < SLIP_SHARE / 0.85) & (ev_type <= 2)  # ~85% of events may slip

        type_names = ("check_in", "check_out", "service", "points_earn", "points_redeem")
        events = []
        rows = zip(ev_visit.tolist(), ev_type.tolist(), ev_serv.tolist(), strict=True)
        for i, (v, t, s) in enumerate(rows):
            e = {
                "event_id": str(uuid.UUID(bytes=ids[16 * i : 16 * i + 16], version=4)),
                "station_id": reg.station_ids[station[v]],
                "ts": ts[i],
                "rider_phone": riders["phone"][visitor[v]],
                "type": type_names[t],
            }
            if t == 2:
                e["service"] = serv[s]
                if serv[s] == "meal":
                    e["meal_price_cents"] = int(meal_price[s])
            elif t == 3:
                e["points"] = int(points[v])
                e["reason"] = EARN_REASONS[reason[v]]
                if reason[v] == 1:
                    e["report_valid"] = bool(valid[v])
                if volunteer[v]:
                    e["team_id"] = reg.team_ids[riders["team"][visitor[v]]]
            elif t == 4:
                e["points"] = int(costs[item[v]])
                e["item"] = ITEMS[item[v]][0]
            events.append(e)
        return events, slip

    def station_events(self, day: dt.date) -> list[dict]:
        """Day D's log file: D's events minus those that slip to D+1, after D-1's slipped ones, with
        at-least-once duplicates. Every line is complete JSON-able data (the server truncates lines)."""
        prev, prev_slip = self._station_day(day - dt.timedelta(days=1))
        today, slip = self._station_day(day)
        lines = [e for e, s in zip(prev, prev_slip, strict=True) if s] + [
            e for e, s in zip(today, slip, strict=True) if not s
        ]
        rng = _rng(self.seed, "station_file", day.toordinal())
        dup = np.flatnonzero(rng.random(len(lines)) < DUPLICATE_SHARE)
        # A resent line arrives a little later in the file than the original.
        keys = np.concatenate([np.arange(len(lines), dtype=float), dup + rng.uniform(1, 200, len(dup))])
        src = np.concatenate([np.arange(len(lines)), dup])[np.argsort(keys, kind="stable")]
        return [dict(lines[i]) for i in src.tolist()]

    # ------------------------------------------------------------------ union
    @cached_property
    def _members(self) -> dict[str, list]:
        """Every member ever on record, with join, withdrawal and transfer dates (ordinals)."""
        rng = _rng(self.seed, "union")
        riders = self._riders
        n = max(20, round(UNION_POOL * self.scale))
        early = rng.random(n) < 0.35
        o = dt.date.toordinal
        join = np.where(
            early,
            rng.integers(o(dt.date(2021, 1, 1)), o(dt.date(2024, 12, 31)), n),
            rng.integers(o(dt.date(2025, 1, 1)), o(dt.date(2026, 12, 31)), n),
        )
        union_w = np.array([0.62 / 10] * 10 + [0.18 / 3] * 3 + [0.12 / 2] * 2 + [0.08])
        union = rng.choice(len(ENTERPRISE_UNIONS), n, p=union_w)
        # Food-delivery members are riders of that platform (same phone and name as in the order feeds).
        rider_of = np.full(n, -1)
        for p_idx, p in enumerate(PLATFORMS):
            members = np.flatnonzero(np.array([ENTERPRISE_UNIONS[k][4] for k in union]) == PLATFORM_ZH[p])
            cands = rng.permutation(np.flatnonzero(riders["primary"] == p_idx))
            k = min(len(members), len(cands))
            rider_of[members[:k]] = cands[:k]
        is_rider = rider_of >= 0
        own_phone = np.array(
            [
                f"{p}{t:08d}"
                for p, t in zip(rng.choice([145, 147, 149], n), rng.choice(100_000_000, n, replace=False), strict=True)
            ],
            dtype=object,
        )
        phone = np.where(is_rider, riders["phone"][np.maximum(rider_of, 0)], own_phone)
        s_idx = rng.integers(len(_SURNAMES), size=n)
        g1, g2 = rng.integers(len(_GIVEN), size=n), rng.integers(len(_GIVEN), size=n)
        own_name = np.array(
            [_SURNAMES[s] + _GIVEN[a] + _GIVEN[b] for s, a, b in zip(s_idx, g1, g2, strict=True)], dtype=object
        )
        name = np.where(is_rider, riders["name"][np.maximum(rider_of, 0)], own_name)
        male = rng.random(n) < 0.88
        birth = rng.integers(dt.date(1966, 1, 1).toordinal(), dt.date(2004, 12, 31).toordinal(), n)
        region = rng.choice(_REGION_CODES, n)
        seq3 = rng.integers(0, 500, n) * 2 + male  # odd = male (GB 11643)
        id_defect = rng.choice(3, n, p=(1 - P_BAD_CHECK - P_OLD_ID, P_BAD_CHECK, P_OLD_ID))
        ids = []
        for r, b, q, d in zip(region.tolist(), birth.tolist(), seq3.tolist(), id_defect.tolist(), strict=True):
            bd = dt.date.fromordinal(b)
            if d == 2:
                ids.append(f"{r}{bd:%y%m%d}{q:03d}")
                continue
            body = f"{r}{bd:%Y%m%d}{q:03d}"
            check = gb11643_check_digit(body)
            if d == 1:
                check = "10X98765432"[("10X98765432".index(check) + 1 + int(rng.integers(10))) % 11]
            ids.append(body + check)
        no_phone = rng.random(n) < P_NO_PHONE
        transfer = np.where(rng.random(n) < P_TRANSFER, join + rng.integers(30, 600, n), NEVER)
        fed_of = np.array([u[2] for u in ENTERPRISE_UNIONS])
        new_union = np.array(
            [
                rng.choice(np.flatnonzero((fed_of == fed_of[u]) & (np.arange(16) != u)))
                if (fed_of == fed_of[u]).sum() > 1
                else u
                for u in union
            ]
        )
        transfer = np.where(new_union == union, NEVER, transfer)
        withdraws = (rng.random(n) < P_WITHDRAW) & (transfer == NEVER)
        withdraw = np.where(withdraws, join + rng.integers(30, 700, n), NEVER)
        withdraw_kind = rng.choice(["退会", "自动退会", "除名"], n, p=(0.6, 0.3, 0.1))
        return {
            "member_no": [f"XH{k:08d}" for k in rng.choice(100_000_000, n, replace=False)],
            "name": name.tolist(),
            "male": male.tolist(),
            "id": ids,
            "phone": np.where(no_phone, "", phone).tolist(),
            "birth": birth.tolist(),
            "union": union.tolist(),
            "new_union": new_union.tolist(),
            "join": join.tolist(),
            "transfer": transfer.tolist(),
            "withdraw": withdraw.tolist(),
            "withdraw_kind": withdraw_kind.tolist(),
            "date_fmt": rng.integers(3, size=n).tolist(),
            "street": rng.integers(len(self._reg.streets), size=n).tolist(),
        }

    def union_members(self, day: dt.date) -> list[dict]:
        """The export at the end of ``day``: every member joined by then (withdrawn ones included, with
        their status); a transferred member has a stale row at the old union and a row at the new one."""
        m, d = self._members, day.toordinal()
        rows = []
        for i in range(len(m["member_no"])):
            if m["join"][i] > d:
                continue
            fmt = m["date_fmt"][i]
            union = ENTERPRISE_UNIONS[m["union"][i]]
            base = {
                "会员编号": m["member_no"][i],
                "姓名": m["name"][i],
                "性别": "男" if m["male"][i] else "女",
                "身份证号": m["id"][i],
                "手机号": m["phone"][i],
                "出生日期": _fmt_date(m["birth"][i], fmt),
                "所属工会编码": union[0],
                "入会日期": _fmt_date(m["join"][i], fmt),
                "会员状态": "在册",
                "状态变更日期": _fmt_date(m["join"][i], fmt),
                "职业类别": union[3],
                "所属平台": union[4],
                "居住街道": self._reg.streets[m["street"][i]][1],
            }
            if m["withdraw"][i] <= d:
                base["会员状态"] = m["withdraw_kind"][i]
                base["状态变更日期"] = _fmt_date(m["withdraw"][i], fmt)
            rows.append(base)
            if m["transfer"][i] <= d:
                new = ENTERPRISE_UNIONS[m["new_union"][i]]
                rows.append(
                    {
                        **base,
                        "所属工会编码": new[0],
                        "所属平台": new[4],
                        "状态变更日期": _fmt_date(m["transfer"][i], fmt),
                    }
                )
        return rows

    def union_orgs(self) -> list[dict]:
        """Union organisations: 4 industry federations, 16 enterprise unions, 11 street federations."""
        rows = [
            {
                "工会编码": code,
                "工会名称": name,
                "上级工会编码": "",
                "类型": "行业工会联合会",
                "成立日期": f"2019-0{k + 3}-01",
            }
            for k, (code, name) in enumerate(FEDERATIONS)
        ]
        rows += [
            {
                "工会编码": code,
                "工会名称": name,
                "上级工会编码": FEDERATIONS[fed][0],
                "类型": "企业工会",
                "成立日期": f"2020-{k % 12 + 1:02d}-15",
            }
            for k, (code, name, fed, _, _) in enumerate(ENTERPRISE_UNIONS)
        ]
        rows += [
            {
                "工会编码": f"XHGH-JD{k + 1:02d}",
                "工会名称": f"{name}总工会",
                "上级工会编码": "",
                "类型": "街道总工会",
                "成立日期": "2018-05-01",
            }
            for k, (_, name) in enumerate(self._reg.streets)
        ]
        return rows


def _fmt_date(ordinal: int, fmt: int) -> str:
    """The three date spellings found in real union exports: 2025/8/3, 2025-08-03, 20250803."""
    d = dt.date.fromordinal(ordinal)
    if fmt == 0:
        return f"{d.year}/{d.month}/{d.day}"
    return d.isoformat() if fmt == 1 else d.strftime("%Y%m%d")
