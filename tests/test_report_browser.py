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
import re
import select
import shutil
import subprocess
import sys
import time
import unicodedata
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bench.report.build import build_report

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "tests" / "fixtures" / "report"
REFERENCE_RUNS = sorted((REPO / "results" / "reference").glob("*.json"))
QUICK = FIXTURES / "quick_cpu.json"  # python -m bench run --config configs/quick.toml on a 2-core CPU box
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
        # The committed reference runs together (JAX, and torch eager, on one H200); the JAX one is the
        # fixture gpu_h200_jax.json byte for byte. The report fixes are checked on this page.
        "reference": REFERENCE_RUNS,
        "all": [FIXTURES / "gpu_4x_h100.json", FIXTURES / "cpu_only.json", FIXTURES / "failures.json",
                FIXTURES / "multi_backend.json", FIXTURES / "gpu_h200_jax.json"],
        # One page each, as a user opens them: the quick CPU run (configs/quick.toml on a 2-core box, devices
        # simulated, four keras-team/keras#19005 and four #20308 failures) and each reference run.
        "quick": [QUICK],
        "jax": [REFERENCE_RUNS[0]],
        "torch": [REFERENCE_RUNS[1]],
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


def assert_comparison_fits(browser: DevToolsPipe, session: str) -> None:
    box = browser.evaluate("""(() => {
        const table = document.getElementById('comparison-table'), wrap = table.parentElement;
        const right = wrap.getBoundingClientRect().right, head = table.tHead.rows[0].cells;
        const why = Array.from(table.tBodies[0].rows).map(r => r.cells[r.cells.length - 1].getBoundingClientRect().right);
        return [head[head.length - 1].textContent, table.scrollWidth - wrap.clientWidth, Math.max(...why) - right];
    })()""", session)
    header, scroll, past = box
    assert header == "why" and scroll <= 0 and past <= 0.5, box


@pytest.mark.parametrize("name", ["gpu", "failures", "reference", "all", "quick", "jax", "torch"])
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
    if name == "all":  # the comparison table fits: its "why" column wraps instead of scrolling off-screen
        assert_comparison_fits(browser, session)
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
              ".findIndex(th => th.textContent.trim() === 'samples/s')")
    index = browser.evaluate(column, session)
    assert index >= 0
    # Cells show "3.38 M"; each carries its number in data-sort, which the sort uses.
    values = (f"Array.from(document.querySelectorAll('#r1-train-cases tbody tr'))"
              f".map(tr => parseFloat(tr.cells[{index}].dataset.sort ?? 'NaN'))")
    before = browser.evaluate(values, session)
    header = f"document.querySelectorAll('#r1-train-cases thead th')[{index}]"
    browser.evaluate(f"{header}.click()", session)
    assert browser.evaluate(values, session) == sorted(before)
    browser.evaluate(f"{header}.click()", session)
    assert browser.evaluate(values, session) == sorted(before, reverse=True)
    assert browser.evaluate(f"{header}.getAttribute('aria-sort')", session) == "descending"
    assert problems(browser.events, session) == []


# --------------------------------------------------------------------------- the report fixes, on the reference runs
# Expectations are computed here from the JSON (numpy on the raw rounds), not through bench.report.


def _reference_docs() -> list[dict[str, Any]]:
    assert len(REFERENCE_RUNS) == 2, REFERENCE_RUNS
    return [json.loads(path.read_text(encoding="utf-8")) for path in REFERENCE_RUNS]


def _ok(doc: dict[str, Any], suite: str) -> list[dict[str, Any]]:
    return [c for c in doc["cases"] if c["suite"] == suite and c["status"] == "ok"]


@pytest.fixture(scope="module")
def reference_page(browser, reports) -> str:
    session = _open(browser, reports["reference"])
    assert problems(browser.events, session) == []
    return session


def _js(browser: DevToolsPipe, session: str, body: str) -> Any:
    return browser.evaluate(f"(() => {{ {body} }})()", session)


