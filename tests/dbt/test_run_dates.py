"""The DAG hands dbt its dates in the environment (ingest.settings.dbt_run_env), not in --vars: a new day
keeps dbt's partial parse of the day before, and the dates still reach the SQL, with --vars first."""

from __future__ import annotations

import json

from ingest.settings import dbt_run_env, dbt_vars
from tests.warehouse_helpers import dbt_in_memory


def parsed(out, env: dict[str, str]) -> tuple[int, int]:
    """`dbt parse` as the transform parses (the DAG's --vars): (files parsed, files in the project)."""
    dbt_in_memory(out, "parse", "--vars", json.dumps(dbt_vars()), env=env)
    perf = json.loads((out / "target" / "perf_info.json").read_text())
    return perf["parsed_path_count"], perf["path_count"]


def test_a_new_day_keeps_the_partial_parse_and_its_dates_reach_the_sql(tmp_path):
    first, files = parsed(tmp_path, dbt_run_env("2026-11-27", "2026-11-27"))
    assert first == files  # nothing saved yet: a full parse
    again, _ = parsed(tmp_path, dbt_run_env("2026-11-28", "2026-11-27"))
    # Only the few models whose parse reads a date are parsed again (six when this was written, of ~200).
    assert 0 < again <= files // 10

    show = ["show", "--inline", "select {{ business_date() }} as day, {{ reprocess_from() }} as rebuilt_from"]
    new_day = dbt_run_env("2026-11-28", "2026-11-27")
    shown = dbt_in_memory(tmp_path, *show, "--vars", json.dumps(dbt_vars()), env=new_day)
    assert "2026-11-28" in shown and "2026-11-25" in shown  # reprocess_days 2 before the oldest loaded day
    manual = json.dumps(dbt_vars(business_date="2026-10-01", loaded_from="2026-10-01"))
    shown = dbt_in_memory(tmp_path, *show, "--vars", manual, env=new_day)
    assert "2026-10-01" in shown and "2026-09-29" in shown and "2026-11-28" not in shown
