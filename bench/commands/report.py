"""``python -m bench report``: one self-contained HTML page from result files (never imports TensorFlow)."""

from __future__ import annotations

import argparse
from pathlib import Path

from bench.commands import add_results_dir
from bench.report.build import DEFAULT_OUTPUT, build_report


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "results", nargs="*", type=Path, metavar="RESULTS",
        help="run documents (results/<run_id>.json, or an unfinished .partial.jsonl); "
             "default: the newest run document in --results-dir",
    )
    add_results_dir(parser, "where to look for the newest run when no RESULTS are given")
    parser.add_argument(
        "--baseline-comparison", type=Path, metavar="JSON", default=None,
        help="a comparison document written by `python -m bench compare`, shown in its own section",
    )
    parser.add_argument(
        "--output", "-o", type=Path, default=DEFAULT_OUTPUT, metavar="HTML",
        help=f"where to write the page (default: {DEFAULT_OUTPUT})",
    )


def run(args: argparse.Namespace) -> int:
    output = build_report(args.results, output=args.output, comparison=args.baseline_comparison,
                          results_dir=args.results_dir)
    runs = len(args.results) if args.results else 1
    print(f"wrote {output} ({runs} run{'s' if runs != 1 else ''})")
    return 0
