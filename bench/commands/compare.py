"""``python -m bench compare BASELINE... [CURRENT]``: exit 0 no regression, 1 regression, 2 bad input.

BASELINE is a baseline name (the history ``results/baselines/NAME/``, or a single run ``NAME.json``), a
folder of run documents, or one or more run files; with two or more arguments the last one is the run to
check, otherwise CURRENT is the newest run document in ``--results-dir``. Methods:

* ``history`` (a history's default): the run against the between-run spread of the history's runs;
* ``runs`` (two files' default): the process values of the two runs; a case measured in one process per
  run is not judged, and the comparison says what it would need;
* ``changepoint``: a CUSUM over the history's runs plus CURRENT, per case and for the suite;
* ``rounds``: the rounds of two runs (a quick look on a quiet, dedicated machine; it warns).

Every row states what it can see (``blind below X %``). The table goes to stdout, warnings to stderr.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bench.analyze.changepoint import compare_series
from bench.analyze.compare import (
    FINGERPRINT_FIELDS,
    CompareSettings,
    compare_runs,
    compare_two_runs,
    exit_code,
)
from bench.analyze.cusum import DEFAULT_HORIZON, DEFAULT_REFERENCE, MIN_REFERENCE
from bench.analyze.history import compare_history
from bench.analyze.judge import CASE_ALPHA_CAP
from bench.analyze.normalize import NORMALIZE_MODES
from bench.analyze.regression import (
    DEFAULT_ALPHA,
    DEFAULT_HISTORY_WINDOW,
    DEFAULT_THRESHOLD,
    METRICS,
    MIN_HISTORY_RUNS,
    ROUNDS_CASE_ALPHA,
)
from bench.commands import add_results_dir
from bench.errors import UserError
from bench.report.compare_table import environment_lines, render_table
from bench.report.export import markdown_summary, write_github_benchmark
from bench.store.baselines import load_history, newest_run, resolve_baselines, resolve_run
from bench.store.comparisons import check_comparison
from bench.store.results import load_run, write_json_atomic, write_text_atomic

TESTED_METRICS = tuple(name for name, metric in METRICS.items() if metric.per_round)
METHODS = ("auto", "history", "runs", "changepoint", "rounds")


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("runs", metavar="BASELINE", nargs="+",
                        help="baseline name (results/baselines/NAME/ history or NAME.json), a folder of runs, or run "
                             "files; with two or more arguments the last is CURRENT, the run to check (default: the "
                             "newest run in --results-dir)")
    add_results_dir(parser, "where runs and baselines/ live")
    parser.add_argument("--method", choices=METHODS, default="auto",
                        help="history: the current run against the between-run spread of the baseline's runs (needs "
                             "at least --min-runs); runs: two runs, judged on the spread between each case's "
                             "processes (a case measured in one process is not judged); changepoint: a CUSUM over the "
                             "history's runs and CURRENT (nightly runs), per case and for the suite; rounds: Yuen's "
                             "t-test over the rounds of one baseline run (the newest, for a history), which ignores "
                             "between-run drift; auto (default): history for a history, runs for a single run")
    parser.add_argument("--normalize", choices=NORMALIZE_MODES, default="auto",
                        help="auto (default): divide a case's throughput by the control workload timed next to it "
                             "where that measurably lowers the case's spread (decided per case from the history, the "
                             "processes or the pairs, and said in the row); control: wherever every run has it; "
                             "none: raw")
    parser.add_argument("--min-runs", type=int, default=MIN_HISTORY_RUNS,
                        help=f"fewest history runs the between-run test accepts (default {MIN_HISTORY_RUNS})")
    parser.add_argument("--window", type=int, default=DEFAULT_HISTORY_WINDOW,
                        help=f"history: use the newest N runs of a history (default {DEFAULT_HISTORY_WINDOW}; 0 = all); "
                             "changepoint uses the newest --reference + --horizon runs")
    parser.add_argument("--reference", type=int, default=DEFAULT_REFERENCE,
                        help=f"changepoint: runs that set each case's level and spread (default {DEFAULT_REFERENCE})")
    parser.add_argument("--horizon", type=int, default=DEFAULT_HORIZON,
                        help=f"changepoint: runs after the reference that the false-alarm budget covers (default "
                             f"{DEFAULT_HORIZON})")
    parser.add_argument("--threshold", metavar="[METRIC=]PCT", action="append", default=[],
                        help=f"minimum change that can count as a regression, in percent (default "
                             f"{DEFAULT_THRESHOLD * 100:g}%%); per metric, e.g. samples_per_second=5%%, or for all "
                             f"metrics, e.g. 8%%. Metrics: {', '.join(TESTED_METRICS)}. Repeatable.")
    parser.add_argument("--alpha", type=float, default=DEFAULT_ALPHA,
                        help=f"false-alarm budget of the whole comparison, one-sided (default {DEFAULT_ALPHA}: per suite "
                             "run; changepoint: per --horizon runs), split over the cases with Holm's step-down")
    parser.add_argument("--case-alpha", type=float, default=None,
                        help=f"the most one case may take of --alpha (default {CASE_ALPHA_CAP}; {ROUNDS_CASE_ALPHA} for "
                             "rounds)")
    parser.add_argument("--allow-diff", metavar="FIELDS", default="",
                        help="environment fields expected to differ, comma-separated (e.g. tensorflow,keras when "
                             f"testing an upgrade); fields: {', '.join(FINGERPRINT_FIELDS)}")
    parser.add_argument("--force", action="store_true",
                        help="compare even when the environments differ in what matters (prints a warning)")
    parser.add_argument("--judge-contended", action="store_true",
                        help="judge cases the sweep flagged contention (another job loaded the machine while they were "
                             "timed) like any other, and keep such runs in spreads; by default they are left out")
    parser.add_argument("--only-changed", action="store_true", help="leave the 'no change' rows out of the table")
    parser.add_argument("--json", metavar="PATH", help="also write the comparison document (JSON) here")
    parser.add_argument("--markdown", metavar="PATH",
                        help="also write a Markdown summary of the changed rows (e.g. >> $GITHUB_STEP_SUMMARY)")
    parser.add_argument("--github-benchmark", metavar="PATH",
                        help="write the current run's training throughput for github-action-benchmark "
                             "(customBiggerIsBetter; not written when the run has none)")
    parser.add_argument("--github-benchmark-smaller", metavar="PATH",
                        help="write the current run's CPU-prediction seconds for github-action-benchmark "
                             "(customSmallerIsBetter; not written when the run has none)")


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
    if args.case_alpha is not None and not 0 < args.case_alpha < 1:
        raise UserError(f"--case-alpha must be between 0 and 1, got {args.case_alpha}")
    if args.reference < MIN_REFERENCE or args.horizon < 1:
        raise UserError(f"--reference must be at least {MIN_REFERENCE} and --horizon at least 1, got {args.reference} "
                        f"and {args.horizon}")
    if args.min_runs < 2:
        raise UserError(f"--min-runs must be at least 2 (a spread needs two runs), got {args.min_runs}")
    if args.window < 0:
        raise UserError(f"--window must be 0 (all runs) or positive, got {args.window}")
    specs, current_spec = (args.runs[:-1], args.runs[-1]) if len(args.runs) > 1 else (args.runs, None)
    baseline = resolve_baselines(specs, args.results_dir)
    current_path = resolve_run(current_spec, args.results_dir) if current_spec else newest_run(args.results_dir)
    method = args.method if args.method != "auto" else ("history" if baseline.history else "runs")
    settings = CompareSettings(thresholds=parse_thresholds(args.threshold), alpha=args.alpha,
                               case_alpha=args.case_alpha, force=args.force, skip_contended=not args.judge_contended,
                               allow_diff=parse_allow_diff(args.allow_diff), normalize=args.normalize)
    current = load_run(current_path)
    history = load_history(baseline, None if method == "changepoint" else (args.window or None))
    baseline_ref = {"path": baseline.location, "baseline_name": baseline.name}
    if method == "history":
        document = compare_history([r for r, _ in history], current, settings, args.min_runs,
                                   history_ref=baseline_ref, current_ref={"path": current_path},
                                   history_paths=[str(p) for _, p in history])
    elif method == "changepoint":
        series = [(r, p) for r, p in history if r.get("run_id") != current.get("run_id")] + [(current, current_path)]
        document = compare_series([r for r, _ in series], settings, args.reference, args.horizon,
                                  history_ref=baseline_ref, current_ref={"path": current_path},
                                  history_paths=[str(p) for _, p in series])
    else:
        newest, newest_path = history[-1]
        if baseline.history:
            print(f"note: --method {method}: comparing with the newest run of the history only ({newest_path})",
                  file=sys.stderr)
        compare = compare_runs if method == "rounds" else compare_two_runs
        if method == "rounds":
            print("warning: the round-level test compares the rounds of two runs and ignores drift between runs; on a "
                  "shared runner it false-alarms — keep a history (python -m bench promote appends to "
                  "results/baselines/NAME/) for the between-run test", file=sys.stderr)
        document = compare(newest, current, settings, baseline_ref={**baseline_ref, "path": newest_path},
                           current_ref={"path": current_path})
        one_process = sum(any("process(es) per side give no spread" in n for n in r["notes"]) for r in document["rows"])
        if method == "runs" and one_process:
            print(f"warning: {one_process} case(s) not judged: measured in one process per run, so two runs alone "
                  "cannot tell a change from between-run drift; keep a history (python -m bench promote RUN --name "
                  f"NAME, at least {MIN_HISTORY_RUNS} runs made at different times) and compare NAME, measure each case "
                  "in several processes ([measure] processes), or run python -m bench ab", file=sys.stderr)
    loaded = sum(any("(flags.contention)" in n and n.startswith("not judged") for n in r["notes"])
                 for r in document["rows"])
    if loaded:
        print(f"warning: {loaded} case(s) not judged: another job loaded the machine while they were timed "
              "(flags.contention); measure them again on a quieter machine, or pass --judge-contended", file=sys.stderr)
    for line in environment_lines(document):
        print(line, file=sys.stderr)
    print(render_table(document, only_changed=args.only_changed))
    if args.json:
        check_comparison(document, "the comparison document")  # written only as the schema says
        write_json_atomic(Path(args.json), document, option="--json")
    if args.markdown:
        write_text_atomic(Path(args.markdown), markdown_summary(document), option="--markdown")
    if args.github_benchmark or args.github_benchmark_smaller:
        paths = {"bigger": Path(args.github_benchmark) if args.github_benchmark else None,
                 "smaller": Path(args.github_benchmark_smaller) if args.github_benchmark_smaller else None}
        for line in write_github_benchmark(current, Path("."), str(current_path), document, paths):
            print(line, file=sys.stderr)
    return exit_code(document)
