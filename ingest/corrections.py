"""The late-correction band: how far a run may move what is already loaded or published.

sources.md: a platform corrects up to ~1% of D's orders during D+1 and up to 2% of D's station events
arrive in D+1's file, so re-pulling D-1 legitimately moves it a little. A replacement that moves more
is not a correction but a bad day (a feed that lost a third of its records, a malformed re-pull), and it
must not overwrite a day officials may already have quoted. Two audits share the band
(``XIHU_CORRECTION_BAND``, default 3%):

- **raw partitions** (:func:`judge_partition`, called by the loader before it replaces one): records the
  source sent, records loaded and the quarantine rate, against the partition being replaced;
- **published days** (:func:`published_day_moves`, called by the marts gate): each already published
  date's key figures in ``district_daily_kpis``, staged against live.

A partition whose quarantine rate *falls* by more than the band is a repair (a truncated station file
re-fetched whole, a malformed day re-pulled clean): it is accepted, and the days it feeds may move.
An operator who has checked that a source really changed that much re-runs the day with the run param
``accept_replacements`` (docs: the README's runbook, "Correct a day").
"""

from __future__ import annotations

from dataclasses import dataclass

import duckdb

from ingest import settings

# Counts move by at least this many before the band applies: a tiny day's 2 late events are not a collapse.
MIN_COUNT_MOVE = 10
# Medians (minutes) move by at least this much before the band applies.
MIN_MINUTES_MOVE = 0.2
# district_daily_kpis columns audited, and how: 'count' (relative), 'share' (absolute), 'minutes' (relative).
KEY_FIGURES = {
    "deliveries": "count",
    "share_to_friendly_units": "share",
    "median_last100_min_friendly": "minutes",
    "median_last100_min_non_friendly": "minutes",
    "station_visits": "count",
    "points_earned": "count",
    "points_redeemed": "count",
}
WHAT_TO_DO = (
    "If the source really changed that much (check its landing folder and ask the platform), re-run the "
    "day with the run param accept_replacements=true; otherwise leave it: the published figures stay."
)


@dataclass(frozen=True)
class PartitionCounts:
    """A partition's load: ``quarantined`` are the records that broke the contract, never the removed
    duplicates (a day the platform sent twice is not a worse day), so the quarantine rate is of those."""

    fetched: int
    loaded: int
    quarantined: int

    @property
    def quarantine_rate(self) -> float:
        return self.quarantined / self.fetched if self.fetched else 0.0


def _pct(new: float, old: float) -> str:
    return f"{(new - old) / old:+.1%}" if old else "new"


def judge_partition(old: PartitionCounts | None, new: PartitionCounts, band: float | None = None) -> tuple[str, str]:
    """The verdict on replacing ``old`` with ``new``: ('new' | 'replaced' | 'repaired' | 'refused', why)."""
    band = settings.correction_band() if band is None else band
    if old is None:
        return "new", ""
    moves = []
    if old.fetched and abs(new.fetched - old.fetched) > band * old.fetched:
        moves.append(f"records sent {old.fetched:,} -> {new.fetched:,} ({_pct(new.fetched, old.fetched)})")
    if old.loaded and old.loaded - new.loaded > band * old.loaded:
        moves.append(f"records loaded {old.loaded:,} -> {new.loaded:,} ({_pct(new.loaded, old.loaded)})")
    if new.quarantine_rate - old.quarantine_rate > band:
        moves.append(f"quarantine rate {old.quarantine_rate:.1%} -> {new.quarantine_rate:.1%}")
    if moves:
        return "refused", "; ".join(moves)
    if old.quarantine_rate - new.quarantine_rate > band:
        return "repaired", f"quarantine rate {old.quarantine_rate:.1%} -> {new.quarantine_rate:.1%}"
    return "replaced", ""


