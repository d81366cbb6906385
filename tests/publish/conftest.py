"""A small warehouse with two marts (one with Chinese text and a dbt-style table comment) and a staging
table that must never be published."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest


def build_marts(path: Path) -> Path:
    con = duckdb.connect(str(path))
    con.execute("create schema marts")
    con.execute("create schema staging")
    con.execute(
        """
        create table marts.unit_access_daily as
        select 'U' || lpad(u::varchar, 4, '0') as unit_id, date '2026-11-28' as business_date,
               10 + u as deliveries, 0.5 as share_parked_rider_bay, u % 3 = 0 as is_friendly
        from range(50) t(u)
        """
    )
    con.execute(
        """
        create table marts.street_coverage_monthly as
        select 'S' || lpad(s::varchar, 2, '0') as street_id,
               ['北山街道', '西溪街道', '灵隐街道'][s % 3 + 1] as street_name,
               date '2026-11-01' as month, s / 11.0 as friendly_share
        from range(1, 12) t(s)
        """
    )
    con.execute(
        "comment on table marts.street_coverage_monthly is"
        " 'One row per street and month: friendly units and their share (友好单元覆盖)'"
    )
    con.execute("create table staging.stg_riders as select 'secret' as rider_key")
    con.close()
    return path


@pytest.fixture
def data_dir(tmp_path, monkeypatch) -> Path:
    root = tmp_path / "data"
    monkeypatch.setenv("XIHU_DATA_DIR", str(root))
    return root


@pytest.fixture
def warehouse(data_dir) -> Path:
    (data_dir / "warehouse").mkdir(parents=True)
    return build_marts(data_dir / "warehouse" / "xihu.duckdb")


@pytest.fixture
def published(data_dir) -> Path:
    return data_dir / "published"


@pytest.fixture
def set_deliveries(warehouse):
    """Mark every row of a mart with a value so a reader can tell which publish a file came from."""

    def mark(value: int) -> None:
        con = duckdb.connect(str(warehouse))
        con.execute("update marts.unit_access_daily set deliveries = ?", [value])
        con.close()

    return mark
