"""Macro t_975 (dbt_project/macros/t_quantile.sql), Student's t quantile 0.975, against known values.

Rendered and evaluated by dbt itself (`dbt show --inline` on the in-memory `lint` target), so the SQL the
models use is the SQL tested. The reference is scipy's t.ppf for every df it is asked for.
"""

from __future__ import annotations

import json

import pytest
from scipy.stats import t as student_t

from tests.warehouse_helpers import dbt_in_memory

KNOWN = {1: 12.706, 2: 4.303, 3: 3.182, 10: 2.228, 30: 2.042, 100: 1.984}


@pytest.fixture(scope="module")
def t_975(tmp_path_factory) -> dict[int | None, float | None]:
    tmp = tmp_path_factory.mktemp("t975")
    sql = "select df, {{ t_975('df') }} as t from range(0, 1001) as r (df) union all select null, {{ t_975('null') }}"
    shown = dbt_in_memory(tmp, "show", "--inline", sql, "--limit", "2000", "--output", "json")
    rows = json.loads(shown[shown.index("{") :])["show"]
    return {r["df"]: r["t"] for r in rows}


@pytest.mark.parametrize(("df", "expected"), sorted(KNOWN.items()))
def test_known_values(t_975, df, expected):
    assert t_975[df] == pytest.approx(expected, abs=5e-4)


def test_within_1e_3_of_scipy_for_df_1_to_1000(t_975):
    worst = max(abs(t_975[df] - student_t.ppf(0.975, df)) for df in range(1, 1001))
    assert worst < 1e-5  # exact to 6 decimals up to 30, Cornish-Fisher (< 3e-8) beyond


def test_decreasing_towards_1_96(t_975):
    values = [t_975[df] for df in range(1, 1001)]
    assert all(a > b for a, b in zip(values, values[1:], strict=False))
    assert 1.96 < t_975[1000] < 1.9625


def test_no_quantile_without_degrees_of_freedom(t_975):
    assert t_975[0] is None and t_975[None] is None
