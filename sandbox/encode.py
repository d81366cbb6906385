"""The sandbox's canonical orders on the wire, per platform (sources.md, section 1).

The World produces platform-neutral orders (docs/internals.md, "World model"); each platform module
(meituan, eleme, sf, shansong) publishes them under its own field names, codes, time formats and
coordinate systems, and knows how its records break. This module only dispatches by platform name.
"""

from __future__ import annotations

from sandbox import eleme, meituan, sf, shansong

MODULES = {m.PLATFORM: m for m in (meituan, eleme, sf, shansong)}
ENCODERS = {p: m.encode for p, m in MODULES.items()}
# The id field of each platform's record, and what the faults touch (sources.md quarantine rules).
ID_FIELD = {p: m.ID_FIELD for p, m in MODULES.items()}


def malform(platform: str, rec: dict, kind: int) -> dict:
    """Break one record the way real feeds break, one quarantine reason per ``kind`` (0..3).

    0 missing id, 1 a required field with the wrong JSON type, 2 coordinates outside China,
    3 an order time unparseable in the platform's format.
    """
    return MODULES[platform].malform(dict(rec), kind)


def drift(platform: str, rec: dict) -> dict:
    """Schema drift: an unknown field appears and an optional one disappears (the AOI id, or sf's gate time)."""
    rec = dict(rec)
    rec["ext_info_v3"] = {"tag": "drift", "weather_code": 1}
    module = MODULES[platform]
    if hasattr(module, "drift_drop"):
        module.drift_drop(rec)
    else:
        rec.pop(module.DRIFT_DROP, None)
    return rec
