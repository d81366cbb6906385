"""The published snapshot read by the clients analysts actually use, each through the recipe
docs/analysts.md gives, and a write through each recipe refused.

Two publications: the small hand-made one of conftest.py, read by the project's own DuckDB, pandas,
pyarrow and by LibreOffice Calc (the CSV with the Chinese text); and a real one, the core marts built by
dbt from tests/dbt's raw warehouse, read by the clients as Superset installs them: the DuckDB 1.5 CLI
(``duckdb-cli``), DuckDB 1.5's Python API, duckdb-engine on SQLAlchemy 1.4 and Superset's pandas and
pyarrow, all from their own virtualenv (clients-requirements.txt, probed by client_probe.py). The tests
run as root, so the 0440 file modes stop nothing: a refused write is the recipe's read-only mode, and the
file's sha256 still matching the manifest afterwards shows nothing was written."""

from __future__ import annotations

import csv
import hashlib
import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import duckdb
import pandas as pd
import pyarrow.parquet as pq
import pytest

from ingest.files import sha256_file
from publish import publish_version
from publish.publisher import Manifest, current_version
from tests.dbt.conftest import REPORTING_DATE, build_orders, choose_scenario, run_dbt_build, write_raw_warehouse
from tests.publish.client_probe import WRITE, probe_parquet
from tests.requires import needs_chromium

pytestmark = needs_chromium  # every test here publishes a version, and with it the briefing's PDF

STREETS = ["北山街道", "西溪街道", "灵隐街道"]
ROOT = Path(__file__).resolve().parents[2]
UV = ROOT / ".venv" / "bin" / "uv"
CLIENT_REQUIREMENTS = Path(__file__).with_name("clients-requirements.txt")
PROBE = Path(__file__).with_name("client_probe.py")
CLIENT_VENVS = ROOT / ".cache" / "client-venvs"  # git-ignored
# What uv says when it cannot reach the registry (as opposed to a pin that does not resolve).
UNREACHABLE = ("Failed to fetch", "dns error", "client error (Connect)", "Could not connect", "timed out")


@pytest.fixture(scope="session")
def client_venv() -> Path:
    """The clients' virtualenv, made by the project's uv from clients-requirements.txt under .cache/ and
    reused while that file is unchanged (its sha256 names the folder; ``.complete`` marks a finished
    install, so an interrupted one is redone). Skipped, naming the command, when PyPI is unreachable."""
    venv = CLIENT_VENVS / hashlib.sha256(CLIENT_REQUIREMENTS.read_bytes()).hexdigest()[:16]
    if (venv / ".complete").exists():
        return venv
    shutil.rmtree(venv, ignore_errors=True)
    steps = [
        [str(UV), "venv", "--quiet", "--python", sys.executable, str(venv)],
        [str(UV), "pip", "sync", "--quiet", "--python", str(venv / "bin" / "python"), str(CLIENT_REQUIREMENTS)],
    ]
    for step in steps:
        done = subprocess.run(step, capture_output=True, text=True, timeout=900)
        if done.returncode != 0:
            if any(sign in done.stderr for sign in UNREACHABLE):
                pytest.skip(
                    "PyPI unreachable, the clients' virtualenv cannot be made: "
                    + " && ".join(" ".join(s) for s in steps)
                )
            raise AssertionError(f"{' '.join(step)} failed:\n{done.stderr}")
    (venv / ".complete").touch()
    return venv


@pytest.fixture(scope="module")
def dbt_version(tmp_path_factory) -> Path:
    """A real publication: tests/dbt's hand-made raw warehouse, built by dbt (core marts), published;
    the resolved version folder."""
    data_dir = tmp_path_factory.mktemp("clients")
    scenario = choose_scenario()
    write_raw_warehouse(data_dir, scenario, build_orders(scenario))
    run_dbt_build(data_dir, REPORTING_DATE)
    publish_version(
        data_dir / "warehouse" / "xihu.duckdb", data_dir / "published", REPORTING_DATE.isoformat(), "run-clients"
    )
    return Path(os.path.realpath(data_dir / "published" / "current"))


def _probe(venv: Path, mode: str, folder: Path) -> dict:
    done = subprocess.run(
        [str(venv / "bin" / "python"), str(PROBE), mode, str(folder)],
        capture_output=True,
        text=True,
        timeout=300,
        env={"PATH": os.environ["PATH"]},
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def _tables(manifest: Manifest) -> set[str]:
    return {*manifest.marts, "mart_catalog", "column_catalog"}


def _assert_unchanged(folder: Path) -> None:
    """Every file still has the bytes the manifest lists (nothing was written by the refused write)."""
    manifest = Manifest.read(folder)
    assert {name: sha256_file(folder / name) for name in manifest.files} == manifest.files
    assert sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()) == sorted(
        [*manifest.files, "manifest.json"]
    )


