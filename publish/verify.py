"""A published version is never changed: its files are checked against its manifest, and a version whose
files no longer match is withdrawn.

The files of a version are ``0o440``, which stops a client running as another user, not root (nor the
owner after a ``chmod``); and a DuckDB client that opens ``marts.duckdb`` without its read-only option
writes into it. So every run (the DAG's ``stage``, after :func:`publish.publisher.recover`) and
``python -m publish verify`` call :func:`verify_published`, which checks every version under
``versions/``: each file the manifest lists must have the manifest's sha256, none may be missing, and no
other file may be there (a ``marts.duckdb.wal`` beside the database would be replayed into what readers
see); ``manifest.json`` must be readable.

A damaged version is withdrawn, never served again: if ``current`` points at it, ``current`` is first
switched (atomically, as a publish switches it) to the newest intact version, or removed when no version
is intact (readers then get "no such file" rather than altered data, until the next run publishes);
then the version's folder is moved out of ``versions/`` into ``withdrawn/`` (one rename), with a
``withdrawn.json`` saying when and why, kept for whoever investigates. ``versions()``, ``rollback`` and
pruning never see it again; delete it by hand once looked at.

Decision: no repair. A version is the bytes its manifest lists; a Parquet or CSV file rebuilt from an
intact ``marts.duckdb`` would be new bytes under an old version's name, and ``marts.duckdb`` cannot be
rebuilt from anything. The next run publishes a new, complete version of the newest day instead.

Limit: the manifest is the reference, so a rewrite of a file together with its manifest entry is not
detected (that would need a signature with a key the writer lacks). Run the CLI when no run is
publishing: the DAG's call runs while its run holds the warehouse writer, so no publish races it.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from ingest.files import fsync_path, sha256_file
from publish.publisher import CURRENT, VERSIONS, Manifest, _switch_current, current_version

WITHDRAWN = "withdrawn"


@dataclass
class Verification:
    """What :func:`verify_published` found and did."""

    intact: list[str] = field(default_factory=list)  # oldest first
    damaged: dict[str, list[str]] = field(default_factory=dict)  # version -> problems, now withdrawn
    current_before: str | None = None
    current_after: str | None = None

    def summary(self) -> str:
        lines = [f"published versions: {len(self.intact)} intact, {len(self.damaged)} damaged"]
        for version, problems in self.damaged.items():
            lines.append(f"withdrawn {version} (moved to {WITHDRAWN}/): {'; '.join(problems)}")
        if self.current_after != self.current_before:
            lines.append(f"current: {self.current_before} -> {self.current_after or 'none (no intact version)'}")
        return "\n".join(lines)


def problems(version_dir: Path) -> list[str]:
    """Why the files of ``version_dir`` are not those its manifest lists; empty when intact."""
    try:
        manifest = Manifest.read(version_dir)
    except (OSError, ValueError, TypeError) as error:
        return [f"manifest.json unreadable ({type(error).__name__})"]
    found = []
    for name, expected in sorted(manifest.files.items()):
        path = version_dir / name
        if not path.is_file():
            found.append(f"{name} missing")
        elif sha256_file(path) != expected:
            found.append(f"{name} changed (sha256 differs from the manifest)")
    listed = {*manifest.files, "manifest.json"}
    for path in sorted(p for p in version_dir.rglob("*") if not p.is_dir()):
        if str(path.relative_to(version_dir)) not in listed:
            found.append(f"{path.relative_to(version_dir)} not in the manifest")
    return found


def verify_published(published_root: str | Path) -> Verification:
    """Check every published version and withdraw the damaged ones (module docstring)."""
    root = Path(published_root)
    result = Verification(current_before=current_version(root))
    folder = root / VERSIONS
    names = (
        sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")) if folder.is_dir() else []
    )
    intact = []
    for name in names:
        found = problems(folder / name)
        if found:
            result.damaged[name] = found
        else:
            intact.append((Manifest.read(folder / name).published_at, name))
    result.intact = [name for _, name in sorted(intact)]
    if result.current_before in result.damaged:
        if result.intact:
            _switch_current(root, result.intact[-1])
        else:
            (root / CURRENT).unlink()
            fsync_path(root)
    for name, found in result.damaged.items():
        _withdraw(root, name, found)
    result.current_after = current_version(root)
    return result


def _withdraw(root: Path, version: str, found: list[str]) -> None:
    (root / WITHDRAWN).mkdir(exist_ok=True)
    target = root / WITHDRAWN / version
    if target.exists():  # the same name withdrawn before (a re-published interrupted attempt)
        target = target.with_name(f"{version}-{uuid.uuid4().hex[:8]}")
    os.rename(root / VERSIONS / version, target)
    fsync_path(root / VERSIONS)
    note = {"withdrawn_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), "problems": found}
    (target / "withdrawn.json").write_text(json.dumps(note, ensure_ascii=False, indent=2), encoding="utf-8")
    fsync_path(root / WITHDRAWN)
