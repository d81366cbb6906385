"""Network guard for tests: records every socket connection or DNS lookup a Python process attempts.

Put this folder first on PYTHONPATH and set XIHU_NETGUARD_LOG to a file: every process of the run
(Airflow, its task runners, dbt in-process, Great Expectations, the sandbox) appends one line per attempt,
``LOCAL <addr>`` for loopback and unix sockets, ``OUTSIDE <addr>`` for anything else. Tests assert that
no OUTSIDE line was written and that LOCAL lines were (so the guard provably ran).
"""

import ipaddress
import os
import socket
import sys

_LOG = os.environ.get("XIHU_NETGUARD_LOG")
# The machine's own name counts as local: Airflow looks it up (hostname_callable) to label its processes,
# which /etc/hosts answers without any traffic.
_LOCAL_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost", "", socket.gethostname()}


def _is_local(host) -> bool:
    if host is None:
        return True
    if isinstance(host, bytes):
        host = host.decode(errors="replace")
    host = str(host)
    if host in _LOCAL_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.split("%")[0]).is_loopback
    except ValueError:
        return False


def _hook(event, args):
    if event == "socket.connect":
        address = args[1]
        host = address[0] if isinstance(address, tuple) else None  # str/bytes address = unix socket
    elif event == "socket.getaddrinfo":
        host = args[0]
    else:
        return
    verdict = "LOCAL" if _is_local(host) else "OUTSIDE"
    with open(_LOG, "a") as fh:
        fh.write(f"{verdict} {host} pid={os.getpid()} {os.path.basename(sys.argv[0]) if sys.argv else ''}\n")


if _LOG:
    sys.addaudithook(_hook)
