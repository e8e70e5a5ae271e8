"""Result files in, one HTML file out: the function ``python -m bench report`` calls."""

from __future__ import annotations

import os
import tempfile
from datetime import datetime, timezone
from pathlib import Path

from bench.errors import UserError
from bench.report.comparison import load_comparison, render_comparison
from bench.report.load import DEFAULT_RESULTS_DIR, default_results, load_runs
from bench.report.page import build_page

DEFAULT_OUTPUT = Path("report") / "index.html"


def build_report(results: list[Path] | None = None, output: Path = DEFAULT_OUTPUT,
                 comparison: Path | None = None, results_dir: Path = DEFAULT_RESULTS_DIR,
                 generated_utc: str | None = None) -> Path:
    """Write the report for ``results`` (default: the newest ``results_dir/*.json``) to ``output``."""
    paths = [Path(p) for p in results] if results else default_results(results_dir)
    runs = load_runs(paths)
    view = render_comparison(load_comparison(comparison), str(comparison)) if comparison else None
    when = generated_utc or datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    page = build_page(runs, when, view)
    _write_text_atomic(Path(output), page)
    return Path(output)


def _write_text_atomic(path: Path, text: str) -> None:
    """A reader (a browser on a file share) sees the old report or the new one, never half of one."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise UserError(f"cannot write {path}: {exc.strerror or exc}; choose another --output") from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise UserError(f"cannot write {path}: {exc.strerror or exc}; choose another --output") from None
