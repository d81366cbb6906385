"""The published snapshot read by the clients analysts actually use: DuckDB (read-only, as Superset's
duckdb-engine and the ODBC driver open it), pyarrow and pandas on the Parquet files, pandas and
LibreOffice Calc on the CSV (UTF-8 with BOM), with the Chinese text intact."""

from __future__ import annotations

import csv
import os
import shutil
import subprocess
import zipfile
from pathlib import Path

import duckdb
import pandas as pd
import pyarrow.parquet as pq
import pytest

from publish import publish_version
from publish.publisher import Manifest

STREETS = ["北山街道", "西溪街道", "灵隐街道"]


@pytest.fixture
def current(warehouse, published) -> Path:
    publish_version(warehouse, published, "2026-11-28", "run-1")
    return Path(os.path.realpath(published / "current"))


def test_duckdb_reads_the_snapshot_read_only(current):
    manifest = Manifest.read(current)
    con = duckdb.connect(str(current / "marts.duckdb"), read_only=True)
    try:
        tables = {r[0] for r in con.execute("select table_name from information_schema.tables").fetchall()}
        assert tables == {*manifest.marts, "mart_catalog", "column_catalog"}
        for mart, meta in manifest.marts.items():
            assert con.execute(f'select count(*) from "{mart}"').fetchone()[0] == meta["rows"]
            described = [{"name": n, "type": t} for n, t, *_ in con.execute(f'describe "{mart}"').fetchall()]
            assert described == [{"name": c["name"], "type": c["type"]} for c in meta["columns"]]
        names = {r[0] for r in con.execute("select street_name from street_coverage_monthly").fetchall()}
        assert names == set(STREETS)
        with pytest.raises(duckdb.Error, match="read-only"):
            con.execute("create table scratch as select 1")
        # The same Parquet files, queried in place as Metabase/Superset users do with read_parquet.
        via_parquet = con.execute(
            f"select count(*), count(distinct street_name) from read_parquet('{current}/parquet/*.parquet',"
            " union_by_name = true) where street_name is not null"
        ).fetchone()
        assert via_parquet == (11, 3)
    finally:
        con.close()


def test_pyarrow_and_pandas_read_parquet_and_csv(current):
    manifest = Manifest.read(current)
    for mart, meta in manifest.marts.items():
        table = pq.read_table(current / "parquet" / f"{mart}.parquet")
        assert table.num_rows == meta["rows"]
        assert table.column_names == [c["name"] for c in meta["columns"]]
        frame = pd.read_parquet(current / "parquet" / f"{mart}.parquet")
        from_csv = pd.read_csv(current / "csv" / f"{mart}.csv", encoding="utf-8-sig")
        assert list(from_csv.columns) == list(frame.columns)  # no BOM glued to the first header
        assert len(from_csv) == len(frame) == meta["rows"]
    streets = pd.read_csv(current / "csv" / "street_coverage_monthly.csv", encoding="utf-8-sig")
    assert set(streets["street_name"]) == set(STREETS)
    parquet = pd.read_parquet(current / "parquet" / "street_coverage_monthly.parquet")
    assert set(parquet["street_name"]) == set(STREETS)
    assert pd.api.types.is_bool_dtype(pd.read_parquet(current / "parquet" / "unit_access_daily.parquet")
                                      ["is_friendly"])


def _soffice(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    """Headless LibreOffice with a throwaway profile (a shared profile would serialise parallel runs)."""
    profile = (tmp_path / "lo-profile").as_uri()
    return subprocess.run(["soffice", f"-env:UserInstallation={profile}", "--headless", *args],
                          capture_output=True, text=True, timeout=180, check=True)


@pytest.mark.skipif(
    shutil.which("soffice") is None,
    reason="LibreOffice absent: apt-get install -y --no-install-recommends libreoffice-calc-nogui",
)
def test_libreoffice_opens_the_csv_with_chinese_text(current, tmp_path):
    """CSV -> xlsx -> CSV through Calc. LibreOffice does not take the charset from the BOM when converting
    headless (it falls back to the locale's 8-bit charset), so the import names UTF-8 (76), as an analyst
    picks "Unicode (UTF-8)" in Calc's Text Import dialog; docs/analysts.md says so."""
    source = current / "csv" / "street_coverage_monthly.csv"
    _soffice(tmp_path, "--infilter=CSV:44,34,76,1", "--convert-to", "xlsx",
             "--outdir", str(tmp_path / "xlsx"), str(source))
    workbook = tmp_path / "xlsx" / "street_coverage_monthly.xlsx"
    with zipfile.ZipFile(workbook) as xlsx:
        strings = xlsx.read("xl/sharedStrings.xml").decode("utf-8")
    assert all(name in strings for name in STREETS)
    assert "\ufeff" not in strings  # the BOM was read as a BOM, not as part of the first header

    _soffice(tmp_path, "--convert-to", "csv:Text - txt - csv (StarCalc):44,34,76,1", "--outdir",
             str(tmp_path / "back"), str(workbook))
    back = list(csv.DictReader((tmp_path / "back" / "street_coverage_monthly.csv").read_text(
        encoding="utf-8-sig").splitlines()))
    original = list(csv.DictReader(source.read_text(encoding="utf-8-sig").splitlines()))
    assert [(r["street_id"], r["street_name"]) for r in back] == [
        (r["street_id"], r["street_name"]) for r in original]