def test_heatmap_rows_are_in_numeric_order_and_empty_cells_say_na(browser, reference_page):
    jax = _reference_docs()[0]
    ok = _ok(jax, "train")
    # Cells with a jit_compile pair (same gpus/batch/precision, jit on and off) or a mixed-precision pair.
    xla = {(c["params"]["gpus"], c["params"]["global_batch"], c["params"]["precision"]) for c in ok}
    xla = {k for k in xla if {c["metrics"]["jit_compile_resolved"] for c in ok
                               if (c["params"]["gpus"], c["params"]["global_batch"], c["params"]["precision"]) == k}
           == {True, False}}
    mixed = {(c["params"]["gpus"], c["params"]["global_batch"], c["params"]["jit_compile"]) for c in ok}
    mixed = {k for k in mixed if {c["params"]["precision"] for c in ok if (c["params"]["gpus"], c["params"]["global_batch"],
                                                                         c["params"]["jit_compile"]) == k} >= {"float32", "mixed_bfloat16"}}
    rows = sorted({(g, b) for g, b, _ in xla | mixed})
    columns = len({p for *_, p in xla}) + len({j for *_, j in mixed})
    expected_na = len(rows) * columns - len(xla) - len(mixed)
    assert [b for _, b in rows] == [256, 4096, 16384] and expected_na == 2  # the reference data has both cases
    labels = _js(browser, reference_page, """
        return Array.from(document.querySelectorAll('#r1-chart-speedups text'))
          .map(t => [t.textContent.trim(), t.getBoundingClientRect().y]);""")
    row_labels = [text for text, _ in sorted(labels, key=lambda item: item[1]) if re.fullmatch(r"\d GPU · batch \d+", text)]
    shown = [int(text.rsplit(" ", 1)[1]) for text in dict.fromkeys(row_labels)]
    assert shown == [b for _, b in rows]  # 256, 4096, 16384 from top to bottom
    assert sum(text == "n/a" for text, _ in labels) == expected_na


def test_torch_cases_are_labelled_torch_compile_not_xla(browser, reference_page):
    torch_doc = _reference_docs()[1]
    assert {c["params"]["backend"] for c in torch_doc["cases"]} == {"torch"}
    sections = ("r2-findings", "r2-train", "r2-native", "r2-nvml", "r2-cpu-predict", "r2-cases")
    texts = _js(browser, reference_page, f"return {list(sections)!r}.map(id => document.getElementById(id).textContent);")
    for section, content in zip(sections, texts, strict=True):
        assert "XLA" not in content, section  # svg labels, captions, findings, table cells
    findings, train = texts[0], texts[1]
    assert "torch.compile off" in findings and "float32 · torch.compile off" in train
    jit_cells = _js(browser, reference_page, """
        const table = document.getElementById('r2-train-cases');
        const col = Array.from(table.tHead.rows[0].cells).findIndex(th => th.textContent === 'jit_compile');
        return Array.from(table.tBodies[0].rows).map(r => r.cells[col].textContent);""")
    assert jit_cells and set(jit_cells) == {"torch.compile off"}
    # The NVML advice: torch was starved here, and what to try is torch.compile, not XLA.
    starved = _js(browser, reference_page,
                  "return document.querySelector('#r2-findings li[data-finding=starved]').textContent;")
    assert "starved" in starved and "torch.compile" in starved and "XLA" not in starved
    # JAX keeps its XLA labels.
    assert "XLA on" in _js(browser, reference_page, "return document.getElementById('r1-findings').textContent;")


def test_cpu_prediction_summary_shows_ranges_not_a_median_of_two_settings(browser, reference_page):
    jax = _reference_docs()[0]
    clone = [c["metrics"]["prepare_s"] for c in _ok(jax, "cpu_predict") if c["params"]["method"] == "clone"]
    assert len(clone) == 2 and max(clone) / min(clone) > 100  # 2.49 s and 0.013 s
    rows = _js(browser, reference_page, """
        const table = document.getElementById('r1-cpu-methods');
        const head = Array.from(table.tHead.rows[0].cells).map(th => th.textContent);
        return Array.from(table.tBodies[0].rows).map(r => Object.fromEntries(
            Array.from(r.cells).map((td, i) => [head[i], td.textContent])));""")
    row = next(r for r in rows if r["method"] == "clone")
    assert row["prepare s"] == f"{min(clone):.3f}–{max(clone):.3f}"
    assert f"{np.median(clone):.3f}" not in row["prepare s"]
    cheapest = _js(browser, reference_page,
                   "return document.querySelector('#r1-findings li[data-finding=cpu_cheapest]').textContent;")
    assert "median over" not in cheapest and "across its 2 settings" in cheapest


