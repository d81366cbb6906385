"""Landing writer: one folder per (source, business date, fetch id), gzipped pages plus a manifest.

Landing is the system of record for what a source said (docs/internals.md, "Landing contract"), so it
must survive a worker killed at any instant. Every page is written to a temporary file, fsynced and
renamed into place before the manifest, itself replaced atomically, mentions it; a page the manifest
lists is therefore whole on disk. Re-opening an incomplete fetch verifies the listed pages by sha256,
drops anything after the first bad one, and hands back the paging state (``next``) of the last good page
so the client resumes there without asking the source for a verified page again. A complete fetch is
immutable and is returned as is.

Durability against a power cut (not just a killed process) is bought once, at the end: the per-page
manifest rewrite is atomic but not fsynced, because a manifest that lost its last entries, or lists a
page the disk lost, is exactly what the sha256 verification repairs on the next run. Before the
manifest says ``complete`` the folder is fsynced and the manifest is written durably, so a complete
fetch always has every page on disk.

Pages are compressed, fsynced and recorded by one background writer thread, in order, while the client
fetches the next page (zlib and fsync release the GIL, so the two overlap on two cores).

A *new* fetch (another run, so another fetch id) starts from the verified pages of the most recent earlier
fetch of the same source, date and request parameters that fetching now would not improve on
(:func:`reuse_refusal`). A fetch marked rejected (:func:`mark_rejected`) never counts, nor the fetches it
was resumed from: their pages are the ones it refused. The chosen pages are hard-linked into the new
folder, which records ``resumed_from``, and the client carries on after the last of them. The earlier
folder is only read, under a shared lock. Old folders are deleted by :func:`prune_landing`, which always
keeps the newest complete fetch of each source and date.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import queue
import re
import shutil
import threading
import zlib
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import BinaryIO
from zoneinfo import ZoneInfo

import msgspec

from ingest.files import fsync_path, sha256_file
from ingest.registry import ORDER_PLATFORMS
from ingest.settings import TIMEZONE

log = logging.getLogger(__name__)
LOCAL = ZoneInfo(TIMEZONE)
MANIFEST = "manifest.json"
REJECTED = "rejected.json"
# The feeds whose day D the platform may still correct during D+1 (sources.md, "Late corrections").
PLATFORMS = frozenset(ORDER_PLATFORMS)
# An incomplete fetch older than this was abandoned (a whole day takes minutes): prune_landing deletes it.
ABANDONED_AFTER = timedelta(days=1)
# Level 1: landing is written once and read once by the loader; speed matters more than the last 10 %.
GZIP_LEVEL = 1
# Pages waiting for the writer: enough to keep it busy while the next page is fetched, few enough that
# memory stays a few pages (~1 MB each at most).
QUEUE_PAGES = 3
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
_OWN_FILE = re.compile(r"^(?:page-\d{5}\.[a-z]+\.gz|\..+\.tmp)$")


def safe_fetch_id(run_id: str) -> str:
    """A run id usable as a folder name: anything but letters, digits, `.`, `_` and `-` becomes `_`."""
    safe = _UNSAFE.sub("_", run_id).strip("._")
    if not safe:
        raise ValueError(f"fetch id {run_id!r} has no usable characters")
    return safe


def local_now() -> str:
    return datetime.now(LOCAL).isoformat(timespec="seconds")


def _aware(now: datetime | None) -> datetime:
    if now is None:
        return datetime.now(LOCAL)
    if now.tzinfo is None:
        raise ValueError(f"naive datetime {now!r}: pass an aware time (Asia/Shanghai or UTC)")
    return now


def _write_atomic(path: Path, data: bytes, durable: bool) -> None:
    """Replace ``path`` atomically (a reader sees the old or the new file). ``durable`` also survives a
    power cut; the per-page manifest updates skip that (see the module docstring)."""
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        if durable:
            f.flush()
            os.fsync(f.fileno())
    os.replace(tmp, path)
    if durable:
        fsync_path(path.parent)


class LandingMismatch(ValueError):
    """An existing fetch folder was started with other request parameters: resuming would mix them."""


class LandingRejected(RuntimeError):
    """The fetch was marked rejected (:func:`mark_rejected`): its folder is kept as evidence and is not
    resumed or returned again; a new run (another fetch id) fetches the day anew."""


# ---------------------------------------------------------------------- reuse across runs
def correction_window(business_date: date) -> tuple[datetime, datetime]:
    """``[D+1 00:00, D+2 00:00)`` Asia/Shanghai: the day during which a platform may still correct D."""
    start = datetime.combine(business_date + timedelta(days=1), datetime.min.time(), LOCAL)
    return start, start + timedelta(days=1)


def past_correction_window(source: str, business_date: date, started_at: datetime) -> bool:
    """Whether a fetch of ``source`` for ``business_date`` started at ``started_at`` got the day as its
    source will keep it. Platforms: started at or after D+2 00:00, when the correction window closed (the
    daily run's D-1 re-pull). Every other source: started after D was over (the union export of D is fixed
    then; a station log of D is whole once published, D's late events come in D+1's file, which the
    warehouse's status rule checks apart: int_source_date_status). The one place this fact is decided: the
    loader records it per load (raw.load_audit.past_correction_window) and reuse_refusal asks it too."""
    day_over, closes = correction_window(business_date)
    return started_at >= (closes if source in PLATFORMS else day_over)


def reuse_refusal(manifest: dict, now: datetime) -> str | None:
    """Why a fetch starting at ``now`` must not take the landed pages of the earlier fetch ``manifest``;
    None when it may. Pages are reused only where fetching them again now would not be more final:

    - Platforms (meituan, eleme, sf, shansong) correct up to ~1 % of D's orders during D+1, the correction
      window ``[D+1 00:00, D+2 00:00)``. A fetch started at or after D+2 00:00 is *final*: any later run
      may reuse it. A fetch started inside the window is *provisional*: reusable only while the window is
      still open (a re-run right after a killed or failed run would get an equally provisional answer),
      and re-pulled on purpose once it has closed. That is the daily run's D-1: the run of D (at D+1 01:30)
      lands D provisionally and D-1 finally; the next day's run re-pulls that D as its D-1. A fetch
      started before D+1 00:00 saw a day still taking orders: never reused.
    - ``union_members``: the export of D is the membership at the end of D, fixed once D is over.
    - ``stations``: never reused by another run. D's log is one file of a few MB, and the next run fetches
      it again as its D-1 on purpose: a file that came truncated or was replaced since is repaired then.
    - ``union_orgs``: the list has no date; the one fetched for D, the nearest to D, stays D's list.

    The caller also requires the same request parameters and no rejection (of the fetch, or of a fetch
    resumed from its pages). ``started_at`` tells the finality of a resumed fetch too, because a fetch
    only inherits pages of its own kind: final pages when it starts after the window, provisional ones
    when it starts inside.
    """
    source, day = manifest["source"], date.fromisoformat(manifest["business_date"])
    if source == "stations":
        return "station logs are fetched again by every run (a truncated or late-published file is repaired)"
    if source not in PLATFORMS and source != "union_members":
        return None
    started = datetime.fromisoformat(manifest["started_at"])
    day_over, closes = correction_window(day)
    if started < day_over:
        return f"started {manifest['started_at']}, before {day} was over"
    if source == "union_members" or past_correction_window(source, day, started) or now < closes:
        return None
    return (
        f"provisional: started {manifest['started_at']}, inside {day}'s correction window, which closed at "
        f"{closes.isoformat()}; re-pulled for the platform's late corrections"
    )


def reusable(manifest: dict, now: datetime) -> bool:
    """Whether a fetch starting at ``now`` may take the earlier fetch's landed pages (rules and reasons:
    :func:`reuse_refusal`)."""
    return reuse_refusal(manifest, now) is None


def mark_rejected(folder: Path, reason: str) -> None:
    """Record that a load or a gate refused this landing: no later run reuses its pages (nor those of the
    fetches it was resumed from), and opening it again under its own fetch id raises
    :class:`LandingRejected`. ``rejected.json`` (``reason``, ``rejected_at``) is written atomically and
    durably next to the manifest; pages and manifest stay as they are, the record of what the source
    said."""
    folder = Path(folder)
    if not (folder / MANIFEST).is_file():
        raise FileNotFoundError(f"{folder} is not a landing folder (no {MANIFEST})")
    record = {"reason": reason, "rejected_at": local_now()}
    _write_atomic(folder / REJECTED, msgspec.json.encode(record), durable=True)


def _rejection(folder: Path) -> str | None:
    """The reason a folder was rejected, None if it was not."""
    try:
        record = json.loads((folder / REJECTED).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        return "rejected (unreadable rejected.json)"
    return f"rejected at {record.get('rejected_at')}: {record.get('reason')}"


def _read_manifest(folder: Path) -> dict | None:
    try:
        return json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _try_lock(folder: Path, kind: int) -> int | None:
    """A descriptor of ``folder`` holding a ``kind`` flock, or None when a fetch holds it (or it is gone)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        fcntl.flock(fd, kind | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def _pages(n: int, kind: str = "") -> str:
    return f"{n} {kind}page" + ("" if n == 1 else "s")


def _verified_prefix(folder: Path, pages: list[dict]) -> list[dict]:
    """The longest prefix of ``pages`` whose files are on disk with the sha256 the manifest recorded."""
    good: list[dict] = []
    for entry in pages:
        path = folder / entry["file"]
        if entry["page"] != len(good) + 1 or not path.is_file() or sha256_file(path) != entry["sha256"]:
            break
        good.append(entry)
    return good


def _link_or_copy(src: Path, dst: Path) -> None:
    """Hard-link a landed page (no bytes copied; page files are never written in place, so the two folders
    cannot affect each other); copy it durably where the file system has no hard links."""
    try:
        os.link(src, dst)
    except OSError:
        shutil.copyfile(src, dst)
        with open(dst, "rb") as f:
            os.fsync(f.fileno())


def _earlier_fetches(folder: Path) -> tuple[list[Path], dict[str, str]]:
    """The other fetch folders of ``folder``'s source and date, most recently started first; and those
    whose pages a rejected fetch was resumed from (directly or through another), with that fetch's id:
    reusing them would land the very pages that were refused."""
    manifests, found = {}, []
    for other in folder.parent.iterdir():
        if other == folder or not other.is_dir():
            continue
        manifest = _read_manifest(other)
        try:
            found.append((datetime.fromisoformat(manifest["started_at"]), other.name, other))
        except (TypeError, KeyError, ValueError):
            continue  # no manifest yet (a fetch killed before its first), or not one of ours
        manifests[other.name] = manifest
    refused: dict[str, str] = {}
    for name in manifests:
        if _rejection(folder.parent / name):
            source = manifests[name].get("resumed_from")
            while source in manifests and source not in refused:
                refused[source] = name
                source = manifests[source].get("resumed_from")
    return [other for *_, other in sorted(found, reverse=True)], refused


class Landing:
    """An open fetch folder. Use :meth:`open`; holds an exclusive lock on the folder until closed."""

    def __init__(self, folder: Path, manifest: dict, lock_fd: int):
        self.folder = folder
        self.manifest = manifest
        self._lock_fd = lock_fd
        self._queue: queue.Queue = queue.Queue(maxsize=QUEUE_PAGES)
        self._writer: threading.Thread | None = None
        self._writer_error: BaseException | None = None

    # ------------------------------------------------------------------ opening and verifying
    @classmethod
    def open(
        cls,
        root: Path,
        source: str,
        business_date: date,
        fetch_id: str,
        request: dict,
        now: datetime | None = None,
    ) -> Landing:
        """Open (create or resume) ``root/source/date/fetch_id``.

        An existing folder is resumed after its last verified page (or returned as is when complete). A
        new one starts from the verified pages of the most recent earlier fetch that may be reused at
        ``now`` (see the module docstring); ``now`` (default: the clock) is also the new fetch's
        ``started_at``. Raises :class:`LandingMismatch` if the folder holds a fetch with other request
        parameters, :class:`LandingRejected` if it was rejected, and ``BlockingIOError`` if another
        process is writing it.
        """
        now = _aware(now)
        folder = Path(root) / source / business_date.isoformat() / safe_fetch_id(fetch_id)
        folder.mkdir(parents=True, exist_ok=True)
        lock_fd = os.open(folder, os.O_RDONLY)
        try:
            fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(lock_fd)
            raise BlockingIOError(f"another fetch is writing {folder}") from None
        try:
            if (folder / MANIFEST).exists():
                landing = cls(folder, cls._existing(folder, source, business_date, request), lock_fd)
                if not landing.complete:
                    landing._verify_and_trim()
                landing._log_state()
            else:
                landing = cls(folder, cls._new(folder, source, business_date, request, now), lock_fd)
                landing._reuse_earlier(now)
                landing._save(durable=True)
        except BaseException:
            os.close(lock_fd)
            raise
        return landing

    @staticmethod
    def _existing(folder: Path, source: str, business_date: date, request: dict) -> dict:
        rejected = _rejection(folder)
        if rejected:
            raise LandingRejected(
                f"{folder} was {rejected}; it is kept as evidence: start a new run to fetch {source} "
                f"{business_date} anew"
            )
        manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
        expected = (source, business_date.isoformat(), request)
        found = (manifest["source"], manifest["business_date"], manifest["request"])
        if found != expected:
            raise LandingMismatch(f"{folder} holds a fetch of {found}, asked to resume it as {expected}")
        return manifest

    @staticmethod
    def _new(folder: Path, source: str, business_date: date, request: dict, now: datetime) -> dict:
        # Leftovers of an attempt killed before it wrote its first manifest: nothing in them is verified.
        for path in folder.iterdir():
            if _OWN_FILE.match(path.name):
                path.unlink()
        return {
            "source": source,
            "business_date": business_date.isoformat(),
            "fetch_id": folder.name,
            "request": request,
            "pages": [],
            "records": 0,
            "complete": False,
            "started_at": now.astimezone(LOCAL).isoformat(timespec="seconds"),
            "finished_at": None,
        }

    def _verify_and_trim(self) -> None:
        """Keep the longest prefix of listed pages whose files match their sha256; delete the rest and
        every stray temporary or unlisted page file (left by a process killed mid-page)."""
        good = _verified_prefix(self.folder, self.manifest["pages"])
        keep = {entry["file"] for entry in good} | {MANIFEST}
        for path in self.folder.iterdir():
            if path.name not in keep and _OWN_FILE.match(path.name):
                path.unlink()
        self.manifest["pages"] = good
        self.manifest["records"] = sum(entry["records"] for entry in good)
        self._save(durable=True)

    def _reuse_earlier(self, now: datetime) -> None:
        """Take the verified pages of the most recent earlier fetch that may be reused (module docstring);
        every more recent one is passed over with its reason in the log."""
        m = self.manifest
        candidates, refused = _earlier_fetches(self.folder)
        for earlier in candidates:
            fd = _try_lock(earlier, fcntl.LOCK_SH)  # a writer would be trimming or adding pages
            if fd is None:
                log.info("%s: not reusing fetch %s: locked (being written or deleted)", self._label, earlier.name)
                continue
            try:
                other = _read_manifest(earlier)
                refusal = self._refusal(earlier, other, now, refused.get(earlier.name))
                pages = [] if refusal else _verified_prefix(earlier, other["pages"])
                if not pages:
                    log.info("%s: not reusing fetch %s: %s", self._label, earlier.name, refusal or "no verified page")
                    continue
                for entry in pages:
                    _link_or_copy(earlier / entry["file"], self.folder / entry["file"])
            finally:
                os.close(fd)
            fsync_path(self.folder)
            # resumed_from right after fetch_id, where a reader of the manifest looks for it
            self.manifest = {
                "source": m["source"],
                "business_date": m["business_date"],
                "fetch_id": m["fetch_id"],
                "resumed_from": other["fetch_id"],
                **m,
            }
            self.manifest["pages"] = pages
            self.manifest["records"] = sum(entry["records"] for entry in pages)
            log.info(
                "%s: reusing %s (%s records) of fetch %s; %s",
                self._label,
                _pages(len(pages), "verified "),
                f"{self.manifest['records']:,}",
                other["fetch_id"],
                self._next_step(),
            )
            return

    def _refusal(self, earlier: Path, other: dict | None, now: datetime, refused_by: str | None) -> str | None:
        if other is None:
            return "its manifest is gone or unreadable"
        rejected = _rejection(earlier)
        if rejected:
            return rejected
        if refused_by:
            return f"rejected fetch {refused_by} was resumed from its pages"
        mine = (self.manifest["source"], self.manifest["business_date"], self.manifest["request"])
        if (other["source"], other["business_date"], other["request"]) != mine:
            return f"it was asked with other request parameters {other['request']}"
        return reuse_refusal(other, now)

    @property
    def _label(self) -> str:
        return f"{self.manifest['source']} {self.manifest['business_date']}"

    def _next_step(self) -> str:
        if self.pages[-1]["next"] is None:
            return "every page is landed: nothing left to fetch"
        return f"fetching from page {len(self.pages) + 1}"

    def _log_state(self) -> None:
        fetch_id, records = self.manifest["fetch_id"], f"{self.manifest['records']:,}"
        if self.complete:
            landed = _pages(len(self.pages))
            log.info("%s: fetch %s is complete (%s, %s records)", self._label, fetch_id, landed, records)
        elif self.pages:
            log.info(
                "%s: resuming fetch %s after %s (%s records); %s",
                self._label,
                fetch_id,
                _pages(len(self.pages), "verified "),
                records,
                self._next_step(),
            )

    # ------------------------------------------------------------------ state for the client
    @property
    def complete(self) -> bool:
        return bool(self.manifest["complete"])

    @property
    def pages(self) -> list[dict]:
        return self.manifest["pages"]

    def resume_state(self) -> tuple[bool, dict | None]:
        """``(started, next)``: whether any page is landed, and the paging state after the last one
        (None when the last landed page was the final one)."""
        if not self.pages:
            return False, None
        return True, self.pages[-1]["next"]

    # ------------------------------------------------------------------ writing
    def submit(self, ext: str, request: dict, records: int, next_state: dict | None, body: bytes | BinaryIO) -> None:
        """Queue the next page for writing and return at once.

        A background writer compresses, fsyncs and renames each page and then records it in the manifest,
        in order, while the client fetches the next one; the queue is short, so memory stays bounded.
        An error of the writer is raised here (or by :meth:`finish`).
        """
        self._raise_writer_error()
        if self._writer is None:
            self._writer = threading.Thread(target=self._write_loop, name="landing-writer", daemon=True)
            self._writer.start()
        self._queue.put((ext, request, records, next_state, body))

    def finish(self) -> None:
        """Wait for the queued pages, make everything durable, then mark the fetch complete: from now on
        the folder is immutable."""
        self._drain()
        self._raise_writer_error()
        fsync_path(self.folder)
        self.manifest["complete"] = True
        self.manifest["finished_at"] = local_now()
        self._save(durable=True)

    def close(self) -> None:
        """Land what is already queued (so a failed fetch resumes after it), then release the lock."""
        self._drain()
        if self._lock_fd >= 0:
            os.close(self._lock_fd)
            self._lock_fd = -1

    def __enter__(self) -> Landing:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _drain(self) -> None:
        if self._writer is not None:
            self._queue.put(None)
            self._writer.join()
            self._writer = None

    def _raise_writer_error(self) -> None:
        if self._writer_error is not None:
            raise RuntimeError(f"landing writer failed in {self.folder}") from self._writer_error

    def _write_loop(self) -> None:
        while (item := self._queue.get()) is not None:
            body = item[4]
            try:
                if self._writer_error is None:  # after a failure, later pages are dropped, not written
                    self._write_page(*item)
            except BaseException as exc:  # reported to the fetching thread by submit() / finish()
                self._writer_error = exc
            finally:
                if hasattr(body, "close"):
                    body.close()

    def _write_page(self, ext: str, request: dict, records: int, next_state: dict | None, body) -> None:
        number = len(self.pages) + 1
        final = self.folder / f"page-{number:05d}.{ext}.gz"
        tmp = self.folder / f".{final.name}.tmp"
        digest = hashlib.sha256()
        # wbits=31: a gzip member with mtime 0, so the same content always gives the same file and sha256.
        gz = zlib.compressobj(GZIP_LEVEL, zlib.DEFLATED, 31)
        try:
            with open(tmp, "wb") as f:
                chunks = [body] if isinstance(body, bytes) else iter(lambda: body.read(1 << 20), b"")
                for chunk in chunks:
                    data = gz.compress(chunk)
                    digest.update(data)
                    f.write(data)
                data = gz.flush()
                digest.update(data)
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, final)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        self.pages.append(
            {
                "file": final.name,
                "page": number,
                "records": records,
                "sha256": digest.hexdigest(),
                "fetched_at": local_now(),
                "request": request,
                "next": next_state,
            }
        )
        self.manifest["records"] += records
        self._save()

    def _save(self, durable: bool = False) -> None:
        _write_atomic(self.folder / MANIFEST, msgspec.json.encode(self.manifest), durable)


