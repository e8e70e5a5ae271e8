"""Result files in, one HTML file out: the function ``python -m bench report`` calls."""

from __future__ import annotations

from pathlib import Path

from bench.report.comparison import render_comparison
from bench.report.load import DEFAULT_RESULTS_DIR, load_runs
from bench.report.page import build_page
from bench.store.baselines import newest_run
from bench.store.comparisons import load_comparison
from bench.store.results import write_text_atomic
from bench.store.schema import utc_now

DEFAULT_OUTPUT = Path("report") / "index.html"
# The committed reference runs (a source checkout has them; an installed package may not).
REFERENCE_DIR = Path(__file__).resolve().parents[2] / "results" / "reference"


def build_report(results: list[Path] | None = None, output: Path = DEFAULT_OUTPUT,
                 comparison: Path | None = None, results_dir: Path = DEFAULT_RESULTS_DIR,
                 generated_utc: str | None = None, reference_dir: Path | None = REFERENCE_DIR) -> Path:
    """Write the report for ``results`` (default: the newest run document in ``results_dir``) to ``output``;
    each run is shown beside the reference runs in ``reference_dir`` made on its GPU model and backend."""
    paths = [Path(p) for p in results] if results else [newest_run(results_dir)]
    references = sorted(reference_dir.glob("*.json")) if reference_dir is not None and reference_dir.is_dir() else []
    runs = load_runs(paths, references)
    view = render_comparison(load_comparison(comparison), str(comparison)) if comparison else None
    page = build_page(runs, generated_utc or utc_now(), view)
    # A reader (a browser on a file share) sees the old report or the new one, never half of one.
    write_text_atomic(Path(output), page, option="--output")
    return Path(output)
