"""Open a page the pipeline generated the way a reader does, in headless Chromium, and see what it asks for.

Chromium runs with the briefing's flags (publish/briefing.py ``headless``: no background traffic) and every
network request, loopback included, sent to a proxy on 127.0.0.1 that records the request line and answers
502 (host names are left to the proxy: a request that could not even be resolved would not be seen).
``file://`` never goes through a proxy, so a page that needs nothing outside leaves the record empty; a
page that loads a script, a style, a font or an image from a host, or calls home from its code, leaves
that request in it.
"""

from __future__ import annotations

import re
import socket
import subprocess
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path

from publish.briefing import chromium, chromium_env, headless

# A URL a page fetches or links to, in markup or in code: src/href/srcset/poster/action attributes (quoted,
# or escaped inside a script's strings), CSS url(...) and @import, absolute or protocol-relative.
FETCHED_URL = re.compile(
    r"""(?:\b(?:src|href|srcset|poster|action)\s*=\s*\\?["']?\s*"""
    r"""|url\(\s*\\?["']?|@import\s+\\?["']?)((?:https?:)?//[^"'\\\s>)]+)""",
    re.IGNORECASE,
)
LOOPBACK = re.compile(r"^(?:https?:)?//(?:localhost|127\.0\.0\.1|\[::1\])(?:[:/]|$)")


def outside_references(page_text: str) -> list[str]:
    """Every URL in the page that points at a host other than this machine."""
    return [url for url in FETCHED_URL.findall(page_text) if not LOOPBACK.match(url)]


# Chromium's own service calls, made whatever the page (network time, component updates, sign-in), even with
# background networking off; the briefing's printer never reaches them (no host name resolves there).
CHROMIUM_SERVICES = ("http://clients2.google.com/time/", "update.googleapis.com", "accounts.google.com:443")


@dataclass
class RecordingProxy:
    requests: list[str] = field(default_factory=list)

    def __enter__(self) -> RecordingProxy:
        self._server = socket.create_server(("127.0.0.1", 0))
        self.port = self._server.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()
        return self

    def _serve(self) -> None:
        while True:
            try:
                client, _ = self._server.accept()
            except OSError:  # closed
                return
            with client:
                client.settimeout(5)
                try:
                    line = client.recv(65536).split(b"\r\n", 1)[0].decode(errors="replace")
                    self.requests.append(line)
                    client.sendall(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                except OSError:
                    pass

    def __exit__(self, *exc) -> None:
        self._server.close()


@dataclass
class Opened:
    dom: str  # the document after its scripts ran
    requests: list[str]  # what it asked from the network (Chromium's own service calls left out)
    screenshot: Path


def open_offline(page: Path, screenshot: Path) -> Opened:
    """The page's DOM after ~8 s of (virtual) time, a 1280x900 screenshot, and every request it made."""
    browser = chromium()
    assert browser, "Chromium is needed: apt-get install -y chromium fonts-noto-cjk"
    with RecordingProxy() as proxy:
        outputs = []
        for mode in ("--dump-dom", f"--screenshot={screenshot}"):
            with tempfile.TemporaryDirectory(prefix="xihu-page-") as profile:
                cmd = headless(
                    browser,
                    profile,
                    f"--proxy-server=http://127.0.0.1:{proxy.port}",
                    "--proxy-bypass-list=<-loopback>",
                    "--virtual-time-budget=8000",
                    "--window-size=1280,900",
                    "--hide-scrollbars",
                    mode,
                    page.resolve().as_uri(),
                    resolve_hosts=True,
                )  # the proxy gets every request instead
                done = subprocess.run(cmd, capture_output=True, text=True, timeout=180, env=chromium_env(profile))
            assert done.returncode == 0, f"Chromium failed on {page}: {done.stderr[-1500:]}"
            outputs.append(done.stdout)
        asked = [r for r in proxy.requests if not any(service in r for service in CHROMIUM_SERVICES)]
        return Opened(outputs[0], asked, screenshot)