def _moved(kind: str, old, new, band: float) -> bool:
    if old is None or new is None:  # suppressed, or a source not fetched: nothing quoted to protect
        return False
    old, new = float(old), float(new)
    if kind == "share":
        return abs(new - old) > band
    floor = MIN_COUNT_MOVE if kind == "count" else MIN_MINUTES_MOVE
    return abs(new - old) > max(floor, band * abs(old))


def published_day_moves(
    con: duckdb.DuckDBPyConnection, live: str, staged: str, exempt: set, band: float | None = None
) -> list[str]:
    """Key figures of already published days that the staged build moves beyond the band.

    ``live`` and ``staged`` are attached catalog names holding ``marts.district_daily_kpis``; days in
    ``exempt`` (dates of repaired or operator-accepted partitions) may move. Returns one line per move.
    """
    band = settings.correction_band() if band is None else band
    columns = ", ".join(f"l.{c} as old_{c}, s.{c} as new_{c}" for c in KEY_FIGURES)
    rows = con.execute(
        f"select l.business_date, {columns} from {live}.marts.district_daily_kpis l "
        f"join {staged}.marts.district_daily_kpis s using (business_date) order by 1"
    ).fetchall()
    moves = []
    for day, *values in rows:
        if day in exempt:
            continue
        for i, (column, kind) in enumerate(KEY_FIGURES.items()):
            old, new = values[2 * i], values[2 * i + 1]
            if _moved(kind, old, new, band):
                moves.append(f"{day} {column} {old} -> {new}")
    return moves


class CorrectionRefused(Exception):
    """The staged build moves already published days beyond the band; the message lists the moves."""


def audit_published_days(staged_path, live_path, business_date: str, run_id: str) -> None:
    """Compare every already published day's key figures, staged against live; record the check in
    ``audit.gate_results`` (suite ``published_days``, stage ``marts``) and raise
    :class:`CorrectionRefused` when a day moved beyond the band. Days whose partitions this run repaired
    or an operator accepted (``audit.partition_audit``) may move."""
    from pathlib import Path

    if not Path(live_path).exists():
        return
    with duckdb.connect(str(staged_path)) as con:
        con.execute(f"attach '{live_path}' as live (read_only)")
        has_live_kpis = con.execute(
            "select count(*) from duckdb_tables() where database_name = 'live' and schema_name = 'marts' "
            "and table_name = 'district_daily_kpis'"
        ).fetchone()[0]
        if not has_live_kpis:
            return
        catalog = con.execute("select current_database()").fetchone()[0]
        exempt = {
            d
            for (d,) in con.execute(
                "select business_date from audit.partition_audit"
                " where run_id = ? and verdict in ('repaired', 'accepted')",
                [run_id],
            ).fetchall()
        }
        compared = con.execute(
            f"select count(*) from live.marts.district_daily_kpis l join {catalog}.marts."
            "district_daily_kpis using (business_date)"
        ).fetchone()[0]
        moves = published_day_moves(con, "live", catalog, exempt)
        con.execute("detach live")
        con.execute(
            "create table if not exists audit.gate_results (run_id varchar not null, business_date date not null, "
            "suite varchar not null, stage varchar not null, evaluated integer not null, failed_critical integer "
            "not null, failed_warning integer not null, success boolean not null, checked_at timestamptz not null)"
        )
        con.execute(
            "delete from audit.gate_results where run_id = ? and business_date = ? and suite = 'published_days'",
            [run_id, business_date],
        )
        con.execute(
            "insert into audit.gate_results values (?, ?, 'published_days', 'marts', ?, ?, 0, ?, now())",
            [run_id, business_date, compared, len(moves), not moves],
        )
    if moves:
        shown = "; ".join(moves[:10]) + (f"; and {len(moves) - 10} more" if len(moves) > 10 else "")
        raise CorrectionRefused(
            f"Gate marts BLOCKED: this build moves {len(moves)} key figures of already published days beyond "
            f"the correction band ({settings.correction_band():.0%}, XIHU_CORRECTION_BAND): {shown}. "
            f"The published days stay as they were. {WHAT_TO_DO}"
        )