def _run_level(docs: list[dict[str, Any]], suite: str) -> set[str]:
    names = {k for doc in docs for c in doc["cases"] if c["suite"] == suite for k in c["params"]}
    return {k for k in names if all(len({json.dumps(c["params"].get(k)) for c in doc["cases"] if c["suite"] == suite}) <= 1
                                    for doc in docs)}


def test_side_by_side_section_matches_the_two_runs_cases(browser, reference_page):
    docs = _reference_docs()
    expected = []  # (suite, run 1 value or status, run 2 value or status)
    metric = {"train": ("samples_per_second", "median"), "native": ("samples_per_second", "median"),
              "cpu_predict": ("total_s", None)}
    for suite, (name, field) in metric.items():
        drop = _run_level(docs, suite)
        keyed = [{tuple((k, json.dumps(v)) for k, v in c["params"].items() if k not in drop): c
                  for c in doc["cases"] if c["suite"] == suite} for doc in docs]
        for key, first in keyed[0].items():
            if key in keyed[1]:
                sides = []
                for case in (first, keyed[1][key]):
                    value = case["metrics"].get(name) if case["status"] == "ok" else case["status"]
                    sides.append(value[field] if isinstance(value, dict) else value)
                expected.append((suite, *sides))
    assert [s for s, *_ in expected].count("train") == 1 and len(expected) == 8  # 1 train, 2 native, 5 cpu_predict
    table = _js(browser, reference_page, """
        const table = document.getElementById('side-by-side-table');
        const head = Array.from(table.tHead.rows[0].cells).map(th => th.textContent);
        return [head, Array.from(table.tBodies[0].rows).map(r => Array.from(r.cells).map(td => td.textContent))];""")
    head, body = table
    assert head[3:5] == ["run 1 (jax)", "run 2 (torch)"]

    def parsed(cell: str) -> Any:
        try:
            return float(cell.replace(",", ""))
        except ValueError:
            return cell

    shown = [(row[0], parsed(row[3]), parsed(row[4]), row[5]) for row in body]
    assert len(shown) == len(expected)
    for suite, first, second in expected:
        match = [row for row in shown if row[0] == suite and (row[1] == first or (
            isinstance(first, float) and isinstance(row[1], float) and row[1] == pytest.approx(first, rel=1e-3)))
            and (row[2] == second or (isinstance(second, float) and isinstance(row[2], float)
                                      and row[2] == pytest.approx(second, rel=1e-3)))]
        assert len(match) == 1, (suite, first, second, shown)
        if isinstance(first, float) and isinstance(second, float):
            speed = second / first if suite != "cpu_predict" else first / second
            assert match[0][3] == f"{speed:.3g}×"
    width = _js(browser, reference_page,
                "return document.querySelector('#side-by-side-chart svg').getBoundingClientRect().width;")
    assert width > 100


def test_long_environment_values_are_cut_with_the_full_value_kept(browser, reference_page):
    full = _reference_docs()[0]["environment"]["env_vars"]["NVIDIA_REQUIRE_CUDA"]
    assert len(full) > 500
    cell = _js(browser, reference_page, """
        const th = Array.from(document.querySelectorAll('#r1-env th'))
            .find(h => h.textContent === 'env_vars.NVIDIA_REQUIRE_CUDA');
        const td = th.nextElementSibling, details = td.querySelector('details'), summary = td.querySelector('summary');
        const closed = [details.open, summary.textContent, summary.title, td.querySelector('code').textContent,
                        td.getBoundingClientRect().height];
        details.open = true;
        const overflow = document.documentElement.scrollWidth - document.documentElement.clientWidth;
        details.open = false;
        return [...closed, overflow];""")
    opened, summary, title, inside, height, overflow = cell
    assert not opened and summary.endswith("…") and len(summary) <= 82 and full.startswith(summary[:-2].rstrip())
    assert title == full and inside == full
    assert height < 40  # one line until it is opened
    assert overflow <= 0  # and opened, the whole value wraps inside the page



