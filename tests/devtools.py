"""A page in headless Chromium driven over the DevTools protocol: set the page's local storage (a web app's
saved view), reload, then read its text and take a screenshot. For pages that need a setting no URL
carries, such as the Airflow UI's graph view (`default_dag_view`)."""

from __future__ import annotations

import base64
import itertools
import json
import re
import subprocess
import tempfile
import time
from pathlib import Path

import requests
from websockets.sync.client import connect

from publish.briefing import chromium, headless


def open_with_storage(url: str, storage: dict[str, str], screenshot: Path, settle: float = 8.0) -> str:
    """Open ``url``, set ``storage`` in its localStorage, reload, wait ``settle`` seconds; write a
    1600x1000 PNG to ``screenshot`` and return the page's visible text."""
    browser = chromium()
    assert browser, "Chromium is needed: apt-get install -y chromium fonts-noto-cjk"
    with tempfile.TemporaryDirectory(prefix="xihu-devtools-") as profile:
        cmd = headless(
            browser,
            profile,
            "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",  # the loopback server only
            "--remote-debugging-port=0",
            "--window-size=1600,1000",
            url,
            resolve_hosts=True,
        )
        proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True)
        try:
            port = None
            for line in proc.stderr:  # "DevTools listening on ws://127.0.0.1:PORT/devtools/browser/..."
                if found := re.search(r"ws://127\.0\.0\.1:(\d+)/", line):
                    port = found[1]
                    break
            assert port, "Chromium did not open its DevTools port"
            pages = [
                t for t in requests.get(f"http://127.0.0.1:{port}/json/list", timeout=10).json() if t["type"] == "page"
            ]
            ids = itertools.count(1)
            with connect(pages[0]["webSocketDebuggerUrl"], max_size=None) as ws:

                def call(method: str, **params):
                    n = next(ids)
                    ws.send(json.dumps({"id": n, "method": method, "params": params}))
                    while (reply := json.loads(ws.recv())).get("id") != n:
                        pass
                    return reply.get("result", {})

                time.sleep(settle / 2)
                sets = "".join(f"localStorage.setItem({json.dumps(k)}, {json.dumps(v)});" for k, v in storage.items())
                call("Runtime.evaluate", expression=sets)
                call("Page.reload")
                time.sleep(settle)
                text = call("Runtime.evaluate", expression="document.body.innerText", returnByValue=True)
                shot = call("Page.captureScreenshot", format="png")
            screenshot.write_bytes(base64.b64decode(shot["data"]))
            return text["result"]["value"]
        finally:
            proc.terminate()
            proc.wait(timeout=30)
