"""Command line of the sandbox: ``serve`` the fake platforms over the registry of dbt_project/seeds/.

    python -m sandbox serve --host 127.0.0.1 --port 8765 --seed 7 --scale 0.05 \
        [--fault NAME=RATE ...] [--now 2026-11-29T01:30:00+08:00]

``serve`` prints one line ``sandbox listening on http://HOST:PORT`` once it accepts connections, so a
caller that passed ``--port 0`` can read the port it got.
"""

from __future__ import annotations

import argparse
import sys
from datetime import datetime

from sandbox import faults
from sandbox.server import make_server
from sandbox.world import World


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sandbox", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="serve every source contract of sources.md")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8765, help="0 picks a free port")
    serve.add_argument("--seed", type=int, default=7)
    serve.add_argument("--scale", type=float, default=0.05, help="1.0 = a full 2026 district day")
    serve.add_argument(
        "--fault",
        action="append",
        default=[],
        metavar="NAME=RATE",
        help=f"inject a fault; names: {', '.join(faults.FAULT_NAMES)}",
    )
    serve.add_argument(
        "--now",
        type=datetime.fromisoformat,
        default=None,
        help="sandbox clock (ISO; naive = Asia/Shanghai); default real time",
    )
    args = parser.parse_args(argv)

    try:
        rates = faults.parse_cli(args.fault)
    except ValueError as exc:
        parser.error(str(exc))
    server = make_server(World(args.seed, args.scale), args.seed, args.host, args.port, rates, args.now)
    host, port = server.server_address[:2]
    print(f"sandbox listening on http://{host}:{port}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
