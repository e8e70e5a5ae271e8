"""``python -m bench compare BASELINE [CURRENT]``: exit 0 no regression, 1 regression, 2 bad input.

BASELINE is a run file or a baseline name (``results/baselines/<name>.json``); CURRENT defaults to the
newest run document in ``--results-dir``. The table goes to stdout, warnings to stderr.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from bench.analyze.compare import (
    FINGERPRINT_FIELDS,
    CompareSettings,
    compare_runs,
    environment_lines,
    exit_code,
    github_benchmark_entries,
    render_table,
)
from bench.analyze.regression import DEFAULT_ALPHA, DEFAULT_THRESHOLD, METRICS
from bench.commands import add_results_dir
from bench.errors import UserError
from bench.store.baselines import newest_run, resolve_baseline, resolve_run
from bench.store.comparisons import check_comparison
from bench.store.results import load_run, write_json_atomic

TESTED_METRICS = tuple(name for name, metric in METRICS.items() if metric.per_round)


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("baseline", metavar="BASELINE",
                        help="baseline name (results/baselines/NAME.json) or path of a run document")
    parser.add_argument("current", metavar="CURRENT", nargs="?",
                        help="run document or run_id to check (default: the newest run in --results-dir)")
    add_results_dir(parser, "where runs and baselines/ live")
    parser.add_argument("--threshold", metavar="[METRIC=]PCT", action="append", default=[],
                        help=f"minimum change that can count as a regression, in percent (default "
                             f"{DEFAULT_THRESHOLD * 100:g}%%); per metric, e.g. samples_per_second=5%%, or for all "
                             f"metrics, e.g. 8%%. Metrics: {', '.join(TESTED_METRICS)}. Repeatable.")
    parser.add_argument("--alpha", type=float, default=DEFAULT_ALPHA,
                        help=f"significance level of the one-sided test (default {DEFAULT_ALPHA})")
    parser.add_argument("--allow-diff", metavar="FIELDS", default="",
                        help="environment fields expected to differ, comma-separated (e.g. tensorflow,keras when "
                             f"testing an upgrade); fields: {', '.join(FINGERPRINT_FIELDS)}")
    parser.add_argument("--force", action="store_true",
                        help="compare even when the environments differ in what matters (prints a warning)")
    parser.add_argument("--json", metavar="PATH", help="also write the comparison document (JSON) here")
    parser.add_argument("--github-benchmark", metavar="PATH",
                        help="write training throughput for github-action-benchmark (tool: customBiggerIsBetter)")
    parser.add_argument("--github-benchmark-smaller", metavar="PATH",
                        help="write CPU-prediction seconds for github-action-benchmark (tool: customSmallerIsBetter)")


def parse_thresholds(values: list[str]) -> dict[str, float]:
    """``["5%", "samples_per_second=3%"]`` -> per-metric fractions (a bare value applies to every metric)."""
    thresholds: dict[str, float] = {}
    for value in values:
        metric, sep, number = value.rpartition("=")
        targets = [metric] if sep else list(TESTED_METRICS)
        if sep and metric not in TESTED_METRICS:
            raise UserError(f"--threshold {value}: unknown metric {metric!r}; choose from {', '.join(TESTED_METRICS)}")
        try:
            percent = float(number.strip().removesuffix("%"))
        except ValueError:
            raise UserError(f"--threshold {value}: {number!r} is not a percentage like 5%") from None
        if not 0 < percent < 100:
            raise UserError(f"--threshold {value}: must be between 0% and 100%")
        for target in targets:
            thresholds[target] = percent / 100
    return thresholds


def parse_allow_diff(value: str) -> frozenset[str]:
    names = frozenset(n.strip() for n in value.split(",") if n.strip())
    unknown = sorted(names - set(FINGERPRINT_FIELDS))
    if unknown:
        raise UserError(f"--allow-diff: unknown field {unknown[0]!r}; choose from {', '.join(FINGERPRINT_FIELDS)}")
    return names


def run(args: argparse.Namespace) -> int:
    if not 0 < args.alpha < 1:
        raise UserError(f"--alpha must be between 0 and 1, got {args.alpha}")
    settings = CompareSettings(thresholds=parse_thresholds(args.threshold), alpha=args.alpha, force=args.force,
                               allow_diff=parse_allow_diff(args.allow_diff))
    baseline_path, baseline_name = resolve_baseline(args.baseline, args.results_dir)
    current_path = resolve_run(args.current, args.results_dir) if args.current else newest_run(args.results_dir)
    document = compare_runs(
        load_run(baseline_path), load_run(current_path), settings,
        baseline_ref={"path": baseline_path, "baseline_name": baseline_name},
        current_ref={"path": current_path},
    )
    for line in environment_lines(document):
        print(line, file=sys.stderr)
    print(render_table(document))
    if args.json:
        check_comparison(document, "the comparison document")  # written only as the schema says
        _write(args.json, document, "--json")
    if args.github_benchmark:
        _write(args.github_benchmark, github_benchmark_entries(document, "bigger"), "--github-benchmark")
    if args.github_benchmark_smaller:
        _write(args.github_benchmark_smaller, github_benchmark_entries(document, "smaller"),
               "--github-benchmark-smaller")
    return exit_code(document)


def _write(path: str, document: dict[str, Any] | list[dict[str, Any]], option: str) -> None:
    write_json_atomic(Path(path), document, option=option)
