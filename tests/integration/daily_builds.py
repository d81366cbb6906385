"""Run business dates one after another as the daily DAG does: load the date's landing, then `dbt build`.

Usage: ``python tests/integration/daily_builds.py PLAN.json``, where PLAN is
``{"data_dir": "...", "runs": [{"business_date": "YYYY-MM-DD", "folders": ["landing/...", ...]}, ...]}``.
Prints one JSON line per run: ``{"business_date", "load_s", "build_s"}``.

Why dbt's Python API in a child process rather than one `dbt build` subprocess per date: every new
``--vars`` forces dbt to re-parse the project, ~4 s of start-up per date, two minutes over a month. Here
the project is parsed once and each date's build reuses the manifest (vars are applied when nodes are
compiled, at run time), ~2 s a date. It is still a process of its own, so dbt's global state and
``XIHU_DATA_DIR`` stay out of the pytest session. Tests are left out of the daily builds
(``--exclude-resource-type test unit_test``): what is under test is the incremental state the models
leave behind; the district fixture runs the full build with every test.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

from dbt.cli.main import dbtRunner

from ingest.load import load_many
from ingest.settings import dbt_vars
from tests.warehouse_helpers import DBT_PROJECT, dbt_paths, warehouse_path


def main(plan_path: str) -> int:
    plan = json.loads(Path(plan_path).read_text())
    data_dir = Path(plan["data_dir"])
    os.environ["XIHU_DATA_DIR"] = str(data_dir)
    os.chdir(DBT_PROJECT)
    common = [*dbt_paths(data_dir), "--quiet"]
    parsed = dbtRunner().invoke(["parse", *common])
    if not parsed.success:
        raise SystemExit(f"dbt parse failed: {parsed.exception}")
    runner = dbtRunner(manifest=parsed.result)
    for run in plan["runs"]:
        t0 = time.perf_counter()
        if run["folders"]:
            load_many(str(warehouse_path(data_dir)), [Path(f) for f in run["folders"]])
        t1 = time.perf_counter()
        result = runner.invoke(
            [
                "build",
                *common,
                "--vars",
                json.dumps(dbt_vars(business_date=run["business_date"])),
                "--exclude-resource-type",
                "test",
                "--exclude-resource-type",
                "unit_test",
            ]
        )
        if not result.success:
            raise SystemExit(f"dbt build failed for {run['business_date']}: {result.exception}")
        print(
            json.dumps(
                {
                    "business_date": run["business_date"],
                    "load_s": round(t1 - t0, 2),
                    "build_s": round(time.perf_counter() - t1, 2),
                }
            ),
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