def test_duckdb_1_5_cli_reads_every_table_read_only(client_venv, dbt_version):
    """``duckdb -readonly`` of duckdb-cli 1.5.6 opens the file DuckDB 2.0 wrote (storage version v1.4.0)."""
    manifest = Manifest.read(dbt_version)
    database = str(dbt_version / "marts.duckdb")

    def cli(sql: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [str(client_venv / "bin" / "duckdb"), "-readonly", "-json", database, "-c", sql],
            capture_output=True,
            text=True,
            timeout=120,
        )

    version = cli("select library_version from pragma_version()")
    assert version.returncode == 0, version.stderr + version.stdout
    assert json.loads(version.stdout) == [{"library_version": "v1.5.6"}]
    for mart, meta in manifest.marts.items():
        done = cli(f'select * from "{mart}"')
        assert done.returncode == 0, done.stderr + done.stdout
        rows = json.loads(done.stdout or "[]")
        assert len(rows) == meta["rows"] > 0
        assert list(rows[0]) == [c["name"] for c in meta["columns"]]
    catalog = json.loads(cli("select mart, row_count from mart_catalog").stdout)
    assert {r["mart"]: r["row_count"] for r in catalog} == {m: meta["rows"] for m, meta in manifest.marts.items()}

    write = cli(WRITE)
    assert write.returncode != 0
    assert "read-only" in write.stdout + write.stderr
    _assert_unchanged(dbt_version)


def test_duckdb_1_5_python_reads_every_table_read_only(client_venv, dbt_version):
    """``duckdb.connect(path, read_only=True)`` of DuckDB 1.5.6 (what ``apache-superset[duckdb]`` installs)."""
    manifest = Manifest.read(dbt_version)
    seen = _probe(client_venv, "duckdb", dbt_version)
    assert seen["versions"] == {"duckdb": "1.5.6"}
    assert set(seen["tables"]) == _tables(manifest)
    for mart, meta in manifest.marts.items():
        columns = [[c["name"], c["type"]] for c in meta["columns"]]
        assert seen["tables"][mart] == {"rows": meta["rows"], "columns": columns}
    assert "read-only" in seen["write_error"]
    _assert_unchanged(dbt_version)


def test_superset_sqlalchemy_reflects_every_table_and_column_read_only(client_venv, dbt_version):
    """duckdb-engine on SQLAlchemy 1.4 (Superset 6.1's pins) through
    ``duckdb:////abs/path/marts.duckdb?access_mode=read_only``: the catalog is ``marts.main`` (named after the
    file), every table and column reflects, sums reflect as BIGINT (HUGEINT reflected as INTEGER), a query
    answers what DuckDB 2.0 answers, and a write is refused."""
    manifest = Manifest.read(dbt_version)
    seen = _probe(client_venv, "sqlalchemy", dbt_version)
    assert seen["versions"] == {"duckdb": "1.5.6", "duckdb_engine": "0.17.0", "sqlalchemy": "1.4.54"}
    assert "marts.main" in seen["schemas"]
    assert set(seen["tables"]) == _tables(manifest)
    for mart, meta in manifest.marts.items():
        reflected = seen["tables"][mart]
        assert reflected["rows"] == meta["rows"]
        assert [name for name, _ in reflected["columns"]] == [c["name"] for c in meta["columns"]]
        published = {c["name"]: c["type"] for c in meta["columns"]}
        assert {n: t for n, t in reflected["columns"] if published[n] == "BIGINT"} == {
            n: "BIGINT" for n, t in published.items() if t == "BIGINT"
        }
    with duckdb.connect(str(dbt_version / "marts.duckdb"), read_only=True) as con:
        streets, deliveries = con.execute(
            "select count(distinct street_id), sum(deliveries) from unit_access_daily"
        ).fetchone()
    assert seen["query"] == {"streets": streets, "deliveries": deliveries} and deliveries > 0
    assert "read-only" in seen["write_error"]
    _assert_unchanged(dbt_version)


