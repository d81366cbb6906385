"""Nothing under the data root is world-readable (issue 10, item 8): the pipeline's entry points set
umask 0o027, and a published snapshot is read-only for its owner and the analysts' group."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from ingest.load import load_many
from ingest.settings import DATA_UMASK, apply_data_umask
from publish.publisher import publish_version
from tests.requires import needs_chromium

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "ingest"))
from test_load import meituan, member, write_landing  # noqa: E402  (the loader tests' landing writer)

pytestmark = needs_chromium  # every test here publishes a version, and with it the briefing's PDF


@pytest.fixture
def inherited_umask():
    """The umask a shell usually hands a process (0o022: files world-readable), restored afterwards."""
    old = os.umask(0o022)
    yield
    os.umask(old)


def _modes(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root)): stat.S_IMODE(p.lstat().st_mode) for p in root.rglob("*") if not p.is_symlink()}


def test_a_load_and_publish_leave_nothing_world_readable(data_dir, inherited_umask, request):
    assert apply_data_umask() == 0o022  # what an entry point does first
    warehouse = request.getfixturevalue("warehouse")  # the marts, written only now, under the new umask
    folders = [
        write_landing(data_dir, "meituan", [[meituan(i) for i in range(5)]]),
        write_landing(data_dir, "union_members", [[member("A1"), member("A2")]]),
    ]
    load_many(warehouse, folders)
    manifest = publish_version(warehouse, data_dir / "published", "2026-11-28", "run-1")

    modes = _modes(data_dir)
    published = {k: m for k, m in modes.items() if k.startswith(f"published/versions/{manifest.version}/")}
    assert len(modes) > 10 and published and any(k.startswith("landing/") for k in modes)
    assert not {k: oct(m) for k, m in modes.items() if m & (stat.S_IROTH | stat.S_IWOTH | stat.S_IXOTH)}
    # the analysts' group reads the snapshot (and traverses to it); nobody writes a published file
    files = {k: m for k, m in published.items() if (data_dir / k).is_file()}
    assert files and all(m == 0o440 for m in files.values()), files
    for folder in ("published", "published/versions", f"published/versions/{manifest.version}"):
        assert modes[folder] & stat.S_IRGRP and modes[folder] & stat.S_IXGRP, folder


def test_without_the_entry_points_umask_files_would_be_world_readable(data_dir, inherited_umask):
    # the check above can fail: the same load under the inherited umask leaves world-readable files
    folder = write_landing(data_dir, "meituan", [[meituan(i) for i in range(5)]])
    warehouse = data_dir / "warehouse" / "xihu.duckdb"
    warehouse.parent.mkdir(parents=True)
    load_many(warehouse, [folder])
    assert any(m & stat.S_IROTH for m in _modes(data_dir).values())


@pytest.mark.parametrize("entry", ["dags/xihu_friendly_daily.py", "dags/xihu_bi_refresh.py"])
def test_dag_files_set_the_umask_of_their_task_processes(entry):
    code = f"import os, runpy; os.umask(0o022); runpy.run_path({str(ROOT / entry)!r}); print(oct(os.umask(0o022)))"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == oct(DATA_UMASK)


def test_the_publish_cli_sets_the_umask(tmp_path, inherited_umask):
    from publish.__main__ import main

    main(["--root", str(tmp_path), "list"])
    assert os.umask(0o022) == DATA_UMASK
