"""``python -m bench export [SOURCE] --format FORMAT``: files for CI tools, no baseline needed.

* ``github-action-benchmark``: SOURCE is a run (path or run_id; default the newest run in
  ``--results-dir``). Writes ``github-benchmark-throughput.json`` (tool ``customBiggerIsBetter``) and
  ``github-benchmark-seconds.json`` (``customSmallerIsBetter``) into ``--output`` (default: the results
  folder) — each only when the run has such numbers, since the action fails on an empty list.
* ``markdown``: SOURCE is a comparison document (``compare --json``); prints (or writes to ``--output``)
  a summary with only the changed rows, for ``$GITHUB_STEP_SUMMARY``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bench.commands import add_results_dir
from bench.errors import UserError
from bench.report.export import markdown_summary, write_github_benchmark
from bench.store.baselines import newest_run, resolve_run
from bench.store.comparisons import load_comparison
from bench.store.results import load_run, write_text_atomic

FORMATS = ("github-action-benchmark", "markdown")


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("source", metavar="SOURCE", nargs="?",
                        help="a run document or run_id (github-action-benchmark; default: the newest run in "
                             "--results-dir), or a comparison document written by compare --json (markdown)")
    parser.add_argument("--format", required=True, choices=FORMATS, help="what to write")
    add_results_dir(parser, "where runs live")
    parser.add_argument("--output", metavar="PATH",
                        help="github-action-benchmark: folder for the two files (default: --results-dir); "
                             "markdown: file to write (default: stdout)")
    parser.add_argument("--all-rows", action="store_true", help="markdown: list unchanged cases too")


def run(args: argparse.Namespace) -> int:
    if args.format == "markdown":
        if not args.source:
            raise UserError("--format markdown needs SOURCE: the comparison document written by compare --json")
        text = markdown_summary(load_comparison(args.source), only_changed=not args.all_rows)
        if args.output:
            write_text_atomic(Path(args.output), text, option="--output")
        else:
            sys.stdout.write(text)
        return 0
    path = resolve_run(args.source, args.results_dir) if args.source else newest_run(args.results_dir)
    lines = write_github_benchmark(load_run(path), Path(args.output or args.results_dir), str(path))
    for line in lines:
        print(line)
    return 0
