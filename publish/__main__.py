"""``python -m publish list | rollback [--to VERSION] | shell [--version V] [-c SQL] | verify``.

Every subcommand works on ``$XIHU_DATA_DIR/published`` unless ``--root`` says otherwise.
"""

from __future__ import annotations

import argparse
import sys

from ingest.settings import apply_data_umask
from publish.publisher import Manifest, current_version, default_root, rollback, versions
from publish.shell import run_shell
from publish.verify import verify_published


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m publish", description=__doc__)
    parser.add_argument("--root", default=None, help="published root (default $XIHU_DATA_DIR/published)")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="list versions, marking the current one")
    back = sub.add_parser("rollback", help="point current at the previous (or a named) version")
    back.add_argument("--to", dest="to_version", default=None, help="version name (see `list`)")
    shell = sub.add_parser("shell", help="read-only SQL shell on the current snapshot")
    shell.add_argument("--version", default=None, help="a version other than the current one")
    shell.add_argument("-c", dest="sql", default=None, help="run one statement and exit")
    sub.add_parser(
        "verify",
        help="check every version's files against its manifest; withdraw damaged ones (exit 1 when any was damaged)",
    )
    args = parser.parse_args(argv)
    apply_data_umask()  # rollback and verify rewrite `current` under the data root
    root = args.root or default_root()

    if args.command == "list":
        current = current_version(root)
        for name in versions(root):
            manifest = Manifest.read(f"{root}/versions/{name}")
            marker = "*" if name == current else " "
            print(
                f"{marker} {name}  business date {manifest.business_date}  marts {len(manifest.marts)}"
                f"  code {manifest.code_version}"
            )
        return 0
    if args.command == "rollback":
        try:
            print(f"current -> {rollback(root, args.to_version)}")
        except ValueError as error:
            print(f"rollback refused: {error}", file=sys.stderr)
            return 1
        return 0
    if args.command == "verify":
        verified = verify_published(root)
        print(verified.summary(), file=sys.stderr if verified.damaged else sys.stdout)
        return 1 if verified.damaged else 0
    try:
        return run_shell(root, version=args.version, command=args.sql)
    except FileNotFoundError as error:
        print(error, file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
