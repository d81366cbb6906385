"""The district's reference registries as the sandbox's world uses them: read from the committed dbt seeds.

The seeds in ``dbt_project/seeds/`` (streets, units, aoi_crosswalk, stations, volunteer_teams) are what
the district maintains and versions in the repository; nothing generates or overwrites them. The sandbox
builds its world around whatever registry they hold, so a changed registry (a unit added, a station
moved) is served as it is, and the world never changes with the sandbox's ``--seed`` or ``--scale``.

Two things the world needs are not registry data: each unit's share of the district's orders and a pool
of destinations outside every unit. They are drawn from the random stream the registry was first drawn
from (REGISTRY_SEED), continued from the two states it had where it drew them when the committed seeds
were made, so that the world is the one the tests' figures were computed on, draw for draw (the seeds'
coordinates are the registry's 6 decimals). Weights are drawn per seed row and pool points that fall
inside a seed unit are dropped, so a changed registry still gets consistent weights and destinations.
"""

from __future__ import annotations

import csv
import datetime as dt
import math
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

SEEDS_DIR = Path(__file__).resolve().parent.parent / "dbt_project" / "seeds"
SEED_FILES = ("streets", "units", "aoi_crosswalk", "stations", "volunteer_teams")

REGISTRY_SEED = 20260101  # part of every stream's entropy: the world is independent of how it is served

LNG_MIN, LNG_MAX = 120.02, 120.17
LAT_MIN, LAT_MAX = 30.18, 30.33
_LNG0, _LAT0 = (LNG_MIN + LNG_MAX) / 2, (LAT_MIN + LAT_MAX) / 2
M_PER_DEG_LAT = 110_574.0
M_PER_DEG_LNG = 111_320.0 * math.cos(math.radians(_LAT0))

PLATFORMS = ("meituan", "eleme", "sf", "shansong")
UNIT_TYPE_ORDER = (
    "residential_compound",
    "office_building",
    "scenic_area",
    "hospital",
    "university",
    "construction_site",
)
# Relative attractiveness of a unit type for orders (times a lognormal size factor per unit).
TYPE_ORDER_WEIGHT = (1.0, 0.9, 2.0, 0.6, 2.5, 0.3)
STATION_KINDS = ("rest_station", "canteen", "caring_merchant")

# The district's adoption plan as the committed registry holds it (docs/internals.md "Seeds"): units adopt
# in a burst inside the DiD test window, the rest over ADOPTION_SPAN (> 35 days away from the window), and
# then one unit every few days of three types through LATER_SPAN, so that `make demo` has measurable
# adoptions whatever day it runs on until LATER_SPAN's end + 34 days.
DID_WINDOW = (dt.date(2026, 8, 1), dt.date(2026, 8, 14))
ADOPTION_SPAN = (dt.date(2025, 3, 1), dt.date(2026, 11, 30))
LATER_SPAN = (dt.date(2026, 12, 1), dt.date(2027, 6, 30))

OUTSIDE_POOL = 20_000  # destinations outside every unit (orders to ordinary addresses)
OUTSIDE_MARGIN_M = 10.0

# REGISTRY_SEED's stream (numpy PCG64) where it drew the unit weights and the outside destinations.
_PCG64_INC = 167898110797086647954124334990068229867
_WEIGHT_STREAM = {
    "bit_generator": "PCG64",
    "state": {"state": 320961503229787641897719222981025940444, "inc": _PCG64_INC},
    "has_uint32": 0,
    "uinteger": 2082299446,
}
_OUTSIDE_STREAM = {
    "bit_generator": "PCG64",
    "state": {"state": 168278999850585185065491888586912607610, "inc": _PCG64_INC},
    "has_uint32": 1,
    "uinteger": 2511770925,
}

NEVER = 10**9  # friendly_since ordinal of a unit that never adopts

_INT = {"radius_m", "locker_compartments"}
_FLOAT = {"lng", "lat"}
_BOOL = {"rider_bay", "guide_map", "code_entry", "nfc_entry"}


@dataclass(frozen=True)
class Registries:
    """The seed rows plus the numpy arrays the world generator samples from."""

    rows: dict[str, list[dict]]
    streets: tuple[tuple[str, str], ...]  # (street_id, street_name) in seed order
    team_ids: tuple[str, ...]
    unit_type_idx: np.ndarray  # int, index into UNIT_TYPE_ORDER
    unit_lng: np.ndarray
    unit_lat: np.ndarray
    unit_radius: np.ndarray
    unit_friendly_ord: np.ndarray  # proleptic ordinal of friendly_since, NEVER when never friendly
    unit_weight: np.ndarray  # relative share of the district's orders
    unit_aoi: dict[str, list[str | None]]  # platform -> AOI id per unit (None when unmapped)
    outside_lng: np.ndarray
    outside_lat: np.ndarray
    station_ids: list[str]
    station_kind_idx: np.ndarray  # index into STATION_KINDS
    station_open_ord: np.ndarray


