"""Versioned snapshots of the marts, switched into place atomically.

A version is built completely in a temporary folder next to ``versions/`` (same filesystem), fsynced,
renamed into ``versions/``, and only then is ``current`` switched: a new symlink under a temporary name
replaces ``current`` with ``os.replace``, which is atomic on POSIX. A reader that resolves ``current``
once (``os.path.realpath``) and reads everything through the resolved folder therefore sees one whole
version, old or new, never half of each; and ``current`` itself never disappears.

``current`` only moves forward: a version is named for the newest business date it holds, and a version
of an older date than the one ``current`` serves is refused (correcting an old day publishes a new
version of the newest date, listing the corrected days in ``corrected_dates``).

Between the version folder and the switch, the pipeline records the publication in its warehouse
(``before_switch``). A marker ``published/.pending`` names the version from before its folder exists
until ``current`` points at it, so a kill anywhere in between is settled by :func:`recover` at the next
run: a version whose publication was recorded is switched to, an unrecorded one is deleted. No version is
served unrecorded, and none is recorded but left unserved.

Layout of a version (``published/versions/<YYYYMMDD>T<HHMMSS>Z-<business_date>-<short run id>/``):
``marts.duckdb`` (every mart in schema ``main`` plus ``mart_catalog`` and ``column_catalog``; tables and
columns commented, publish/describe.py), ``parquet/<mart>.parquet``,
``csv/<mart>.csv`` (UTF-8 with BOM, so Excel reads Chinese text), ``briefing.html`` and ``briefing.pdf``
(the daily briefing, made from that ``marts.duckdb`` alone: publish/briefing.py), ``manifest.json``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import shutil
import subprocess
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import duckdb

from ingest import settings
from ingest.files import fsync_path, sha256_file
from publish import describe
from publish.compat import connect_snapshot, copy_mart

BOM = b"\xef\xbb\xbf"
CURRENT = "current"
VERSIONS = "versions"
STAGING = ".staging"  # temporary build folders: same filesystem as versions/, so rename is atomic
PENDING = ".pending"  # the version being published, until current points at it
REPO_ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Manifest:
    version: str
    business_date: str
    run_id: str
    code_version: str
    published_at: str
    marts: dict  # name -> {"description", "rows", "columns": [{"name", "type", "description"}], "files": [...]}
    files: dict  # path relative to the version folder -> sha256 (every file but manifest.json)
    # Already published business dates this version changes (late corrections, a re-run or backfill).
    corrected_dates: list = field(default_factory=list)
    # The documents made from this version's tables (publish/briefing.py), also in ``files``.
    documents: list = field(default_factory=list)

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
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
        if described:
            return described
    except (OSError, subprocess.SubprocessError):
        pass
    return os.environ.get("XIHU_CODE_VERSION") or "unknown"


def _quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def versions(published_root: str | Path) -> list[str]:
    """Published versions, oldest first, by the manifest's microsecond ``published_at``: names start with
    the second their run started (:func:`version_name`), and runs queued for the writer may publish in
    another order than they started."""
    root = Path(published_root) / VERSIONS
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")]
    return [p.name for p in sorted(found, key=lambda p: (Manifest.read(p).published_at, p.name))]


def current_version(published_root: str | Path) -> str | None:
    link = Path(published_root) / CURRENT
    return Path(os.readlink(link)).name if link.is_symlink() else None


def newest_business_date(published_root: str | Path) -> str | None:
    """The business date ``current`` serves (the newest published day), or None before the first."""
    serving = current_version(published_root)
    return Manifest.read(Path(published_root) / VERSIONS / serving).business_date if serving else None


def recorded_versions(warehouse_path: str | Path) -> set[str]:
    """Versions whose publication the warehouse recorded (``audit.publications``)."""
    if not Path(warehouse_path).exists():
        return set()
    with duckdb.connect(str(warehouse_path), read_only=True) as con:
        exists = con.execute(
            "select count(*) from duckdb_tables() where schema_name = 'audit' and table_name = 'publications'"
        ).fetchone()[0]
        if not exists:
            return set()
        rows = con.execute("select version from audit.publications where version is not null").fetchall()
        return {v for (v,) in rows}


def _switch_current(published_root: Path, version: str) -> None:
    """Point ``current`` at ``versions/<version>`` atomically (relative link: the root can move)."""
    tmp_link = published_root / f".{CURRENT}-{uuid.uuid4().hex}"
    os.symlink(Path(VERSIONS) / version, tmp_link)
    os.replace(tmp_link, published_root / CURRENT)
    fsync_path(published_root)


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
    con = connect_snapshot(build_dir / "marts.duckdb")  # readable by DuckDB 1.4+ (publish/compat.py)
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
        column_comments = describe.read_comments(con, "wh")
        for mart in chosen:
            copy_mart(con, f"wh.marts.{_quote(mart)}", f"main.{_quote(mart)}")  # HUGEINT -> BIGINT
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
            describe.write_parquet(con, mart, parquet, described.get(mart), column_comments.get(mart, {}))
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
        describe.describe_version(con, described, column_comments, mart_info)
        con.execute("checkpoint")  # everything in the file itself, no WAL next to it
    finally:
        con.close()
    from publish.briefing import write_briefing  # matplotlib is loaded by publishing only, not by the shell

    documents = [str(p.relative_to(build_dir)) for p in write_briefing(build_dir)]  # from marts.duckdb only

    files = {str(p.relative_to(build_dir)): sha256_file(p) for p in sorted(build_dir.rglob("*")) if p.is_file()}
    manifest = Manifest(marts=mart_info, files=files, documents=documents, **meta)
    (build_dir / "manifest.json").write_text(manifest.to_json(), encoding="utf-8")
    for p in build_dir.rglob("*"):
        if p.is_file():
            fsync_path(p)
            # immutable (a tool opening it for writing fails) and readable by the owner and the analysts'
            # group, never by other users (docs/internals.md, "File modes")
            p.chmod(0o440)
    for d in (build_dir / "parquet", build_dir / "csv", build_dir):
        fsync_path(d)
    return manifest


def version_name(started_at: dt.datetime, business_date: dt.date | str, run_id: str) -> str:
    """The name of the version a run publishes: ``<YYYYMMDD>T<HHMMSS>Z-<business_date>-<sha1(run_id)[:8]>``.

    The DAG decides it when the run starts (``plan``: the run's start time, its as-of date, its run key)
    so that the ``pipeline_runs`` mart built in that run already names the version it will be published
    in; :func:`publish_version` names a version this way too when it is given none."""
    short_run = hashlib.sha1(run_id.encode()).hexdigest()[:8]
    return f"{started_at.astimezone(dt.UTC):%Y%m%dT%H%M%SZ}-{business_date}-{short_run}"


def publish_version(
    warehouse_path: str | Path,
    published_root: str | Path,
    business_date: dt.date | str,
    run_id: str,
    marts: list[str] | None = None,
    descriptions: dict[str, str] | None = None,
    corrected_dates: list[str] = (),
    before_switch: Callable[[Manifest], None] | None = None,
    version: str | None = None,
) -> Manifest:
    """Publish the marts (every table of schema ``marts`` by default) as a new version, switch
    ``current`` to it and prune old versions (``XIHU_KEEP_VERSIONS``). ``descriptions`` fill
    ``mart_catalog``; without them the warehouse's table comments are used. ``before_switch`` runs once
    the version folder is complete and before ``current`` moves (the pipeline records the publication
    there); if it raises, the version is deleted and ``current`` stays.

    ``version`` is the name decided before the marts were built (:func:`version_name`; the marts may
    already say it). A folder of that name that the ``.pending`` marker names is what an interrupted
    attempt of the same run left: it is rebuilt; any other folder of that name is refused. Without
    ``version`` the name is taken from now, with a suffix when the run already published in that second."""
    published_root = Path(published_root)
    serving = current_version(published_root)
    if serving and str(business_date) < Manifest.read(published_root / VERSIONS / serving).business_date:
        raise ValueError(
            f"current serves {serving}: a version of the older date {business_date} would move it "
            f"back; publish the newest date with the corrections instead"
        )
    (published_root / VERSIONS).mkdir(parents=True, exist_ok=True)
    (published_root / STAGING).mkdir(exist_ok=True)
    now = dt.datetime.now(dt.UTC)
    if version is not None and (published_root / VERSIONS / version).exists():
        marker = published_root / PENDING
        if not (marker.exists() and marker.read_text(encoding="utf-8").strip() == version):
            raise ValueError(f"{version} is already published; a new publication needs a new run")
        _delete_version(published_root, version)  # an interrupted attempt of this same run
    if version is None:
        version = base = version_name(now, business_date, run_id)
        suffix = 1
        while (published_root / VERSIONS / version).exists():  # same run published twice in one second
            suffix += 1
            version = f"{base}-{suffix}"
    meta = {
        "version": version,
        "business_date": str(business_date),
        "run_id": run_id,
        "code_version": code_version(),
        "published_at": now.isoformat(timespec="microseconds"),
        "corrected_dates": sorted(map(str, corrected_dates)),
    }
    _write_pending(published_root, version)
    build_dir = published_root / STAGING / f"{version}-{uuid.uuid4().hex[:8]}"
    try:
        manifest = _build(build_dir, Path(warehouse_path), marts, descriptions, meta)
        os.rename(build_dir, published_root / VERSIONS / version)
        fsync_path(published_root / VERSIONS)
        if before_switch is not None:
            before_switch(manifest)
    except BaseException:
        shutil.rmtree(build_dir, ignore_errors=True)
        _delete_version(published_root, version)
        (published_root / PENDING).unlink(missing_ok=True)
        raise
    _switch_current(published_root, version)
    (published_root / PENDING).unlink()
    _prune(published_root, settings.keep_versions())
    return manifest


def _write_pending(published_root: Path, version: str) -> None:
    tmp = published_root / f"{PENDING}.{uuid.uuid4().hex}"
    tmp.write_text(version, encoding="utf-8")
    fsync_path(tmp)
    os.replace(tmp, published_root / PENDING)
    fsync_path(published_root)


def _delete_version(published_root: Path, version: str) -> None:
    shutil.rmtree(published_root / VERSIONS / version, ignore_errors=True)


def recover(published_root: str | Path, is_recorded: Callable[[str], bool]) -> str | None:
    """Settle a publication that a kill interrupted, and remove unfinished build folders.

    ``is_recorded(version)`` tells whether the warehouse recorded the publication of ``version``. Returns
    what was done, for the log, or None when there was nothing to settle.
    """
    published_root = Path(published_root)
    shutil.rmtree(published_root / STAGING, ignore_errors=True)
    marker = published_root / PENDING
    if not marker.exists():
        return None
    version = marker.read_text(encoding="utf-8").strip()
    exists = (published_root / VERSIONS / version / "manifest.json").exists()
    if exists and is_recorded(version):
        _switch_current(published_root, version)
        done = f"switched current to {version}: its publication was recorded before the run was interrupted"
    else:
        _delete_version(published_root, version)
        done = f"deleted the unrecorded version {version} of an interrupted publication"
    marker.unlink()
    return done


def record_publication(warehouse_path: str | Path, manifest: Manifest) -> None:
    """One row in ``audit.publications`` (read by the ``pipeline_runs`` mart). The caller holds the
    writer pool; a retried publish task replaces its run's row, and so does the publication itself the
    row :func:`record_intended_publication` wrote before the marts were built."""
    _record(warehouse_path, manifest.run_id, manifest.business_date, manifest.version, manifest.published_at)


def record_intended_publication(
    warehouse_path: str | Path, run_id: str, business_date: dt.date | str, version: str
) -> None:
    """Record, in a run's staged warehouse and before dbt builds the marts, that the run publishes
    ``version`` of ``business_date``: the ``pipeline_runs`` mart in that version then shows its own run
    as published. If the run fails, its staged copy is discarded with the row (ingest/warehouse.py keeps
    only a failed run's gate and partition audits), so the live warehouse never holds an intention."""
    _record(warehouse_path, run_id, str(business_date), version, dt.datetime.now(dt.UTC).isoformat())


def _record(warehouse_path: str | Path, run_id: str, business_date: str, version: str, published_at: str) -> None:
    con = duckdb.connect(str(warehouse_path))
    try:
        con.execute("create schema if not exists audit")
        con.execute(
            "create table if not exists audit.publications (run_id varchar, business_date date, "
            "version varchar, published_at timestamp, status varchar)"
        )
        con.execute("delete from audit.publications where run_id = ? and business_date = ?", [run_id, business_date])
        con.execute(
            "insert into audit.publications values (?, ?, ?, ?::timestamptz::timestamp, 'published')",
            [run_id, business_date, version, published_at],
        )
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
