"""The table of published marts in docs/analysts.md, generated from the dbt docs.

The YAML beside each dbt model is the one place a mart is described; analysts read docs/analysts.md.
So the table between ``<!-- marts:start -->`` and ``<!-- marts:end -->`` is generated from the dbt
manifest (``dbt parse`` writes it; the model descriptions and uniqueness tests are in it), and a test
regenerates it and fails when the committed text differs.

``python -m publish.catalog [--manifest PATH] [--check]``: without ``--manifest`` it runs ``dbt parse``
into a temporary folder (never into ``dbt_project/target``, which a running dbt may be writing);
``--check`` only compares and exits 1 when the document is out of date.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

from ingest.settings import TELEMETRY_OFF

REPO_ROOT = Path(__file__).resolve().parent.parent
DBT_PROJECT = REPO_ROOT / "dbt_project"
ANALYSTS_DOC = REPO_ROOT / "docs" / "analysts.md"
START, END = "<!-- marts:start -->", "<!-- marts:end -->"
GRAIN = re.compile(r"\b[Oo]ne row per\b.*?(?:\.(?=\s|$)|$)", re.S)


def parse_manifest(target_dir: str | Path, project_dir: Path = DBT_PROJECT) -> dict:
    """Run ``dbt parse`` with its artifacts in ``target_dir`` and return the manifest. Parsing needs no
    warehouse; XIHU_DATA_DIR only has to be set for the profile to render."""
    target_dir = Path(target_dir)
    dbt = Path(sys.executable).with_name("dbt")
    env = {**os.environ, **TELEMETRY_OFF}
    env.setdefault("XIHU_DATA_DIR", str(target_dir / "data"))
    subprocess.run(
        [
            str(dbt),
            "parse",
            "--profiles-dir",
            ".",
            "--target-path",
            str(target_dir),
            "--log-path",
            str(target_dir / "logs"),
            "--no-partial-parse",
            "--quiet",
        ],
        cwd=project_dir,
        env=env,
        check=True,
        capture_output=True,
        text=True,
        timeout=300,
    )
    return json.loads((target_dir / "manifest.json").read_text(encoding="utf-8"))


def published_marts(manifest: dict) -> dict[str, dict]:
    """The models of schema ``marts`` (what ``publish_version`` publishes), by name."""
    return {
        node["name"]: node
        for node in manifest["nodes"].values()
        if node["resource_type"] == "model" and node["schema"] == "marts"
    }


def _keys(manifest: dict) -> dict[str, list[str]]:
    """The unique key of each model, from its ``unique_combination_of_columns`` or ``unique`` test."""
    keys: dict[str, list[str]] = {}
    for node in manifest["nodes"].values():
        if node["resource_type"] != "test" or not node.get("attached_node"):
            continue
        model = manifest["nodes"][node["attached_node"]]["name"]
        meta = node.get("test_metadata") or {}
        kwargs = meta.get("kwargs") or {}
        if meta.get("name") == "unique_combination_of_columns":
            keys[model] = list(kwargs.get("combination_of_columns") or [])
        elif meta.get("name") == "unique" and model not in keys:
            keys[model] = [kwargs.get("column_name") or node.get("column_name")]
    return keys


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def _grain_and_about(description: str) -> tuple[str, str]:
    """Split a model description into its grain (the "one row per ..." clause, up to a colon or the end
    of its sentence) and what the mart holds (the rest of the first sentence)."""
    description = " ".join(description.split())
    found = GRAIN.search(description)
    grain = found.group(0).split(": ", 1)[0].rstrip(".") if found else ""
    first = re.split(r"(?<=\.)\s", description, maxsplit=1)[0]
    if grain and grain in first:
        before, after = first.split(grain, 1)
        about = before.rstrip(" ,") or after.lstrip(":. ").rstrip(".")
    else:
        about = first.rstrip(".")
    return grain[:1].upper() + grain[1:], about[:1].upper() + about[1:]


def marts_table(manifest: dict) -> str:
    """A Markdown table: mart, grain, unique key (from its uniqueness test), what it holds and its
    column count."""
    keys = _keys(manifest)
    lines = ["| mart | grain | key | what it holds | columns |", "| --- | --- | --- | --- | --- |"]
    for name, node in sorted(published_marts(manifest).items()):
        grain, about = _grain_and_about(node["description"])
        key = ", ".join(f"`{c}`" for c in keys.get(name, []))
        lines.append(f"| `{name}` | {_cell(grain)} | {key} | {_cell(about)} | {len(node['columns'])} |")
    return "\n".join(lines)


def render(doc: str, table: str) -> str:
    """``doc`` with the text between the markers replaced by ``table``."""
    if START not in doc or END not in doc:
        raise ValueError(f"the document lacks the markers {START} / {END}")
    head, rest = doc.split(START, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{START}\n{table}\n{END}{tail}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m publish.catalog", description=__doc__.splitlines()[0])
    parser.add_argument("--manifest", type=Path, help="an existing dbt manifest.json (default: dbt parse)")
    parser.add_argument("--doc", type=Path, default=ANALYSTS_DOC)
    parser.add_argument("--check", action="store_true", help="exit 1 when the document is out of date")
    args = parser.parse_args(argv)
    if args.manifest:
        manifest = json.loads(args.manifest.read_text(encoding="utf-8"))
    else:
        with tempfile.TemporaryDirectory(prefix="dbt-parse-") as target:
            manifest = parse_manifest(target)
    doc = args.doc.read_text(encoding="utf-8")
    fresh = render(doc, marts_table(manifest))
    if fresh == doc:
        print(f"{args.doc}: marts table up to date")
        return 0
    if args.check:
        print(f"{args.doc}: marts table out of date; run python -m publish.catalog", file=sys.stderr)
        return 1
    args.doc.write_text(fresh, encoding="utf-8")
    print(f"{args.doc}: marts table regenerated ({len(published_marts(manifest))} marts)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
