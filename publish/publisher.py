"""Versioned snapshots of the marts, switched into place atomically.

A version is built completely in a temporary folder next to ``versions/`` (same filesystem), fsynced,
renamed into ``versions/``, and only then is ``current`` switched: a new symlink under a temporary name
replaces ``current`` with ``os.replace``, which is atomic on POSIX. A reader that resolves ``current``
once (``os.path.realpath``) and reads everything through the resolved folder therefore sees one whole
version, old or new, never half of each; and ``current`` itself never disappears.

Layout of a version (``published/versions/<YYYYMMDD>T<HHMMSS>Z-<business_date>-<short run id>/``):
``marts.duckdb`` (every mart in schema ``main`` plus ``mart_catalog``), ``parquet/<mart>.parquet``,
``csv/<mart>.csv`` (UTF-8 with BOM, so Excel reads Chinese text), ``manifest.json``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import shutil
import subprocess
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path

import duckdb

from ingest import settings

BOM = b"\xef\xbb\xbf"
CURRENT = "current"
VERSIONS = "versions"
STAGING = ".staging"  # temporary build folders: same filesystem as versions/, so rename is atomic
REPO_ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Manifest:
    version: str
    business_date: str
    run_id: str
    code_version: str
    published_at: str
    marts: dict  # name -> {"description", "rows", "columns": [{"name", "type"}], "files": [...]}
    files: dict  # path relative to the version folder -> sha256 (every file but manifest.json)

    def to_json(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False, indent=2, sort_keys=True)

    @classmethod
    def read(cls, version_dir: str | Path) -> Manifest:
        return cls(**json.loads((Path(version_dir) / "manifest.json").read_text(encoding="utf-8")))


def code_version() -> str:
    """``git describe --always --dirty`` of the checkout, else ``XIHU_CODE_VERSION`` (images have no
    ``.git``), else ``unknown``."""
    try:
        described = subprocess.run(
            ["git", "describe", "--always", "--dirty"],
            cwd=REPO_ROOT, capture_output=True, text=True, timeout=10, check=True,
        ).stdout.strip()
        if described:
            return described
    except (OSError, subprocess.SubprocessError):
        pass
    return os.environ.get("XIHU_CODE_VERSION") or "unknown"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _fsync_file(path: Path) -> None:
    with path.open("rb") as f:
        os.fsync(f.fileno())


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def versions(published_root: str | Path) -> list[str]:
    """Published versions, oldest first. Names start with the publish second; the manifest's
    microsecond ``published_at`` orders versions published within the same second."""
    root = Path(published_root) / VERSIONS
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")]
    return [p.name for p in sorted(found, key=lambda p: (Manifest.read(p).published_at, p.name))]


def current_version(published_root: str | Path) -> str | None:
    link = Path(published_root) / CURRENT
    return Path(os.readlink(link)).name if link.is_symlink() else None


def _switch_current(published_root: Path, version: str) -> None:
    """Point ``current`` at ``versions/<version>`` atomically (relative link: the root can move)."""
    tmp_link = published_root / f".{CURRENT}-{uuid.uuid4().hex}"
    os.symlink(Path(VERSIONS) / version, tmp_link)
    os.replace(tmp_link, published_root / CURRENT)
    _fsync_dir(published_root)


def _prune(published_root: Path, keep: int) -> list[str]:
    """Delete all but the newest ``keep`` versions, never the one ``current`` points to."""
    keep = max(keep, 1)
    current = current_version(published_root)
    names = versions(published_root)
    doomed = [v for v in names[: max(len(names) - keep, 0)] if v != current]
    for name in doomed:
        shutil.rmtree(published_root / VERSIONS / name)
    return doomed


def _table_descriptions(con: duckdb.DuckDBPyConnection) -> dict[str, str]:
    """Table comments of the warehouse's marts (dbt writes them with ``persist_docs``)."""
    rows = con.execute(
        "select table_name, comment from duckdb_tables() where database_name = 'wh' and schema_name = 'marts'"
        " union all "
        "select view_name, comment from duckdb_views() where database_name = 'wh' and schema_name = 'marts'"
    ).fetchall()
    return {name: comment for name, comment in rows if comment}


