"""Run by the clients' own virtualenv (tests/publish/clients-requirements.txt), never by the project's:
opens a published version the way docs/analysts.md tells analysts to and prints what the client saw as
JSON, for test_real_clients.py to compare with the manifest. Imports nothing from the project.

``python client_probe.py duckdb|sqlalchemy <version folder>`` reads every table through that recipe and
then tries a write through the same recipe; ``python client_probe.py parquet <version folder>`` reads every
Parquet file with pyarrow and pandas.
"""

from __future__ import annotations

import json
import os
import sys
import warnings
from pathlib import Path

WRITE = "create table scratch as select 1 as x"


def probe_duckdb(folder: Path) -> dict:
    import duckdb

    con = duckdb.connect(str(folder / "marts.duckdb"), read_only=True)
    tables = {}
    for (name,) in con.execute("select table_name from duckdb_tables() order by 1").fetchall():
        rows = con.execute(f'select * from "{name}"').fetchall()
        columns = [[n, t] for n, t, *_ in con.execute(f'describe "{name}"').fetchall()]
        tables[name] = {"rows": len(rows), "columns": columns}
    try:
        con.execute(WRITE)
        write_error = None
    except duckdb.Error as error:
        write_error = str(error)
    con.close()
    return {"versions": {"duckdb": duckdb.__version__}, "tables": tables, "write_error": write_error}


def probe_sqlalchemy(folder: Path) -> dict:
    import duckdb
    import duckdb_engine
    import sqlalchemy as sa

    uri = f"duckdb:///{folder / 'marts.duckdb'}?access_mode=read_only"  # the URI docs/analysts.md gives
    engine = sa.create_engine(uri)
    inspector = sa.inspect(engine)
    tables = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # duckdb-engine warns that it reflects no indexes
        for name in inspector.get_table_names():
            # What Superset reflects for a dataset: columns, primary and foreign keys, indexes.
            columns = [[c["name"], str(c["type"])] for c in inspector.get_columns(name)]
            inspector.get_pk_constraint(name)
            inspector.get_foreign_keys(name)
            inspector.get_indexes(name)
            table = sa.Table(name, sa.MetaData(), autoload_with=engine)
            with engine.connect() as conn:
                rows = conn.execute(sa.select(table)).fetchall()
            tables[name] = {"rows": len(rows), "columns": columns}
    with engine.connect() as conn:
        street_rows = conn.execute(
            sa.text("select street_id, sum(deliveries) as deliveries from unit_access_daily group by street_id")
        ).fetchall()
    try:
        with engine.begin() as conn:
            conn.execute(sa.text(WRITE))
        write_error = None
    except sa.exc.DBAPIError as error:
        write_error = str(error.orig)
    engine.dispose()
    return {
        "versions": {
            "duckdb": duckdb.__version__,
            "duckdb_engine": duckdb_engine.__version__,
            "sqlalchemy": sa.__version__,
        },
        "schemas": inspector.get_schema_names(),
        "tables": tables,
        "query": {"streets": len(street_rows), "deliveries": sum(d or 0 for _, d in street_rows)},
        "write_error": write_error,
    }


def probe_parquet(folder: Path) -> dict:
    import pandas as pd
    import pyarrow
    import pyarrow.parquet as pq

    tables = {}
    for path in sorted((folder / "parquet").glob("*.parquet")):
        table = pq.read_table(path)
        frame = pd.read_parquet(path, dtype_backend="numpy_nullable")  # int64 with NULLs stays Int64
        tables[path.stem] = {
            "rows": table.num_rows,
            "arrow_types": {f.name: str(f.type) for f in table.schema},
            "pandas_dtypes": {c: str(t) for c, t in frame.dtypes.items()},
            "pandas_rows": len(frame),
        }
    return {"versions": {"pandas": pd.__version__, "pyarrow": pyarrow.__version__}, "tables": tables}


if __name__ == "__main__":
    mode, version_folder = sys.argv[1], Path(sys.argv[2])
    probe = {"duckdb": probe_duckdb, "sqlalchemy": probe_sqlalchemy, "parquet": probe_parquet}[mode]
    print(json.dumps(probe(version_folder), ensure_ascii=False), flush=True)
    # What the client saw is printed: leave without the interpreter's teardown, where pyarrow's thread
    # pools now and then abort the process (SIGABRT, "terminate called without an active exception",
    # apache/arrow#34314) after every read has succeeded.
    os._exit(0)
