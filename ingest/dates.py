"""The one place that turns an Airflow run into a business date.

Business date D covers [D 00:00, D+1 00:00) Asia/Shanghai and its daily run is scheduled at D+1 01:30
Asia/Shanghai. Airflow 3 gives a scheduled or backfill run the cron fire time as its logical date; a manual
or ``airflow dags test`` run gets the trigger time (and may have ``data_interval_start == data_interval_end``).
All of them mean "the last complete day before this run", so the rule is: the local calendar date of the
logical date (or of ``run_after`` when a manual run has no logical date), minus one day. A run can also
name its day explicitly with the param ``business_date`` (``YYYY-MM-DD``), which wins.

A history run (params ``history_from`` and ``history_to``) processes a whole range in one run instead:
:func:`history_dates` validates the range and :func:`history_plan` lists its fetches.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from ingest.registry import REGISTRY
from ingest.settings import TIMEZONE

LOCAL = ZoneInfo(TIMEZONE)
# The sources fetched for every date of a history run (the platforms and the stations' log: registry).
PLATFORMS_AND_STATIONS = tuple(s.name for s in REGISTRY if s.history == "every_date")
# Longest history run: a year of onboarding history with margin. A range is one run, one staged warehouse
# and one dbt build; longer ranges are several runs, oldest first.
MAX_HISTORY_DAYS = 400


def business_date_for(
    logical_date: datetime | None, run_after: datetime | None = None, override: str | None = None
) -> date:
    if override:
        return date.fromisoformat(override)
    moment = logical_date or run_after
    if moment is None:
        raise ValueError("a run needs a logical date, a run_after time or an explicit business_date")
    if moment.tzinfo is None:
        raise ValueError(f"naive datetime {moment!r}: Airflow always passes aware datetimes")
    return moment.astimezone(LOCAL).date() - timedelta(days=1)


def run_time_for(business_date: date) -> datetime:
    """The scheduled run of ``business_date``: D+1 01:30 Asia/Shanghai (inverse of business_date_for)."""
    return datetime.combine(business_date + timedelta(days=1), datetime.min.time(), LOCAL).replace(hour=1, minute=30)


def fetch_plan(business_date: date) -> list[dict]:
    """What one run fetches: every platform and the stations' log for D and D-1, the union for D.

    D-1 again because it may still change: the platforms correct up to ~1% of D-1's orders during D, and
    D-1's station file may have been missing or bad the day before (sources.md). The union export is a
    full snapshot, so D's is enough. Which source is fetched for which days is each registry entry's
    ``daily`` (days before D); the sources fetched for two days come first.
    """
    return [
        {"source": s.name, "business_date": (business_date - timedelta(days=back)).isoformat()}
        for s in sorted(REGISTRY, key=lambda s: -len(s.daily))
        for back in s.daily
    ]


def history_dates(
    history_from: str | None, history_to: str | None, business_date: str | None = None
) -> list[date] | None:
    """The dates of a history run (``history_from`` .. ``history_to``, both included), or None for a
    daily run. Raises ValueError, naming the params, for half a range, a range together with
    ``business_date`` (a history run's as-of date is ``history_to``), a reversed range or one longer than
    :data:`MAX_HISTORY_DAYS`."""
    if not history_from and not history_to:
        return None
    if not (history_from and history_to):
        raise ValueError("a history run needs both history_from and history_to (YYYY-MM-DD)")
    if business_date:
        raise ValueError(
            "business_date cannot be combined with history_from/history_to: a history run is as of history_to"
        )
    first, last = date.fromisoformat(history_from), date.fromisoformat(history_to)
    if first > last:
        raise ValueError(f"history_from {first} is after history_to {last}")
    days = (last - first).days + 1
    if days > MAX_HISTORY_DAYS:
        raise ValueError(
            f"history_from..history_to spans {days} days, more than {MAX_HISTORY_DAYS}: "
            "split it into several runs, oldest first"
        )
    return [first + timedelta(days=i) for i in range(days)]


def history_plan(days: list[date]) -> list[dict]:
    """What a history run fetches: every platform and the stations' log for every date of the range; the
    union's member export at each month end inside the range and at the last date, its organisations at
    the last date.

    The member export is a snapshot, and ``union_coverage_monthly`` reads each month's membership from the
    last export on or before the month's end: a month without one has no membership row, so one export per
    month end is the least that publishes every month of the range (a daily run has every day's). The
    organisations' staging keeps each organisation's latest snapshot only, so one is enough. No D-1 before
    the range: ``history_from`` - 1 belongs to the run of that day. Which source is fetched for which
    dates is each registry entry's ``history``.
    """
    month_ends = [d for d in days if (d + timedelta(days=1)).day == 1 and d != days[-1]]
    dates = {"every_date": days, "month_ends_and_last": [*month_ends, days[-1]], "last": [days[-1]]}
    order = ("every_date", "month_ends_and_last", "last")  # the platforms' many fetches first
    return [
        {"source": s.name, "business_date": d.isoformat()}
        for kind in order
        for s in REGISTRY
        if s.history == kind
        for d in dates[kind]
    ]
