"""The district's reference registries (dbt seeds), generated from a fixed seed of their own.

The registries are what the district maintains and versions in the repository, so they must not change
with the sandbox's ``--seed`` or ``--scale``: the committed seeds in ``dbt_project/seeds/`` then always
match whatever world the sandbox serves. Counts are the district's published ones (sources.md §4); names
and coordinates are synthetic, inside a box around Xihu District (GCJ-02).

Units are placed so that no two unit circles overlap: a destination inside a unit's radius is then inside
no other unit, and "nearest unit whose radius contains the destination" has exactly one right answer.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

REGISTRY_SEED = 20260101  # fixed on purpose: independent of the world's seed and scale

LNG_MIN, LNG_MAX = 120.02, 120.17
LAT_MIN, LAT_MAX = 30.18, 30.33
_LNG0, _LAT0 = (LNG_MIN + LNG_MAX) / 2, (LAT_MIN + LAT_MAX) / 2
M_PER_DEG_LAT = 110_574.0
M_PER_DEG_LNG = 111_320.0 * math.cos(math.radians(_LAT0))

PLATFORMS = ("meituan", "eleme", "sf", "shansong")
AOI_MAPPED_SHARE = 0.85  # share of units with a platform AOI id, per platform

# (street_id, name, centre lng, centre lat): synthetic centres (GCJ-02, the streets seed's lng/lat); a unit
# belongs to the nearest centre.
STREETS = (
    ("S01", "北山街道", 120.140, 30.262),
    ("S02", "西溪街道", 120.128, 30.280),
    ("S03", "灵隐街道", 120.100, 30.245),
    ("S04", "翠苑街道", 120.118, 30.296),
    ("S05", "文新街道", 120.098, 30.302),
    ("S06", "古荡街道", 120.145, 30.300),
    ("S07", "转塘街道", 120.070, 30.200),
    ("S08", "留下街道", 120.048, 30.262),
    ("S09", "蒋村街道", 120.068, 30.292),
    ("S10", "三墩镇", 120.095, 30.320),
    ("S11", "双浦镇", 120.125, 30.195),
)

# unit type -> (count, radius range in metres, name suffixes)
UNIT_TYPES = {
    "residential_compound": (447, (70, 200), ("小区", "花园", "苑", "公寓", "新村", "家园")),
    "office_building": (301, (45, 130), ("大厦", "科技园", "中心", "广场", "创意园")),
    "scenic_area": (8, (300, 600), ("景区",)),
    "hospital": (48, (70, 170), ("医院", "卫生服务中心")),
    "university": (23, (220, 450), ("学院", "大学校区")),
    "construction_site": (111, (50, 160), ("项目工地", "地块工地")),
}
UNIT_TYPE_ORDER = tuple(UNIT_TYPES)

# Adoption plan per type: units adopting inside the DiD test window, and friendly units by 2026-11-30 in
# total (the rest are never friendly, which keeps >= 3 clean controls per type).
DID_WINDOW = (dt.date(2026, 8, 1), dt.date(2026, 8, 14))
ADOPTION_SPAN = (dt.date(2025, 3, 1), dt.date(2026, 11, 30))
ADOPTERS_IN_WINDOW = {
    "residential_compound": 40,
    "office_building": 30,
    "scenic_area": 3,
    "hospital": 6,
    "university": 4,
    "construction_site": 8,
}
FRIENDLY_TOTAL = {
    "residential_compound": 179,
    "office_building": 120,
    "scenic_area": 4,
    "hospital": 20,
    "university": 10,
    "construction_site": 25,
}
# Adoptions go on after ADOPTION_SPAN, as the district's plan lists them: of three types, one unit every
# LATER_CADENCE_DAYS days through LATER_SPAN, so that whatever day `make demo` runs on until LATER_SPAN's
# end + 34 days, its 73 loaded days hold the after window and >= 10 days of the before window of at least
# two adoptions of at least three types (friendly_effect shows a DiD with its interval). They are
# drawn from their own generator among the units the plan above leaves never friendly, so every other value
# of the registries is as it was (the DiD test window's adopters included); their fittings (rider bay,
# entries, lockers) are those of a unit not yet friendly on 2026-11-30, as the registry holds them then.
LATER_SPAN = (dt.date(2026, 12, 1), dt.date(2027, 6, 30))
LATER_CADENCE_DAYS = {"residential_compound": 3, "office_building": 4, "construction_site": 5}

STATION_KINDS = {  # kind -> (count, id prefix, id digits, opening span)
    "rest_station": (264, "NF-", 4, (dt.date(2023, 3, 1), dt.date(2026, 10, 31))),
    "canteen": (31, "CT-", 3, (dt.date(2024, 1, 1), dt.date(2026, 9, 30))),
    "caring_merchant": (226, "CM-", 3, (dt.date(2024, 6, 1), dt.date(2026, 10, 31))),
}
N_TEAMS = 17
OUTSIDE_POOL = 20_000  # destinations outside every unit (orders to ordinary addresses)

_WORDS = (
    "翠竹 金桂 玉泉 紫荆 文华 嘉禾 青芝 白鹭 云栖 湖畔 梧桐 锦绣 丹枫 春晓 秋涛 星洲 古墩 文一 "
    "学院 教工 天目 竞舟 求是 浙大 西溪 和睦 益乐 莲花 花坞 龙井 梅坞 九溪 龙坞 之江 袁浦 "
    "申花 紫金 振华 蒋村 五常 晴川 兰亭 听涛 望湖 香樟 银杏 海棠 桂语 栖霞 明珠"
).split()


@dataclass(frozen=True)
class Registries:
    """Registry rows for the seeds plus the numpy arrays the world generator samples from."""

    rows: dict[str, list[dict]]
    unit_type_idx: np.ndarray  # int, index into UNIT_TYPE_ORDER
    unit_lng: np.ndarray
    unit_lat: np.ndarray
    unit_radius: np.ndarray
    unit_friendly_ord: np.ndarray  # proleptic ordinal of friendly_since, huge when never friendly
    unit_weight: np.ndarray  # relative share of the district's orders
    unit_aoi: dict[str, list[str | None]]  # platform -> AOI id per unit (None when unmapped)
    outside_lng: np.ndarray
    outside_lat: np.ndarray
    station_ids: list[str]
    station_kind_idx: np.ndarray  # 0 rest station, 1 canteen, 2 caring merchant
    station_open_ord: np.ndarray


NEVER = 10**9  # friendly_since ordinal of a unit that never adopts


def _to_xy(lng: np.ndarray, lat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return (np.asarray(lng) - _LNG0) * M_PER_DEG_LNG, (np.asarray(lat) - _LAT0) * M_PER_DEG_LAT


def to_lnglat(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Local metres (equirectangular around the box centre) back to GCJ-02 degrees."""
    return _LNG0 + np.asarray(x) / M_PER_DEG_LNG, _LAT0 + np.asarray(y) / M_PER_DEG_LAT


