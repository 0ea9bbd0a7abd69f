"""What the browser tests drive: Debian's Chromium through ``driver.mjs``
(playwright-core, one JSON command per line), a page server for the test
site, and a replaywire server process.

Resource handling: :class:`Browser` owns the Node driver process and with
it Chromium; ``close()`` ends its stdin (the driver then closes the browser)
and kills it if it does not exit. :class:`PageServer` serves on a thread
until ``close()``. Every wait is bounded.

A machine without Chromium, Node.js or the built JS fails these tests with
what to install: a browser test that silently skips proves nothing.
"""

from __future__ import annotations

import json
import os
import queue
import shutil
import socket
import subprocess
import threading
import urllib.request
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).parent
ROOT = HERE.parents[1]
PAGES = HERE / "pages"
ARTIFACTS = ROOT / "tests" / "artifacts"
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")


def require_tools() -> None:
    """Fail (not skip) with the fix when something the browser needs is missing."""
    missing = []
    if not os.access(CHROMIUM, os.X_OK):
        missing.append(f"{CHROMIUM} (make prereqs, or apt-get install -y chromium)")
    if shutil.which("node") is None:
        missing.append("node (Node.js >= 18)")
    if not (ROOT / "js" / "node_modules" / "playwright-core").is_dir():
        missing.append("js/node_modules/playwright-core (make js)")
    if missing:
        pytest.fail("browser tests need: " + "; ".join(missing), pytrace=False)


class BrowserError(AssertionError):
    pass


class Browser:
    """One headless Chromium behind the Node driver."""

    def __init__(self, log_path: Path) -> None:
        require_tools()
        self._log = log_path.open("wb")
        self.proc = subprocess.Popen(
            ["node", str(HERE / "driver.mjs")],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
            env={**os.environ, "CHROMIUM": CHROMIUM},
        )
        self._lines: queue.Queue[bytes] = queue.Queue(maxsize=1000)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self._next_id = 0
        self.version = self._answer(0, timeout=60)

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._lines.put(line)
        self._lines.put(b"")  # EOF

    def _answer(self, request_id: int, timeout: float) -> Any:
        try:
            line = self._lines.get(timeout=timeout)
        except queue.Empty:
            raise BrowserError(f"the browser driver did not answer within {timeout} s") from None
        if not line:
            raise BrowserError(f"the browser driver exited: {self.stderr_tail()}")
        answer = json.loads(line)
        assert answer["id"] == request_id, answer
        if not answer["ok"]:
            raise BrowserError(answer["error"])
        return answer["value"]

    def call(self, cmd: str, *, timeout: float = 30.0, **args: Any) -> Any:
        self._next_id += 1
        assert self.proc.stdin is not None
        self.proc.stdin.write(
            json.dumps({"id": self._next_id, "cmd": cmd, **args}).encode() + b"\n"
        )
        self.proc.stdin.flush()
        return self._answer(self._next_id, timeout)

    # Shorthands for the commands of driver.mjs.
    def goto(self, page: str, url: str) -> None:
        self.call("goto", page=page, url=url)

    def click(self, page: str, selector: str) -> None:
        self.call("click", page=page, selector=selector)

    def type(self, page: str, selector: str, text: str) -> None:
        self.call("type", page=page, selector=selector, text=text)

    def eval(self, page: str, expr: str) -> Any:
        return self.call("eval", page=page, expr=expr)

    def wait_for(self, page: str, expr: str, timeout: float = 10.0) -> int:
        """Wait until the JS expression holds on the page; the milliseconds it took."""
        waited: int = self.call(
            "waitFor", page=page, expr=expr, timeoutMs=int(timeout * 1000), timeout=timeout + 10
        )
        return waited

    def click_then_wait(
        self, page: str, selector: str, wait_page: str, expr: str, timeout: float = 10.0
    ) -> int:
        """Click on one page, then the milliseconds until ``expr`` holds on another."""
        waited: int = self.call(
            "clickThenWait",
            page=page,
            selector=selector,
            waitPage=wait_page,
            expr=expr,
            timeoutMs=int(timeout * 1000),
            timeout=timeout + 10,
        )
        return waited

    def click_at(self, page: str, x: int, y: int, count: int = 1, interval_ms: int = 0) -> None:
        """Raw mouse clicks (no actionability checks: they would wait out a busy page)."""
        self.call(
            "clickAt",
            page=page,
            x=x,
            y=y,
            count=count,
            intervalMs=interval_ms,
            timeout=30 + count * (interval_ms / 1000 + 5),
        )

    def throttle(self, page: str, kbps: int, latency_ms: int = 0) -> None:
        """DevTools network throttling of the page, WebSockets included (0: off)."""
        self.call("throttle", page=page, kbps=kbps, latencyMs=latency_ms)

    def clock_install(self, page: str) -> None:
        """Fake the page's timers (before ``goto``); time still flows."""
        self.call("clockInstall", page=page)

    def clock_run_for(self, page: str, ms: int, timeout: float = 120.0) -> None:
        """Jump the page's clock ``ms`` ahead, running every timer due on the way."""
        self.call("clockRunFor", page=page, ms=ms, timeout=timeout)

    def metrics(self, page: str) -> dict[str, float]:
        """Chrome's performance metrics of the page (``TaskDuration`` in seconds, ...)."""
        values: dict[str, float] = self.call("metrics", page=page)
        return values

    def screenshot(self, page: str, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.call("screenshot", page=page, path=str(path))

    def logs(self, page: str) -> list[str]:
        lines: list[str] = self.call("logs", page=page)
        return lines

    def stderr_tail(self) -> str:
        self._log.flush()
        return Path(self._log.name).read_text(errors="replace")[-2000:]

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self._reader.join(timeout=5)
        self._log.close()


class PageServer:
    """The test site on 127.0.0.1: files of ``pages/`` with ``{{SERVER}}``
    (replaywire's base URL), ``{{COMPRESS}}``, ``{{KEY}}`` (the write key),
    ``{{CLOCK_AHEAD_MS}}`` (how far the page's ``Date.now`` runs ahead) and
    ``{{AUTO}}`` (whether the tracker starts on load) and ``{{TRACKER_OPTIONS}}``
    (more data attributes for the tracker) filled in."""

    def __init__(self) -> None:
        self.values = {
            "SERVER": "",
            "COMPRESS": "false",
            "KEY": WRITE_KEY,
            "CLOCK_AHEAD_MS": "0",
            "AUTO": "true",
            "TRACKER_OPTIONS": "",
        }
        handler = partial(_PageHandler, self)
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/{name}"

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


class _PageHandler(SimpleHTTPRequestHandler):
    def __init__(self, site: PageServer, *args: Any) -> None:
        self.site = site
        super().__init__(*args, directory=str(PAGES))

    def do_GET(self) -> None:
        path = PAGES / self.path.lstrip("/").split("?")[0]
        if path.parent != PAGES or path.suffix != ".html" or not path.is_file():
            self.send_error(404)
            return
        body = path.read_text()
        for key, value in self.site.values.items():
            body = body.replace("{{" + key + "}}", value)
        data = body.encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # keep pytest's output for failures


def free_port() -> int:
    """A loopback port for a server that must come back on the same port."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


# The browser tests run replaywire with one tenant, as a deployment would:
# the test site's pages record with its write key from their own origin
# (checked), and the viewer and REST reads use its read token.
WRITE_KEY = "pk_shop_browser_tests"
READ_TOKEN = "rwt_shop_browser_tests_read"


def get_json(url: str, timeout: float = 10.0) -> Any:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {READ_TOKEN}"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.loads(response.read())
