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
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import queue
import re
import threading
import zlib
from datetime import date, datetime
from pathlib import Path
from typing import BinaryIO
from zoneinfo import ZoneInfo

import msgspec

from ingest.settings import TIMEZONE

MANIFEST = "manifest.json"
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
    return datetime.now(ZoneInfo(TIMEZONE)).isoformat(timespec="seconds")


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


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
        _fsync_dir(path.parent)


class LandingMismatch(ValueError):
    """An existing fetch folder was started with other request parameters: resuming would mix them."""


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
    def open(cls, root: Path, source: str, business_date: date, fetch_id: str, request: dict) -> Landing:
        """Open (create or resume) ``root/source/date/fetch_id``.

        Raises :class:`LandingMismatch` if the folder holds a fetch with other request parameters, and
        ``BlockingIOError`` if another process is writing it.
        """
        folder = Path(root) / source / business_date.isoformat() / safe_fetch_id(fetch_id)
        folder.mkdir(parents=True, exist_ok=True)
        lock_fd = os.open(folder, os.O_RDONLY)
        try:
            fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(lock_fd)
            raise BlockingIOError(f"another fetch is writing {folder}") from None
        try:
            landing = cls(
                folder, cls._load_or_start(folder, source, business_date, fetch_id, request), lock_fd
            )
            if not landing.complete:
                landing._verify_and_trim()
        except BaseException:
            os.close(lock_fd)
            raise
        return landing

    @staticmethod
    def _load_or_start(folder: Path, source: str, business_date: date, fetch_id: str, request: dict) -> dict:
        path = folder / MANIFEST
        if path.exists():
            manifest = json.loads(path.read_text(encoding="utf-8"))
            expected = (source, business_date.isoformat(), request)
            found = (manifest["source"], manifest["business_date"], manifest["request"])
            if found != expected:
                raise LandingMismatch(f"{folder} holds a fetch of {found}, asked to resume it as {expected}")
            return manifest
        return {
            "source": source,
            "business_date": business_date.isoformat(),
            "fetch_id": folder.name,
            "request": request,
            "pages": [],
            "records": 0,
            "complete": False,
            "started_at": local_now(),
            "finished_at": None,
        }

    def _verify_and_trim(self) -> None:
        """Keep the longest prefix of listed pages whose files match their sha256; delete the rest and
        every stray temporary or unlisted page file (left by a process killed mid-page)."""
        good: list[dict] = []
        for entry in self.manifest["pages"]:
            path = self.folder / entry["file"]
            if entry["page"] != len(good) + 1 or not path.is_file() or sha256_file(path) != entry["sha256"]:
                break
            good.append(entry)
        keep = {entry["file"] for entry in good} | {MANIFEST}
        for path in self.folder.iterdir():
            if path.name not in keep and _OWN_FILE.match(path.name):
                path.unlink()
        self.manifest["pages"] = good
        self.manifest["records"] = sum(entry["records"] for entry in good)
        self._save(durable=True)

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
    def submit(
        self, ext: str, request: dict, records: int, next_state: dict | None, body: bytes | BinaryIO
    ) -> None:
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
        _fsync_dir(self.folder)
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
