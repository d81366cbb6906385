"""A district warehouse built from the real sandbox, without Airflow: the shared fixture of the
integration tests.

Why not Airflow: the DAG test (tests/test_pipeline_e2e.py) already proves the wiring; these tests check
the numbers, and they need 76 business dates, which `airflow dags test` cannot build in minutes. The
fixture runs the same components the DAG calls, in the same order: the sandbox on 127.0.0.1, every
source fetched for every date through `ingest.clients.fetch` (threads: the fetches are independent and
mostly wait on HTTP), `ingest.load.load_many`, then one `dbt build` in a subprocess with its own target
and log paths and `XIHU_DATA_DIR` under pytest's tmp.

Dates and scale: the world's DiD test window (adoptions 2026-08-01..08-14, `World.truth()`) with the
indicator's windows around it, [start - 28, end + 34], so every adoption in it has whole before and
after windows, and the reporting date is the last after-window day. Adoptions outside the test window are
at least 35 days away (world.py), so none of them has deliveries in both of its windows here. Scale 0.02
(~8,000 orders a day, ~0.6 M over the 76 days) builds in ~70 s on two cores (fetch 30 s, load 24 s,
dbt 14 s) and leaves every adopted unit >= 20 timed deliveries per window (the indicator's floor; the
thinnest, a construction site, has 23).
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path

import pytest

from ingest.clients import fetch
from ingest.load import load_many
from ingest.pii import PiiHasher
from sandbox.server import SandboxHandle, start_sandbox
from sandbox.world import World
from tests.sandbox_conns import sandbox_conn
from tests.warehouse_helpers import WarehouseQueries, run_dbt, warehouse_path

SEED, SCALE = 7, 0.02
SOURCES = ("meituan", "eleme", "sf", "shansong", "union_members", "union_orgs", "stations")
# A clock after every date the tests use: station logs published, late corrections applied.
SETTLED_CLOCK = datetime(2026, 12, 31, tzinfo=UTC)
TZ_SHANGHAI = timezone(timedelta(hours=8))
FETCH_THREADS = 4


def did_dates(truth: dict) -> tuple[date, date]:
    """First and last date the DiD windows of the truth's test window cover (indicators.md)."""
    window = truth["did_test_window"]
    return (
        date.fromisoformat(window["start"]) - timedelta(days=28),
        date.fromisoformat(window["end"]) + timedelta(days=34),
    )


def date_range(first: date, last: date) -> list[date]:
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]


def fetch_landing(
    sandbox: SandboxHandle, jobs: list[tuple[str, date]], landing_root: Path, fetch_id: str, now: datetime | None = None
) -> dict[tuple[str, date], Path]:
    """Land every (source, date) of ``jobs`` through the real clients; returns each complete folder.

    ``now`` is when the fetches start, as the landing's reuse rules see it (default the clock): a daily
    run's fetch of D at D+1 01:00 is provisional, and a later fetch re-pulls it instead of reusing it.
    Threads, because the fetches are independent and each mostly waits on the sandbox.
    """
    pii = PiiHasher("integration-test-pii-key-of-at-least-32-bytes")

    def one(job: tuple[str, date]) -> Path:
        source, day = job
        return fetch(source, day, sandbox_conn(sandbox.base_url, source), pii, fetch_id, landing_root, now=now)

    with ThreadPoolExecutor(FETCH_THREADS) as pool:
        return dict(zip(jobs, pool.map(one, jobs), strict=True))


@dataclass
class Warehouse(WarehouseQueries):
    """A built warehouse and what it was built from."""

    data_dir: Path
    seed: int
    scale: float
    dates: list[date]
    reporting_date: date
    truth: dict
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def path(self) -> Path:
        return warehouse_path(self.data_dir)


@pytest.fixture(scope="session")
def district(tmp_path_factory) -> Warehouse:
    """76 days of the sandbox district at scale 0.02, loaded and built for the last of them."""
    data_dir = tmp_path_factory.mktemp("district")
    truth = World(SEED, SCALE).truth()
    first, last = did_dates(truth)
    dates = date_range(first, last)
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    jobs = [(s, d) for d in dates for s in SOURCES]
    with start_sandbox(SEED, SCALE, now=SETTLED_CLOCK) as sandbox:
        folders = fetch_landing(sandbox, jobs, data_dir / "landing", "it")
    timings["fetch_s"] = time.perf_counter() - t0
    (data_dir / "warehouse").mkdir()
    t0 = time.perf_counter()
    load_many(str(data_dir / "warehouse" / "xihu.duckdb"), [folders[job] for job in jobs])
    timings["load_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    run_dbt(data_dir, "build", last)
    timings["dbt_build_s"] = time.perf_counter() - t0
    print(
        f"district warehouse: {len(dates)} days {first}..{last}, scale {SCALE}, "
        + ", ".join(f"{k} {v:.1f}" for k, v in timings.items())
    )
    return Warehouse(data_dir, SEED, SCALE, dates, last, truth, timings)