def _to_xy(lng, lat) -> tuple[np.ndarray, np.ndarray]:
    return (np.asarray(lng) - _LNG0) * M_PER_DEG_LNG, (np.asarray(lat) - _LAT0) * M_PER_DEG_LAT


def to_lnglat(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Local metres (equirectangular around the box centre) back to GCJ-02 degrees."""
    return _LNG0 + np.asarray(x) / M_PER_DEG_LNG, _LAT0 + np.asarray(y) / M_PER_DEG_LAT


def _typed(row: dict) -> dict:
    out = {}
    for k, v in row.items():
        if k in _INT:
            out[k] = int(v)
        elif k in _FLOAT:
            out[k] = float(v)
        elif k in _BOOL:
            out[k] = v == "true"
        else:
            out[k] = v
    return out


def read_seeds(seeds_dir: Path = SEEDS_DIR) -> dict[str, list[dict]]:
    """The seed CSVs as rows (numbers and booleans typed, dates and empty values as the CSV has them)."""
    rows = {}
    for name in SEED_FILES:
        with open(Path(seeds_dir) / f"{name}.csv", encoding="utf-8", newline="") as f:
            rows[name] = [_typed(r) for r in csv.DictReader(f)]
    return rows


def _stream(state: dict) -> np.random.Generator:
    rng = np.random.Generator(np.random.PCG64())
    rng.bit_generator.state = state
    return rng


def _ordinal(day: str) -> int:
    return dt.date.fromisoformat(day).toordinal() if day else NEVER


@lru_cache(maxsize=4)
def load_registries(seeds_dir: Path = SEEDS_DIR) -> Registries:
    """The registry of ``seeds_dir`` (default the committed seeds), read once per process."""
    rows = read_seeds(seeds_dir)
    units, stations = rows["units"], rows["stations"]
    type_idx = np.array([UNIT_TYPE_ORDER.index(u["unit_type"]) for u in units])
    ulng = np.array([u["lng"] for u in units])
    ulat = np.array([u["lat"] for u in units])
    radii = np.array([u["radius_m"] for u in units], dtype=float)
    weight = np.array(TYPE_ORDER_WEIGHT)[type_idx] * _stream(_WEIGHT_STREAM).lognormal(0.0, 0.5, len(units))

    row_of = {u["unit_id"]: i for i, u in enumerate(units)}
    unit_aoi: dict[str, list[str | None]] = {p: [None] * len(units) for p in PLATFORMS}
    for c in rows["aoi_crosswalk"]:
        if c["unit_id"] in row_of:
            unit_aoi[c["platform"]][row_of[c["unit_id"]]] = c["aoi_id"]

    # Destinations outside every unit: uniform in the box, OUTSIDE_MARGIN_M clear of every unit.
    rng = _stream(_OUTSIDE_STREAM)
    x_lo, y_lo = _to_xy(LNG_MIN, LAT_MIN)
    x_hi, y_hi = _to_xy(LNG_MAX, LAT_MAX)
    cand_x = rng.uniform(x_lo, x_hi, 2 * OUTSIDE_POOL)
    cand_y = rng.uniform(y_lo, y_hi, 2 * OUTSIDE_POOL)
    ux, uy = _to_xy(ulng, ulat)
    inside = np.zeros(len(cand_x), dtype=bool)
    for k in range(0, len(cand_x), 4000):
        d = np.hypot(cand_x[k : k + 4000, None] - ux[None, :], cand_y[k : k + 4000, None] - uy[None, :])
        inside[k : k + 4000] = np.any(d <= radii[None, :] + OUTSIDE_MARGIN_M, axis=1)
    olng, olat = to_lnglat(cand_x[~inside][:OUTSIDE_POOL], cand_y[~inside][:OUTSIDE_POOL])

    return Registries(
        rows=rows,
        streets=tuple((s["street_id"], s["street_name"]) for s in rows["streets"]),
        team_ids=tuple(t["team_id"] for t in rows["volunteer_teams"]),
        unit_type_idx=type_idx,
        unit_lng=ulng,
        unit_lat=ulat,
        unit_radius=radii,
        unit_friendly_ord=np.array([_ordinal(u["friendly_since"]) for u in units], dtype=np.int64),
        unit_weight=weight / weight.sum(),
        unit_aoi=unit_aoi,
        outside_lng=olng,
        outside_lat=olat,
        station_ids=[s["station_id"] for s in stations],
        station_kind_idx=np.array([STATION_KINDS.index(s["station_kind"]) for s in stations]),
        station_open_ord=np.array([_ordinal(s["opened_on"]) for s in stations], dtype=np.int64),
    )