def test_pandas_and_pyarrow_old_and_new_see_bigint(client_venv, dbt_version):
    """Superset's pandas 2.1 / pyarrow 18 and the project's own read every Parquet file; the warehouse's
    HUGEINT sums are int64 there (BIGINT in the manifest), never a double or a decimal."""
    manifest = Manifest.read(dbt_version)
    warehouse = dbt_version.parents[2] / "warehouse" / "xihu.duckdb"
    with duckdb.connect(str(warehouse), read_only=True) as con:
        hugeint = con.execute(
            "select table_name, column_name from information_schema.columns "
            "where table_schema = 'marts' and data_type = 'HUGEINT'"
        ).fetchall()
    assert ("volunteer_activity_monthly", "points_earned") in hugeint  # a sum, HUGEINT in the warehouse
    old = _probe(client_venv, "parquet", dbt_version)
    assert old["versions"] == {"pandas": "2.1.4", "pyarrow": "18.1.0"}
    for seen in (old, probe_parquet(dbt_version)):
        assert set(seen["tables"]) == set(manifest.marts)
        for mart, meta in manifest.marts.items():
            table = seen["tables"][mart]
            assert table["rows"] == table["pandas_rows"] == meta["rows"]
            types = {c["name"]: c["type"] for c in meta["columns"]}
            assert "HUGEINT" not in types.values()
            assert {n: t for n, t in table["arrow_types"].items() if types[n] == "BIGINT"} == {
                n: "int64" for n, t in types.items() if t == "BIGINT"
            }
            assert {n: t for n, t in table["pandas_dtypes"].items() if types[n] == "BIGINT"} == {
                n: "Int64" for n, t in types.items() if t == "BIGINT"
            }
    for table, column in hugeint:
        assert {c["name"]: c["type"] for c in manifest.marts[table]["columns"]}[column] == "BIGINT"


def test_a_sum_beyond_bigint_is_not_published(warehouse, published):
    """HUGEINT sums are published as BIGINT with their value; one that does not fit stops the publication."""
    con = duckdb.connect(str(warehouse))
    con.execute("create table marts.big_sums as select sum(x) * 1000000000000 as total from range(1000) t(x)")
    con.close()
    first = publish_version(warehouse, published, "2026-11-28", "run-1")
    assert [(c["name"], c["type"]) for c in first.marts["big_sums"]["columns"]] == [("total", "BIGINT")]
    with duckdb.connect(str(published / "current" / "marts.duckdb"), read_only=True) as snapshot:
        assert snapshot.execute("select total from big_sums").fetchone() == (499500 * 10**12,)
    con = duckdb.connect(str(warehouse))
    con.execute("update marts.big_sums set total = total * 100000")  # 5 * 10^22 > 2^63
    con.close()
    with pytest.raises(ValueError, match="does not fit BIGINT"):
        publish_version(warehouse, published, "2026-11-28", "run-2")
    assert current_version(published) == first.version


@pytest.fixture
def current(warehouse, published) -> Path:
    publish_version(warehouse, published, "2026-11-28", "run-1")
    return Path(os.path.realpath(published / "current"))


def test_duckdb_reads_the_snapshot_read_only(current):
    manifest = Manifest.read(current)
    con = duckdb.connect(str(current / "marts.duckdb"), read_only=True)
    try:
        tables = {r[0] for r in con.execute("select table_name from information_schema.tables").fetchall()}
        assert tables == _tables(manifest)
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
    assert pd.api.types.is_bool_dtype(pd.read_parquet(current / "parquet" / "unit_access_daily.parquet")["is_friendly"])


def _soffice(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    """Headless LibreOffice with a throwaway profile (a shared profile would serialise parallel runs)."""
    profile = (tmp_path / "lo-profile").as_uri()
    return subprocess.run(
        ["soffice", f"-env:UserInstallation={profile}", "--headless", *args],
        capture_output=True,
        text=True,
        timeout=180,
        check=True,
    )


@pytest.mark.skipif(
    shutil.which("soffice") is None,
    reason="LibreOffice absent: apt-get install -y --no-install-recommends libreoffice-calc-nogui",
)
def test_libreoffice_opens_the_csv_with_chinese_text(current, tmp_path):
    """CSV -> xlsx -> CSV through Calc. LibreOffice does not take the charset from the BOM when converting
    headless (it falls back to the locale's 8-bit charset), so the import names UTF-8 (76), as an analyst
    picks "Unicode (UTF-8)" in Calc's Text Import dialog; docs/analysts.md says so."""
    source = current / "csv" / "street_coverage_monthly.csv"
    _soffice(
        tmp_path, "--infilter=CSV:44,34,76,1", "--convert-to", "xlsx", "--outdir", str(tmp_path / "xlsx"), str(source)
    )
    workbook = tmp_path / "xlsx" / "street_coverage_monthly.xlsx"
    with zipfile.ZipFile(workbook) as xlsx:
        strings = xlsx.read("xl/sharedStrings.xml").decode("utf-8")
    assert all(name in strings for name in STREETS)
    assert "\ufeff" not in strings  # the BOM was read as a BOM, not as part of the first header

    _soffice(
        tmp_path,
        "--convert-to",
        "csv:Text - txt - csv (StarCalc):44,34,76,1",
        "--outdir",
        str(tmp_path / "back"),
        str(workbook),
    )
    back = list(
        csv.DictReader((tmp_path / "back" / "street_coverage_monthly.csv").read_text(encoding="utf-8-sig").splitlines())
    )
    original = list(csv.DictReader(source.read_text(encoding="utf-8-sig").splitlines()))
    assert [(r["street_id"], r["street_name"]) for r in back] == [(r["street_id"], r["street_name"]) for r in original]
