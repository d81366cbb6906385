"""A small read-only SQL shell on a published snapshot, for analysts without a BI tool.

DuckDB's own CLI is not part of the Python wheel, so this is a minimal REPL on the DuckDB Python API:
statements end with ``;``, results print as DuckDB's boxed tables, ``.tables`` lists the marts and
``.quit`` leaves. The snapshot is opened ``read_only``, so nothing an analyst types can change it.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TextIO

import duckdb

from publish.publisher import CURRENT, VERSIONS, Manifest

HELP = """Statements end with ';'. Try: select * from mart_catalog;
.tables   list the marts        .help   this text        .quit   leave"""
TABLES = "select mart, description, row_count from mart_catalog order by mart"


def snapshot_dir(published_root: str | Path, version: str | None = None) -> Path:
    """The folder of ``version``, or of the current version (resolved once, so a publish that switches
    ``current`` while the shell is open does not change what the shell reads)."""
    root = Path(published_root)
    path = root / VERSIONS / version if version else Path(os.path.realpath(root / CURRENT))
    if not (path / "marts.duckdb").exists():
        raise FileNotFoundError(f"no published snapshot at {path}")
    return path


def _execute(con: duckdb.DuckDBPyConnection, sql: str, out: TextIO) -> bool:
    try:
        relation = con.sql(sql)
    except duckdb.Error as error:
        print(f"Error: {error}", file=out)
        return False
    print(relation if relation is not None else "OK", file=out)
    return True


def run_shell(
    published_root: str | Path,
    version: str | None = None,
    command: str | None = None,
    stdin: TextIO = sys.stdin,
    out: TextIO = sys.stdout,
) -> int:
    """Run ``command`` once, or read statements from ``stdin`` until EOF or ``.quit``.
    Returns 0, or 1 if any statement failed (so scripts can tell)."""
    folder = snapshot_dir(published_root, version)
    con = duckdb.connect(str(folder / "marts.duckdb"), read_only=True)
    try:
        if command is not None:
            return 0 if _execute(con, command, out) else 1
        manifest = Manifest.read(folder)
        interactive = stdin.isatty()
        if interactive:
            import readline  # noqa: F401  (line editing and history for input())
        print(f"Xihu marts {manifest.version} (business date {manifest.business_date}), read-only.", file=out)
        print(HELP, file=out)
        ok, buffer = True, []
        while True:
            if interactive:
                try:
                    line = input("xihu> " if not buffer else "  ...> ")
                except EOFError:
                    break
            else:
                line = stdin.readline()
                if not line:
                    break
            stripped = line.strip()
            if not buffer and stripped.startswith("."):
                if stripped in (".quit", ".exit"):
                    break
                if stripped == ".tables":
                    ok &= _execute(con, TABLES, out)
                else:
                    print(HELP, file=out)
                continue
            buffer.append(line)
            if stripped.endswith(";"):
                ok &= _execute(con, "\n".join(buffer), out)
                buffer = []
        if "".join(buffer).strip():
            ok &= _execute(con, "\n".join(buffer), out)
        return 0 if ok else 1
    finally:
        con.close()
