"""The report in a real browser: headless Chromium loads it with no console errors and no failed or
external requests, the charts render as SVG, nothing overflows a laptop-width window, the sort script
works, printing works, and screenshots are written (set ``REPORT_SCREENSHOT_DIR`` to keep them: the first
screen at 1366x768 and the page down to 8000 px).

Chromium is driven over the DevTools protocol on a pipe (``--remote-debugging-pipe``: JSON messages
separated by NUL bytes on file descriptors 3 and 4), which needs only the standard library: no
websocket client, no open port. Skipped, with the reason, where Chromium is not installed
(Debian/Ubuntu: ``apt-get install -y chromium``).
"""

from __future__ import annotations

import base64
import json
import os
import select
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from bench.report.build import build_report

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "tests" / "fixtures" / "report"
FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-extensions",
    "--disable-default-apps", "--mute-audio", "--hide-scrollbars",
)
LAPTOP = {"width": 1366, "height": 768, "deviceScaleFactor": 1, "mobile": False}
TIMEOUT_S = 30.0


def _chromium() -> str | None:
    for candidate in (os.environ.get("CHROMIUM"), "chromium", "chromium-browser", "google-chrome"):
        if candidate and shutil.which(candidate):
            return shutil.which(candidate)
    return None


class DevToolsPipe:
    """A minimal DevTools-protocol client over ``--remote-debugging-pipe``."""

    def __init__(self, binary: str, profile: Path, log: Path):
        to_chrome_r, self._write_fd = os.pipe()
        self._read_fd, from_chrome_w = os.pipe()
        # Chromium reads commands on fd 3 and writes replies on fd 4. A tiny Python trampoline moves the
        # pipes there before exec'ing it (sh's redirections cannot name file descriptors above 9).
        trampoline = (
            "import fcntl, os, sys\n"
            "r = fcntl.fcntl(int(sys.argv[1]), fcntl.F_DUPFD, 10)\n"
            "w = fcntl.fcntl(int(sys.argv[2]), fcntl.F_DUPFD, 10)\n"
            "os.dup2(r, 3)\n"
            "os.dup2(w, 4)\n"
            "os.execv(sys.argv[3], sys.argv[3:])\n"
        )
        self._log = open(log, "wb")
        self.process = subprocess.Popen(
            [sys.executable, "-c", trampoline, str(to_chrome_r), str(from_chrome_w), binary, *FLAGS,
             f"--user-data-dir={profile}", "--remote-debugging-pipe", "about:blank"],
            pass_fds=(to_chrome_r, from_chrome_w), stdin=subprocess.DEVNULL, stdout=self._log, stderr=self._log,
        )
        os.close(to_chrome_r)
        os.close(from_chrome_w)
        self._buffer = b""
        self._next_id = 0
        self._replies: dict[int, dict[str, Any]] = {}
        self.events: list[dict[str, Any]] = []

    def _pump(self, deadline: float) -> None:
        """Read whatever arrived (waiting until ``deadline`` for something) and file it."""
        timeout = max(0.0, deadline - time.monotonic())
        ready, _, _ = select.select([self._read_fd], [], [], timeout)
        if not ready:
            return
        chunk = os.read(self._read_fd, 1 << 20)
        if not chunk:
            raise RuntimeError(f"Chromium closed the DevTools pipe (exit code {self.process.poll()})")
        self._buffer += chunk
        while b"\0" in self._buffer:
            raw, self._buffer = self._buffer.split(b"\0", 1)
            message = json.loads(raw)
            if "id" in message:
                self._replies[message["id"]] = message
            else:
                self.events.append(message)

    def call(self, method: str, params: dict[str, Any] | None = None, session: str | None = None) -> dict[str, Any]:
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        os.write(self._write_fd, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + TIMEOUT_S
        while self._next_id not in self._replies:
            if time.monotonic() > deadline:
                raise TimeoutError(f"no reply to {method} within {TIMEOUT_S} s")
            self._pump(deadline)
        reply = self._replies.pop(self._next_id)
        if "error" in reply:
            raise RuntimeError(f"{method}: {reply['error']}")
        return reply.get("result", {})

    def wait_for(self, method: str, session: str) -> dict[str, Any]:
        deadline = time.monotonic() + TIMEOUT_S
        while True:
            for event in self.events:
                if event.get("method") == method and event.get("sessionId") == session:
                    return event
            if time.monotonic() > deadline:
                raise TimeoutError(f"no {method} within {TIMEOUT_S} s")
            self._pump(deadline)

    def settle(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            self._pump(deadline)

    def evaluate(self, expression: str, session: str) -> Any:
        result = self.call("Runtime.evaluate", {"expression": expression, "returnByValue": True}, session)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression!r} threw: {result['exceptionDetails']}")
        return result["result"].get("value")

    def close(self) -> None:
        try:
            self.call("Browser.close")
        except (RuntimeError, TimeoutError, OSError):
            pass
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        os.close(self._write_fd)
        os.close(self._read_fd)
        self._log.close()


def problems(events: list[dict[str, Any]], session: str) -> list[str]:
    """Console errors, uncaught exceptions, failed requests and any request that leaves the file."""
    found = []
    for event in events:
        if event.get("sessionId") != session:
            continue
        method, params = event.get("method"), event.get("params", {})
        if method == "Runtime.exceptionThrown":
            found.append(f"exception: {params['exceptionDetails'].get('text')}")
        elif method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert", "warning"):
            found.append(f"console.{params['type']}: {[a.get('value') for a in params.get('args', [])]}")
        elif method == "Log.entryAdded" and params["entry"].get("level") in ("error", "warning"):
            found.append(f"log {params['entry']['level']}: {params['entry'].get('text')} {params['entry'].get('url', '')}")
        elif method == "Network.loadingFailed":
            found.append(f"request failed: {params.get('errorText')} (blocked: {params.get('blockedReason')})")
        elif method == "Network.requestWillBeSent":
            url = params["request"]["url"]
            if not url.startswith(("file://", "data:")):
                found.append(f"external request: {url}")
        elif method == "Network.responseReceived":
            status = params["response"].get("status", 0)
            if status >= 400:
                found.append(f"HTTP {status}: {params['response'].get('url')}")
    return found


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    binary = _chromium()
    if binary is None:
        pytest.skip("Chromium is not installed (Debian/Ubuntu: apt-get install -y chromium)")
    root = tmp_path_factory.mktemp("chromium")
    pipe = DevToolsPipe(binary, root / "profile", root / "chromium.log")
    try:
        pipe.call("Browser.getVersion")
    except (RuntimeError, TimeoutError) as exc:
        pipe.close()
        pytest.fail(f"Chromium did not start: {exc}; see {root / 'chromium.log'}")
    yield pipe
    pipe.close()


@pytest.fixture(scope="module")
def reports(tmp_path_factory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("reports")
    # The CPU-only and multi-backend runs are checked inside "all", which also carries the baseline comparison.
    pages = {
        "gpu": [FIXTURES / "gpu_4x_h100.json"],
        "failures": [FIXTURES / "failures.json"],
        "reference": [FIXTURES / "gpu_h200_jax.json"],
        "all": [FIXTURES / "gpu_4x_h100.json", FIXTURES / "cpu_only.json", FIXTURES / "failures.json",
                FIXTURES / "multi_backend.json", FIXTURES / "gpu_h200_jax.json"],
    }
    return {name: build_report(inputs, out / f"{name}.html",
                               comparison=FIXTURES / "comparison.json" if name == "all" else None)
            for name, inputs in pages.items()}


def _screenshot_dir(tmp_path: Path) -> Path:
    keep = os.environ.get("REPORT_SCREENSHOT_DIR")
    target = Path(keep) if keep else tmp_path
    target.mkdir(parents=True, exist_ok=True)
    return target


def _save_png(data: str, path: Path) -> Path:
    raw = base64.b64decode(data)
    assert raw.startswith(b"\x89PNG"), "screenshot is not a PNG"
    path.write_bytes(raw)
    return path


def _open(browser: DevToolsPipe, page: Path) -> str:
    target = browser.call("Target.createTarget", {"url": "about:blank"})["targetId"]
    session = browser.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
    for domain in ("Page", "Runtime", "Log", "Network"):
        browser.call(f"{domain}.enable", session=session)
    browser.call("Emulation.setDeviceMetricsOverride", LAPTOP, session)
    browser.call("Page.navigate", {"url": page.as_uri()}, session)
    browser.wait_for("Page.loadEventFired", session)
    browser.settle(0.3)  # late console messages
    return session


@pytest.mark.parametrize("name", ["gpu", "failures", "reference", "all"])
def test_page_loads_cleanly_and_renders(browser, reports, tmp_path, name):
    page = reports[name]
    session = _open(browser, page)
    assert problems(browser.events, session) == []
    html = page.read_text(encoding="utf-8")
    # Every inline SVG became an SVG element with a size (not text or a broken parse).
    rendered = browser.evaluate(
        "Array.from(document.querySelectorAll('svg.chart')).filter(s => s.getBoundingClientRect().width > 100).length",
        session)
    assert rendered == html.count('<svg role="img"') > 0
    assert browser.evaluate("document.querySelectorAll('#warnings').length", session) == 1
    # Nothing sticks out sideways on a laptop screen (wide tables scroll inside their own box).
    overflow = browser.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth", session)
    assert overflow <= 0
    out = _screenshot_dir(tmp_path)
    shot = browser.call("Page.captureScreenshot", {"format": "png"}, session)
    _save_png(shot["data"], out / f"report-{name}-laptop.png")
    height = browser.evaluate("document.documentElement.scrollHeight", session)
    full = browser.call("Page.captureScreenshot", {
        "format": "png", "captureBeyondViewport": True,
        "clip": {"x": 0, "y": 0, "width": LAPTOP["width"], "height": min(height, 8000), "scale": 1},
    }, session)
    _save_png(full["data"], out / f"report-{name}-full.png")
    if name == "all":  # print styles: every section of every kind is on this page
        browser.call("Emulation.setEmulatedMedia", {"media": "print"}, session)
        pdf = browser.call("Page.printToPDF", {"printBackground": False}, session)
        assert base64.b64decode(pdf["data"]).startswith(b"%PDF")
        browser.settle(0.2)
        assert problems(browser.events, session) == []
    print(f"screenshots: {out}/report-{name}-*.png")


def test_tables_sort_when_a_header_is_clicked(browser, reports):
    session = _open(browser, reports["gpu"])
    column = ("Array.from(document.querySelectorAll('#r1-train-cases thead th'))"
              ".findIndex(th => th.textContent.trim() === 'samples/s median')")
    index = browser.evaluate(column, session)
    assert index >= 0
    values = (f"Array.from(document.querySelectorAll('#r1-train-cases tbody tr'))"
              f".map(tr => parseFloat(tr.cells[{index}].textContent.replace(/,/g, '')))")
    before = browser.evaluate(values, session)
    header = f"document.querySelectorAll('#r1-train-cases thead th')[{index}]"
    browser.evaluate(f"{header}.click()", session)
    assert browser.evaluate(values, session) == sorted(before)
    browser.evaluate(f"{header}.click()", session)
    assert browser.evaluate(values, session) == sorted(before, reverse=True)
    assert browser.evaluate(f"{header}.getAttribute('aria-sort')", session) == "descending"
    assert problems(browser.events, session) == []