# --------------------------------------------------------------------------- issue 22: the first screen and its answers

ANSWERS = ("ready", "scope", "best", "axes", "time", "cpu_predict", "regression")
# Paths that say where the tool ran: never on a shared page (the full text stays in the result file).
MACHINE_PATH = re.compile(r"/(?:work|home|tmp|root|Users)/|site-packages|dist-packages")


@pytest.mark.parametrize("name", ["quick", "jax", "torch"])
def test_first_screen_answers_the_questions_at_1366x768(browser, reports, tmp_path, name):
    session = _open(browser, reports[name])
    found = _js(browser, session, f"""
        return {list(ANSWERS) + ['drift']!r}.map(key => {{
          const dd = document.querySelector(`#r1-overview dd[data-answer="${{key}}"]`);
          if (!dd) return [key, null, null];
          const box = dd.getBoundingClientRect();
          return [key, dd.textContent.trim(), box.bottom];
        }});""")
    assert browser.evaluate("window.scrollY", session) == 0
    for key, text, bottom in found:
        assert text, key  # every question answered, in words and numbers
        assert bottom <= LAPTOP["height"], (key, bottom)  # ... above the fold of a laptop screen
    answers = {key: text for key, text, _ in found}
    assert re.search(r"\d", answers["best"]) and "samples/s" in answers["best"]
    assert "python -m bench compare" in answers["regression"]
    out = _screenshot_dir(tmp_path)
    shot = browser.call("Page.captureScreenshot", {"format": "png"}, session)
    _save_png(shot["data"], out / f"report-{name}-first-screen.png")
    assert problems(browser.events, session) == []


def test_a_simulated_run_says_so_in_its_title_and_headlines(browser, reports):
    session = _open(browser, reports["quick"])
    title, h1, scope, category, panels = _js(browser, session, """
        return [document.title, document.querySelector('h1').textContent,
                document.querySelector('#r1-overview dd[data-answer="scope"]').textContent,
                Array.from(document.querySelectorAll('#r1-glance tbody tr')).map(r => r.cells[12].textContent),
                Array.from(document.querySelectorAll('#r1-chart-throughput text')).map(t => t.textContent)];""")
    assert title == h1 and "simulated devices on a CPU" in title and "GPU benchmark" not in title
    assert scope.startswith("CPU with simulated devices: checks that the suite works, says nothing about GPU speed")
    assert category and set(category) == {"sim. CPU · synthetic"}  # every row carries its category
    assert any("(simulated)" in text for text in panels)
    gpu = _open(browser, reports["jax"])
    assert browser.evaluate("document.title", gpu) == "Keras GPU benchmark · gpu-jax · 1 × NVIDIA H200"


def test_known_limitations_are_labelled_and_no_machine_path_is_on_the_page(browser, reports):
    doc = json.loads(QUICK.read_text(encoding="utf-8"))
    failed = [c for c in doc["cases"] if c["status"] == "failed"]
    assert len(failed) == 8 and all("site-packages" in c["reason"] and "/work/" in c["reason"] for c in failed)
    session = _open(browser, reports["quick"])
    links = _js(browser, session, """
        const rows = Array.from(document.querySelectorAll('#r1-train-cases tbody tr, #r1-cpu-cases tbody tr'));
        return rows.map(r => [r.cells[0].textContent.trim(),
                              Array.from(r.querySelectorAll('a')).map(a => [a.textContent, a.href])]);""")
    labelled = {case_id: found for case_id, found in links if found}
    for case in failed:
        issue = "19005" if case["suite"] == "train" else "20308"
        (text, href), = labelled[case["case_id"]]
        assert f"known limitation keras-team/keras#{issue}" in text
        assert href == f"https://github.com/keras-team/keras/issues/{issue}"
    kinds = _js(browser, session, "return Array.from(document.querySelectorAll('#warnings li.warning')).map(li => li.dataset.warning);")
    assert "known_limitation" in kinds and "failed" not in kinds  # expected failures are not a broken setup
    for name in ("quick", "jax", "torch", "all"):
        page = _open(browser, reports[name])
        html = browser.evaluate("document.documentElement.outerHTML", page)
        found = MACHINE_PATH.search(html)
        assert not found, (name, html[max(0, found.start() - 300):found.end() + 200])