def _build(
    build_dir: Path,
    warehouse_path: Path,
    marts: list[str] | None,
    descriptions: dict[str, str] | None,
    meta: dict,
) -> Manifest:
    (build_dir / "parquet").mkdir(parents=True)
    (build_dir / "csv").mkdir()
    con = duckdb.connect(str(build_dir / "marts.duckdb"))
    mart_info: dict[str, dict] = {}
    try:
        # The warehouse is attached read-only: publishing never takes the writer's lock.
        con.execute(f"attach {_literal(str(warehouse_path))} as wh (read_only)")
        available = [
            r[0]
            for r in con.execute(
                "select table_name from information_schema.tables"
                " where table_catalog = 'wh' and table_schema = 'marts' order by table_name"
            ).fetchall()
        ]
        chosen = available if marts is None else list(marts)
        unknown = sorted(set(chosen) - set(available))
        if unknown:
            raise ValueError(f"not in the warehouse's marts schema: {', '.join(unknown)}")
        described = {**_table_descriptions(con), **(descriptions or {})}
        for mart in chosen:
            con.execute(f"create table main.{_quote(mart)} as select * from wh.marts.{_quote(mart)}")
        con.execute("detach wh")
        con.execute(
            "create table main.mart_catalog (mart varchar primary key, description varchar,"
            " row_count bigint, business_date date, version varchar)"
        )
        for mart in chosen:
            rows = con.execute(f"select count(*) from main.{_quote(mart)}").fetchone()[0]
            columns = [
                {"name": name, "type": col_type}
                for name, col_type, *_ in con.execute(f"describe main.{_quote(mart)}").fetchall()
            ]
            con.execute(
                "insert into main.mart_catalog values (?, ?, ?, ?, ?)",
                [mart, described.get(mart), rows, meta["business_date"], meta["version"]],
            )
            parquet = build_dir / "parquet" / f"{mart}.parquet"
            con.execute(f"copy main.{_quote(mart)} to {_literal(str(parquet))} (format parquet)")
            plain_csv = build_dir / "csv" / f".{mart}.nobom.csv"
            con.execute(f"copy main.{_quote(mart)} to {_literal(str(plain_csv))} (format csv, header true)")
            with plain_csv.open("rb") as src, (build_dir / "csv" / f"{mart}.csv").open("wb") as dst:
                dst.write(BOM)
                shutil.copyfileobj(src, dst, 1 << 20)
            plain_csv.unlink()
            mart_info[mart] = {
                "description": described.get(mart),
                "rows": rows,
                "columns": columns,
                "files": ["marts.duckdb", f"parquet/{mart}.parquet", f"csv/{mart}.csv"],
            }
        con.execute("checkpoint")  # everything in the file itself, no WAL next to it
    finally:
        con.close()

    files = {
        str(p.relative_to(build_dir)): _sha256(p) for p in sorted(build_dir.rglob("*")) if p.is_file()
    }
    manifest = Manifest(marts=mart_info, files=files, **meta)
    (build_dir / "manifest.json").write_text(manifest.to_json(), encoding="utf-8")
    for p in build_dir.rglob("*"):
        if p.is_file():
            _fsync_file(p)
            p.chmod(0o444)  # a published version is immutable: a tool opening it for writing fails
    for d in (build_dir / "parquet", build_dir / "csv", build_dir):
        _fsync_dir(d)
    return manifest


def publish_version(
    warehouse_path: str | Path,
    published_root: str | Path,
    business_date: dt.date | str,
    run_id: str,
    marts: list[str] | None = None,
    descriptions: dict[str, str] | None = None,
) -> Manifest:
    """Publish the marts (every table of schema ``marts`` by default) as a new version, switch
    ``current`` to it and prune old versions (``XIHU_KEEP_VERSIONS``). ``descriptions`` fill
    ``mart_catalog``; without them the warehouse's table comments are used."""
    published_root = Path(published_root)
    (published_root / VERSIONS).mkdir(parents=True, exist_ok=True)
    (published_root / STAGING).mkdir(exist_ok=True)
    now = dt.datetime.now(dt.UTC)
    short_run = hashlib.sha1(run_id.encode()).hexdigest()[:8]
    version = f"{now:%Y%m%dT%H%M%SZ}-{business_date}-{short_run}"
    suffix = 1
    while (published_root / VERSIONS / version).exists():  # same run published twice in one second
        suffix += 1
        version = f"{now:%Y%m%dT%H%M%SZ}-{business_date}-{short_run}-{suffix}"
    meta = {
        "version": version,
        "business_date": str(business_date),
        "run_id": run_id,
        "code_version": code_version(),
        "published_at": now.isoformat(timespec="microseconds"),
    }
    build_dir = published_root / STAGING / f"{version}-{uuid.uuid4().hex[:8]}"
    try:
        manifest = _build(build_dir, Path(warehouse_path), marts, descriptions, meta)
        os.rename(build_dir, published_root / VERSIONS / version)
    except BaseException:
        shutil.rmtree(build_dir, ignore_errors=True)
        raise
    _fsync_dir(published_root / VERSIONS)
    _switch_current(published_root, version)
    _prune(published_root, settings.keep_versions())
    return manifest


def record_publication(warehouse_path: str | Path, manifest: Manifest) -> None:
    """One row in ``audit.publications`` (read by the ``pipeline_runs`` mart). The caller holds the
    writer pool; a retried publish task replaces its run's row."""
    con = duckdb.connect(str(warehouse_path))
    try:
        con.execute("create schema if not exists audit")
        con.execute("create table if not exists audit.publications (run_id varchar, business_date date, "
                    "version varchar, published_at timestamp, status varchar)")
        con.execute("delete from audit.publications where run_id = ? and business_date = ?",
                    [manifest.run_id, manifest.business_date])
        con.execute("insert into audit.publications values (?, ?, ?, ?::timestamptz::timestamp, 'published')",
                    [manifest.run_id, manifest.business_date, manifest.version, manifest.published_at])
    finally:
        con.close()


def rollback(published_root: str | Path, to_version: str | None = None) -> str:
    """Point ``current`` at ``to_version``, or at the version published before the current one.
    Returns the version now current. Versions newer than it are kept (roll forward is a rollback too)."""
    published_root = Path(published_root)
    names = versions(published_root)
    if to_version is None:
        current = current_version(published_root)
        older = names[: names.index(current)] if current in names else names
        if not older:
            raise ValueError(f"no version older than {current} to roll back to")
        to_version = older[-1]
    elif to_version not in names:
        raise ValueError(f"unknown version {to_version!r}; published: {', '.join(names) or 'none'}")
    _switch_current(published_root, to_version)
    return to_version


def default_root() -> Path:
    return settings.published_dir()
