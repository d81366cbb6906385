"""Secondary suppression holds against subtraction (indicators.md, privacy rule): over the whole published
marts of the 76-day district fixture, the differencing attack of tests/integration/differencing.py (every
published total minus its other published parts) recovers no suppressed cell; built without secondary
suppression it does.

At K=5 this fixture (scale 0.02) leaves no suppressed cell alone under a published total even without
secondary suppression (measured: 0 recoverable): its small cells come in crowds. The attack is therefore
also shown at K=3, where the K rule alone leaves cells recoverable (units under their street's deliveries,
unions under their federation and their cell's members).
"""

from __future__ import annotations

import shutil

import duckdb
import pytest

from tests.integration.differencing import recoverable
from tests.warehouse_helpers import run_dbt

pytestmark = pytest.mark.slow  # builds the sandbox district (minutes)


def _attack(path) -> dict[str, int]:
    with duckdb.connect(str(path), read_only=True) as con:
        return recoverable(con)


def _suppressed(path) -> int:
    with duckdb.connect(str(path), read_only=True) as con:
        tables = [
            t
            for (t,) in con.execute(
                "select table_name from information_schema.columns where table_schema = 'marts' "
                "and column_name = 'suppressed_cells'"
            ).fetchall()
        ]
        return sum(
            con.execute(
                f"select coalesce(sum(len(string_split(nullif(suppressed_cells, ''), ','))), 0) from marts.{t}"
            ).fetchone()[0]
            for t in tables
        )


def test_no_suppressed_cell_is_recoverable_from_published_totals(district):
    assert _attack(district.path) == {}


def test_the_attack_recovers_cells_without_secondary_suppression(district, tmp_path, monkeypatch):
    """One build at K=3 with secondary suppression off: the attack finds cells. Then the same suppression
    the build's on-run-end hook runs, on that warehouse: it finds none, with more cells suppressed."""
    data_dir = tmp_path / "k3"
    (data_dir / "warehouse").mkdir(parents=True)
    path = data_dir / "warehouse" / "xihu.duckdb"
    shutil.copy(district.path, path)
    monkeypatch.setenv("XIHU_K_ANON", "3")
    run_dbt(data_dir, "build", district.reporting_date, "--full-refresh", secondary_suppression=False)
    found = _attack(path)
    before = _suppressed(path)
    assert sum(found.values()) > 0, "the K rule alone should leave cells recoverable at K=3"
    assert any(name.startswith("unit_access_daily.deliveries") for name in found), found

    run_dbt(data_dir, "run-operation secondary_suppression", district.reporting_date)
    after = _suppressed(path)
    print(
        f"\nK=3: {sum(found.values())} cells recoverable by the K rule alone ({found}); "
        f"cells suppressed {before} before, {after} after secondary suppression"
    )
    assert _attack(path) == {}
    assert after > before