def _jit_label(case: dict[str, Any]) -> str:
    p, resolved = case["params"], case["metrics"].get("jit_compile_resolved")
    name = "torch.compile" if p["backend"] == "torch" else "XLA"
    if p["jit_compile"] == "auto":
        return f"{name} auto" + (f"→{'on' if resolved else 'off'}" if isinstance(resolved, bool) else "")
    return f"{name} {'on' if p['jit_compile'] else 'off'}"


@pytest.mark.parametrize(("name", "source"), [("quick", QUICK), ("jax", REFERENCE_RUNS[0])])
def test_no_throughput_line_joins_cases_that_differ_in_input_or_steps_per_execution(browser, reports, name, source):
    doc = json.loads(Path(source).read_text(encoding="utf-8"))
    groups: dict[str, list[int]] = {}
    for case in _ok(doc, "train"):
        p = case["params"]
        parts = [p["backend"], p["gpus"], p["precision"], _jit_label(case), p.get("input", "unrecorded"),
                 p.get("steps_per_execution", 1)]
        key = "series--" + "--".join(re.sub(r"[^\w.]+", "_", str(v)) for v in parts)
        groups.setdefault(key, []).append(p["global_batch"])
    session = _open(browser, reports[name])
    lines = _js(browser, session, """
        return Array.from(document.querySelectorAll('#r1-chart-throughput g[id*="-series--"]')).map(g => [
          g.id.slice(g.id.indexOf('series--')), g.querySelectorAll('use').length,
          (g.querySelector('path') ? (g.querySelector('path').getAttribute('d').match(/[ML]/g) || []).length : 0)]);""")
    assert {key for key, _, _ in lines} == set(groups)
    for key, markers, vertices in lines:
        # every point of a line is a case with the same input and steps_per_execution, one per batch
        assert markers == vertices == len(groups[key]) == len(set(groups[key])), key
    if name == "quick":  # the quick run varies both axes, at batch 128 and 1024
        assert len({k.split("--")[-2] for k in groups}) > 1 and len({k.split("--")[-1] for k in groups}) > 1


def _pdf_text(data: bytes) -> str:
    """The text of a PDF Chromium wrote: each font's ToUnicode map applied to its hex glyph strings (enough
    for Skia's output; no PDF library needed)."""
    objects = {int(n): body for n, body in re.findall(rb"(\d+) 0 obj(.*?)endobj", data, re.S)}

    def stream(body: bytes) -> bytes | None:
        found = re.search(rb"stream\r?\n(.*?)\r?\nendstream", body, re.S)
        if not found:
            return None
        if b"/FlateDecode" not in body[:found.start()]:
            return found.group(1)
        try:  # a decompressor object, not zlib.decompress: a binary stream may end in bytes the regex kept
            return zlib.decompressobj().decompress(found.group(1))
        except zlib.error:
            return None  # an image or font program cut short by the regex: no text in it

    def cmap(body: bytes) -> dict[int, str]:
        table, text = {}, stream(body) or b""
        for block in re.findall(rb"beginbfchar(.*?)endbfchar", text, re.S):
            for src, dst in re.findall(rb"<([0-9A-Fa-f]+)>\s*<([0-9A-Fa-f]+)>", block):
                table[int(src, 16)] = bytes.fromhex(dst.decode()).decode("utf-16-be")
        for block in re.findall(rb"beginbfrange(.*?)endbfrange", text, re.S):
            for lo, hi, dst in re.findall(rb"<([0-9A-Fa-f]+)>\s*<([0-9A-Fa-f]+)>\s*<([0-9A-Fa-f]+)>", block):
                for i, code in enumerate(range(int(lo, 16), int(hi, 16) + 1)):
                    table[code] = chr(int(dst, 16) + i)
        return table

    fonts = {n: cmap(objects[int(m)]) for n, body in objects.items()
             for m in re.findall(rb"/ToUnicode (\d+) 0 R", body) if int(m) in objects}
    names = {name: fonts.get(int(num), {}) for body in objects.values()
             for block in re.findall(rb"/Font\s*<<(.*?)>>", body, re.S)
             for name, num in re.findall(rb"/([\w.+-]+)\s+(\d+) 0 R", block)}
    out: list[str] = []
    for body in objects.values():
        content = stream(body) if b"/Length" in body else None
        if not content or (b"Tj" not in content and b"TJ" not in content):
            continue
        table: dict[int, str] = {}
        for token in re.finditer(rb"/([\w.+-]+)\s+[\d.]+\s+Tf|\[([^\]]*)\]\s*TJ|<([0-9A-Fa-f]*)>\s*Tj|(ET)", content):
            if token.group(1):
                table = names.get(token.group(1), {})
            elif token.group(4):
                out.append("\n")
            else:
                hexes = re.findall(rb"<([0-9A-Fa-f]*)>", token.group(2)) if token.group(2) is not None \
                    else [token.group(3)]
                out += ["".join(table.get(int(h[i:i + 4], 16), "?") for i in range(0, len(h), 4)) for h in hexes]
    return unicodedata.normalize("NFKC", "".join(out))


