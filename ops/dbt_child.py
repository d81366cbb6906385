#!/usr/bin/env python3
"""dbt as the warehouse writer of one run, bound to the life of the Airflow task that started it.

Cosmos starts dbt in a session of its own (``setsid``), so a SIGKILL of the Airflow process group used to
leave ``dbt build`` running, still writing and holding DuckDB's lock. This wrapper is Cosmos'
``dbt_executable_path``: it asks the kernel to kill it when its parent dies (``PR_SET_PDEATHSIG``), does
the same for the dbt child it starts, holds the warehouse writer (the flock and the run's lease, see
``ingest/warehouse.py``) while dbt runs, and records Cosmos' temporary project folder (its working
directory) so that the run's end, or the next run, removes it even after a kill.

The run comes from ``XIHU_RUN_KEY`` (set by the DAG); dbt's arguments pass through unchanged. Without
``XIHU_RUN_KEY`` (``dbt parse`` at build time, a manual call) it only execs dbt.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

PR_SET_PDEATHSIG = 1
# dbt of the interpreter this runs under (the venv's python3 is first on PATH in the embedded mode and the
# image), else whichever dbt is on PATH.
DBT = Path(sys.executable).parent / "dbt"
if not DBT.exists():
    DBT = Path(shutil.which("dbt") or DBT)


def die_with_parent() -> None:
    """Receive SIGKILL when the parent process ends (Linux; elsewhere a no-op)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
    except OSError:
        return
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def main(argv: list[str]) -> int:
    if not DBT.exists():
        print(
            f"dbt_child: no dbt next to {sys.executable} nor on PATH: run it with the project's Python "
            f"(its bin first on PATH)",
            file=sys.stderr,
        )
        return 2
    run_id = os.environ.get("XIHU_RUN_KEY")
    if not run_id:
        os.execv(DBT, [str(DBT), *argv])
    parent = os.getppid()
    die_with_parent()
    if os.getppid() != parent:  # the parent died before the request took effect
        return 1
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    import logging

    from ingest import warehouse

    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    with warehouse.writing(run_id) as staged:
        warehouse.note_dbt_dir(Path.cwd())
        env = {**os.environ, "XIHU_DBT_WAREHOUSE": str(staged)}
        child = subprocess.Popen([str(DBT), *argv], env=env, preexec_fn=die_with_parent)
        for sig in (signal.SIGTERM, signal.SIGINT):  # Cosmos' on_kill signals the group; pass it on
            signal.signal(sig, lambda s, _f: child.send_signal(s))
        return child.wait()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
