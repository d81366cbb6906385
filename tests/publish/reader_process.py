"""A BI-tool-like reader, run as its own process by test_concurrent_readers.py.

``python reader_process.py PUBLISHED_ROOT STOP_FILE``. It first opens the version ``current`` points to
with a read-only DuckDB connection and keeps it open until the end (a dashboard left open). Then, until
STOP_FILE exists, it resolves ``current`` once per round and reads everything through the resolved
folder, the way docs/analysts.md tells analysts to: it opens ``marts.duckdb`` read-only and every Parquet
file, hashes every byte it read and compares with that version's manifest, and checks that the data
carries the marker of the publish the manifest names (run ``run-N`` wrote ``deliveries = N``).

Prints one JSON line ``{"ready": ...}`` after the first round, and one summary line at the end.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from pathlib import Path

import duckdb
import pyarrow.parquet as pq


def read_round(root: Path) -> tuple[str, list[str]]:
    """One consistent read of the current version; returns its name and what did not match."""
    folder = Path(os.path.realpath(root / "current"))
    manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    marker = int(manifest["run_id"].split("-")[1])
    problems = []
    con = duckdb.connect(str(folder / "marts.duckdb"), read_only=True)
    try:
        handles = {name: (folder / name).open("rb") for name in manifest["files"]}  # all held at once
        try:
            for name, handle in handles.items():
                if hashlib.sha256(handle.read()).hexdigest() != manifest["files"][name]:
                    problems.append(f"{folder.name}/{name} does not match its manifest")
            for mart in manifest["marts"]:
                table = pq.read_table(folder / "parquet" / f"{mart}.parquet")
                rows = con.execute(f'select count(*) from "{mart}"').fetchone()[0]
                if table.num_rows != manifest["marts"][mart]["rows"] or rows != table.num_rows:
                    problems.append(f"{folder.name}/{mart}: {rows} rows in DuckDB, {table.num_rows} in Parquet")
            in_duckdb = {r[0] for r in con.execute("select distinct deliveries from unit_access_daily").fetchall()}
            in_parquet = set(
                pq.read_table(folder / "parquet" / "unit_access_daily.parquet").column("deliveries").to_pylist()
            )
            if in_duckdb != {marker} or in_parquet != {marker}:
                problems.append(f"{folder.name}: run {marker}, DuckDB {in_duckdb}, Parquet {in_parquet}")
            time.sleep(0.01)  # hold every file open a little longer, as a slow client would
        finally:
            for handle in handles.values():
                handle.close()
    finally:
        con.close()
    return folder.name, problems


def main(root: Path, stop_file: Path) -> None:
    held_folder = Path(os.path.realpath(root / "current"))
    held = duckdb.connect(str(held_folder / "marts.duckdb"), read_only=True)
    held_since = time.time()
    rounds, seen, problems = 0, [], []
    while True:
        try:
            name, found = read_round(root)
            seen.append(name)
            problems.extend(found)
        except Exception as error:  # noqa: BLE001  (any failure to read is what the test is about)
            problems.append(repr(error))
        rounds += 1
        if rounds == 1:
            print(json.dumps({"ready": seen[-1] if seen else None}), flush=True)
        if stop_file.exists():
            break
    held_values = [r[0] for r in held.execute("select distinct deliveries from unit_access_daily").fetchall()]
    held.close()
    print(
        json.dumps(
            {
                "rounds": rounds,
                "versions_seen": sorted(set(seen)),
                "last_seen": seen[-1] if seen else None,
                "problems": problems,
                "held_version": held_folder.name,
                "held_values": held_values,
                "held_from": held_since,
                "held_until": time.time(),
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