# ---------------------------------------------------------------------- retention
def prune_landing(root: Path, now: datetime, keep_days: int) -> list[Path]:
    """Delete the landing run folders ``root/<source>/<date>/<fetch_id>/`` nobody needs any more; return them.

    A folder goes when its fetch finished (or, never finished, started) more than ``keep_days`` ago, and an
    incomplete one already when it started more than a day ago (a day takes minutes to fetch: it was
    abandoned). Kept whatever their age: the newest complete, not rejected fetch of each (source, date),
    the system of record of what the source said, which a re-run may reuse and reload; and every folder a
    fetch holds locked (it is being written, or read for reuse). A folder without a manifest (a fetch
    killed before writing its first) counts as incomplete, aged by its modification time.
    """
    if keep_days < 1:
        raise ValueError(f"keep_days must be at least 1, not {keep_days}: a fetch just landed may be loading")
    now = _aware(now)
    deleted: list[Path] = []
    for day_dir in sorted(d for d in Path(root).glob("*/*") if d.is_dir()):
        fetches = [_Aged.of(folder) for folder in sorted(day_dir.iterdir()) if folder.is_dir()]
        complete = [f for f in fetches if f.complete and not f.rejected]
        record = max(complete, key=lambda f: f.order) if complete else None
        for fetch in fetches:
            limit = timedelta(days=keep_days) if fetch.complete else ABANDONED_AFTER
            if fetch is record or now - fetch.when <= limit:
                continue
            fd = _try_lock(fetch.folder, fcntl.LOCK_EX)
            if fd is None:
                log.info("landing retention: %s is in use by a fetch, kept", fetch.folder)
                continue
            try:
                shutil.rmtree(fetch.folder)
            finally:
                os.close(fd)
            log.info("landing retention: deleted %s (%s %s)", fetch.folder, fetch.state, fetch.when.isoformat())
            deleted.append(fetch.folder)
    return deleted


class _Aged:
    """What retention needs to know of one fetch folder."""

    def __init__(self, folder: Path, complete: bool, rejected: bool, when: datetime):
        self.folder, self.complete, self.rejected, self.when = folder, complete, rejected, when
        # Manifest times are to the second; the manifest's last write (at finish) orders fetches within one.
        self.order = (when, (folder / MANIFEST).stat().st_mtime_ns if complete else 0)

    @classmethod
    def of(cls, folder: Path) -> _Aged:
        manifest = _read_manifest(folder)
        try:
            when = datetime.fromisoformat(manifest.get("finished_at") or manifest["started_at"])
        except (AttributeError, KeyError, TypeError, ValueError):
            return cls(folder, False, False, datetime.fromtimestamp(folder.stat().st_mtime, LOCAL))
        return cls(folder, manifest.get("complete") is True, _rejection(folder) is not None, when)

    @property
    def state(self) -> str:
        kind = "complete" if self.complete else "incomplete"
        return f"{kind}, rejected" if self.rejected else kind