def test_the_printed_pdf_keeps_the_samples_column_and_drops_the_config(browser, reports, tmp_path):
    session = _open(browser, reports["quick"])
    browser.call("Emulation.setEmulatedMedia", {"media": "print"}, session)
    shown = _js(browser, session, """
        const head = Array.from(document.querySelectorAll('#r1-train-cases thead th'));
        const visible = head.filter(th => getComputedStyle(th).display !== 'none').map(th => th.textContent);
        const config = getComputedStyle(document.querySelector('details.config-json')).display;
        return [visible, config];""")
    visible, config = shown
    assert visible[:5] == ["case", "samples/s", "CV", "step ms", "status"] and "q1" not in visible
    assert config == "none"
    pdf = base64.b64decode(browser.call("Page.printToPDF", {"printBackground": False}, session)["data"])
    assert pdf.startswith(b"%PDF")
    (_screenshot_dir(tmp_path) / "report-quick.pdf").write_bytes(pdf)
    raw = _pdf_text(pdf)
    text = " ".join(raw.split())  # a header may wrap ("step" / "ms")
    doc = json.loads(QUICK.read_text(encoding="utf-8"))
    first = next(c for c in _ok(doc, "train"))
    assert "Every case" in text and "case samples/s CV step ms status" in text
    assert first["case_id"] in raw.replace("\n", "")
    from bench.analyze.text import rate_value

    assert rate_value(first["metrics"]["samples_per_second"]["median"]) in text
    assert '"cv_threshold"' not in text  # the config as run is not printed (it stays in the file)
    assert problems(browser.events, session) == []


@pytest.mark.parametrize("name", ["quick", "jax", "torch", "reference", "all"])
def test_no_page_states_two_different_best_configurations(browser, reports, name):
    session = _open(browser, reports[name])
    stated = _js(browser, session, """
        const out = [];
        document.querySelectorAll('section.overview').forEach(sec => {
          const dd = sec.querySelector('dd[data-answer="best"]');
          const values = JSON.parse(dd.dataset.values).backends || {};
          for (const [backend, v] of Object.entries(values)) out.push([sec.id.split('-')[0], backend, v.case_id]);
        });
        document.querySelectorAll('li[data-finding="best"]').forEach(li => {
          const run = li.closest('section.run-block').id;
          const values = JSON.parse(li.dataset.values);
          if (values.case_id) out.push([run, values.backend, values.case_id]);
        });
        return out;""")
    best: dict[tuple[str, str], set[str]] = {}
    for run, backend, case_id in stated:
        best.setdefault((run, backend), set()).add(case_id)
    assert best and all(len(ids) == 1 for ids in best.values()), best
    # and each is stated in both places: the first screen and the findings
    assert all(sum(1 for r, b, _ in stated if (r, b) == key) == 2 for key in best), stated
