"""The one place that turns an Airflow run into a business date.

Business date D covers [D 00:00, D+1 00:00) Asia/Shanghai and its daily run is scheduled at D+1 01:30
Asia/Shanghai. Airflow 3 gives a scheduled or backfill run the cron fire time as its logical date; a manual
or ``airflow dags test`` run gets the trigger time (and may have ``data_interval_start == data_interval_end``).
All of them mean "the last complete day before this run", so the rule is: the local calendar date of the
logical date (or of ``run_after`` when a manual run has no logical date), minus one day. A run can also
name its day explicitly with the param ``business_date`` (``YYYY-MM-DD``), which wins.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from ingest.settings import TIMEZONE

LOCAL = ZoneInfo(TIMEZONE)


def business_date_for(logical_date: datetime | None, run_after: datetime | None = None,
                      override: str | None = None) -> date:
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
    return datetime.combine(business_date + timedelta(days=1), datetime.min.time(), LOCAL).replace(
        hour=1, minute=30)


def fetch_plan(business_date: date) -> list[dict]:
    """What one run fetches: every platform and the stations' log for D and D-1, the union for D.

    D-1 again because it may still change: the platforms correct up to ~1% of D-1's orders during D, and
    D-1's station file may have been missing or bad the day before (sources.md). The union export is a
    full snapshot, so D's is enough.
    """
    previous = business_date - timedelta(days=1)
    plan = [{"source": p, "business_date": d.isoformat()}
            for p in ("meituan", "eleme", "sf", "shansong", "stations") for d in (previous, business_date)]
    plan += [{"source": s, "business_date": business_date.isoformat()} for s in ("union_members", "union_orgs")]
    return plan