def _names(rng: np.random.Generator, n: int, suffixes: tuple[str, ...], taken: set[str]) -> list[str]:
    out = []
    while len(out) < n:
        a, b = rng.choice(len(_WORDS), 2, replace=False)
        name = _WORDS[a] + _WORDS[b] + suffixes[rng.integers(len(suffixes))]
        if name not in taken:
            taken.add(name)
            out.append(name)
    return out


def _place_units(rng: np.random.Generator, radii: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Random sequential packing, largest first: centres at least r_i + r_j + 20 m apart, inside the box."""
    x_lo, y_lo = _to_xy(LNG_MIN, LAT_MIN)
    x_hi, y_hi = _to_xy(LNG_MAX, LAT_MAX)
    xs = np.full(len(radii), np.nan)
    ys = np.full(len(radii), np.nan)
    for i in np.argsort(-radii, kind="stable"):
        r = radii[i]
        while True:
            cx = rng.uniform(x_lo + r, x_hi - r)
            cy = rng.uniform(y_lo + r, y_hi - r)
            d = np.hypot(xs - cx, ys - cy)
            if not np.any(d < radii + r + 20.0):  # NaN (not yet placed) compares False
                xs[i], ys[i] = cx, cy
                break
    return xs, ys


def _adoption_dates(rng: np.random.Generator, type_idx: np.ndarray) -> np.ndarray:
    """friendly_since ordinals: a burst inside DID_WINDOW, the rest spread over ADOPTION_SPAN."""
    out = np.full(len(type_idx), NEVER, dtype=np.int64)
    w0, w1 = (d.toordinal() for d in DID_WINDOW)
    s0, s1 = (d.toordinal() for d in ADOPTION_SPAN)
    for t, name in enumerate(UNIT_TYPE_ORDER):
        members = rng.permutation(np.flatnonzero(type_idx == t))
        n_win, n_all = ADOPTERS_IN_WINDOW[name], FRIENDLY_TOTAL[name]
        out[members[:n_win]] = rng.integers(w0, w1 + 1, n_win)
        others = members[n_win:n_all]
        # Outside the window, and far enough from it (>35 days) that they are neither window adopters nor
        # units that stop being clean controls in the middle of the window's after period.
        days = rng.integers(s0, s1 + 1, 4 * len(others) + 50)
        days = days[(days < w0 - 35) | (days > w1 + 35)][: len(others)]
        out[others] = days
    return out


def _later_adoptions(type_idx: np.ndarray, planned: np.ndarray) -> np.ndarray:
    """``planned`` with the LATER_SPAN adoptions added (see LATER_CADENCE_DAYS); one type starts a day
    after the other, so their adoption days differ."""
    out = planned.copy()
    rng = np.random.default_rng([REGISTRY_SEED, 1])
    start, end = (d.toordinal() for d in LATER_SPAN)
    for offset, (name, cadence) in enumerate(LATER_CADENCE_DAYS.items()):
        days = np.arange(start + offset, end + 1, cadence)
        never = np.flatnonzero((type_idx == UNIT_TYPE_ORDER.index(name)) & (planned == NEVER))
        out[rng.permutation(never)[: len(days)]] = days
    return out


@lru_cache(maxsize=1)
def build_registries() -> Registries:
    """Build every registry once per process (fixed seed, ~0.5 s)."""
    rng = np.random.default_rng(REGISTRY_SEED)
    streets = [{"street_id": s, "street_name": n, "lng": lng, "lat": lat} for s, n, lng, lat in STREETS]
    sx, sy = _to_xy(np.array([s[2] for s in STREETS]), np.array([s[3] for s in STREETS]))

    def street_of(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        return np.argmin(np.hypot(x[:, None] - sx[None, :], y[:, None] - sy[None, :]), axis=1)

    # --- units
    type_idx = np.concatenate([np.full(c, t) for t, (c, _, _) in enumerate(UNIT_TYPES.values())])
    radii = np.concatenate([rng.integers(lo, hi + 1, c) for c, (lo, hi), _ in UNIT_TYPES.values()])
    radii = radii.astype(float)
    ux, uy = _place_units(rng, radii)
    ulng, ulat = to_lnglat(ux, uy)
    ustreet = street_of(ux, uy)
    planned_ord = _adoption_dates(rng, type_idx)
    friendly_ord = _later_adoptions(type_idx, planned_ord)
    taken: set[str] = set()
    names: list[str] = []
    for c, _, suffixes in UNIT_TYPES.values():
        names += _names(rng, c, suffixes, taken)
    # Orders per unit: type attractiveness times a lognormal size factor.
    type_weight = np.array([1.0, 0.9, 2.0, 0.6, 2.5, 0.3])
    weight = type_weight[type_idx] * rng.lognormal(0.0, 0.5, len(type_idx))
    units = []
    for i in range(len(type_idx)):
        friendly = planned_ord[i] != NEVER  # fittings as of ADOPTION_SPAN's end
        p = 0.85 if friendly else 0.12
        units.append(
            {
                "unit_id": f"U{i + 1:04d}",
                "unit_name": names[i],
                "unit_type": UNIT_TYPE_ORDER[type_idx[i]],
                "street_id": STREETS[ustreet[i]][0],
                "lng": round(float(ulng[i]), 6),
                "lat": round(float(ulat[i]), 6),
                "radius_m": int(radii[i]),
                "friendly_since": (
                    dt.date.fromordinal(int(friendly_ord[i])).isoformat() if friendly_ord[i] != NEVER else ""
                ),
                "rider_bay": bool(rng.random() < (0.9 if friendly else 0.1)),
                "locker_compartments": int(rng.integers(10, 61)) if rng.random() < p else 0,
                "guide_map": bool(rng.random() < p),
                "code_entry": bool(rng.random() < (0.8 if friendly else 0.1)),
                "nfc_entry": bool(rng.random() < (0.5 if friendly else 0.03)),
            }
        )

    # --- AOI crosswalk: per platform its own id format, ~85% of units mapped
    aoi_fmt = {"meituan": "MT{:08d}", "eleme": "E{:07x}", "sf": "SF-AOI-{:06d}", "shansong": "SSAOI{:07d}"}
    crosswalk = []
    unit_aoi: dict[str, list[str | None]] = {}
    for p in PLATFORMS:
        mapped = rng.random(len(units)) < AOI_MAPPED_SHARE
        codes = rng.choice(9_000_000, len(units), replace=False) + 1_000_000
        unit_aoi[p] = [aoi_fmt[p].format(int(c)) if m else None for c, m in zip(codes, mapped, strict=True)]
        crosswalk += [
            {"platform": p, "aoi_id": a, "unit_id": u["unit_id"]}
            for a, u in zip(unit_aoi[p], units, strict=True)
            if a is not None
        ]

    # --- destinations outside every unit (10 m margin)
    x_lo, y_lo = _to_xy(LNG_MIN, LAT_MIN)
    x_hi, y_hi = _to_xy(LNG_MAX, LAT_MAX)
    cand_x = rng.uniform(x_lo, x_hi, 2 * OUTSIDE_POOL)
    cand_y = rng.uniform(y_lo, y_hi, 2 * OUTSIDE_POOL)
    inside = np.zeros(len(cand_x), dtype=bool)
    for k in range(0, len(cand_x), 4000):
        d = np.hypot(cand_x[k : k + 4000, None] - ux[None, :], cand_y[k : k + 4000, None] - uy[None, :])
        inside[k : k + 4000] = np.any(d <= radii[None, :] + 10.0, axis=1)
    olng, olat = to_lnglat(cand_x[~inside][:OUTSIDE_POOL], cand_y[~inside][:OUTSIDE_POOL])

    # --- stations, canteens, caring merchants
    stations, kind_idx, open_ord = [], [], []
    label = {"rest_station": "暖蜂驿站", "canteen": "骑手爱心食堂", "caring_merchant": "爱心商户"}
    for k, (kind, (count, prefix, digits, (o0, o1))) in enumerate(STATION_KINDS.items()):
        x = rng.uniform(x_lo, x_hi, count)
        y = rng.uniform(y_lo, y_hi, count)
        lng, lat = to_lnglat(x, y)
        st = street_of(x, y)
        opened = rng.integers(o0.toordinal(), o1.toordinal() + 1, count)
        words = rng.integers(len(_WORDS), size=count)
        for i in range(count):
            stations.append(
                {
                    "station_id": f"{prefix}{i + 1:0{digits}d}",
                    "station_name": f"{STREETS[st[i]][1]}{_WORDS[words[i]]}{label[kind]}{i + 1}号",
                    "station_kind": kind,
                    "street_id": STREETS[st[i]][0],
                    "lng": round(float(lng[i]), 6),
                    "lat": round(float(lat[i]), 6),
                    "opened_on": dt.date.fromordinal(int(opened[i])).isoformat(),
                }
            )
        kind_idx += [k] * count
        open_ord += opened.tolist()

    # --- volunteer teams: one per street, a second one in the six busiest (S01..S06)
    team_streets = [s[0] for s in STREETS] + [s[0] for s in STREETS[:6]]
    per_street: dict[str, int] = {}
    teams = []
    for i, sid in enumerate(team_streets):
        per_street[sid] = per_street.get(sid, 0) + 1
        sname = next(n for s, n, _, _ in STREETS if s == sid)
        teams.append(
            {"team_id": f"VT-{i + 1:02d}", "team_name": f"{sname}骑手志愿服务{per_street[sid]}队", "street_id": sid}
        )

    return Registries(
        rows={
            "streets": streets,
            "units": units,
            "aoi_crosswalk": crosswalk,
            "stations": stations,
            "volunteer_teams": teams,
        },
        unit_type_idx=type_idx,
        unit_lng=ulng,
        unit_lat=ulat,
        unit_radius=radii,
        unit_friendly_ord=friendly_ord,
        unit_weight=weight / weight.sum(),
        unit_aoi=unit_aoi,
        outside_lng=olng,
        outside_lat=olat,
        station_ids=[s["station_id"] for s in stations],
        station_kind_idx=np.array(kind_idx),
        station_open_ord=np.array(open_ord, dtype=np.int64),
    )
