"""``python -m bench promote RUN --name NAME``: append a run to the baseline history ``results/baselines/NAME/``.

``compare NAME`` then judges new runs against the between-run spread of that history; it needs at least
``MIN_HISTORY_RUNS`` runs, made at different times (separate sweeps, ideally hours or days apart, so the
history sees the runner's real drift). ``compare NAME --method changepoint`` reads the same folder as a
series of nightly runs: it needs a reference of at least ``MIN_REFERENCE`` runs and one more.
"""

from __future__ import annotations

import argparse
import sys

from bench.analyze.cusum import MIN_REFERENCE
from bench.analyze.regression import MIN_HISTORY_RUNS
from bench.commands import add_results_dir
from bench.store.baselines import promote, resolve_run


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_file", metavar="RUN", help="run document (path, or run_id in --results-dir)")
    parser.add_argument("--name", required=True, help="baseline name, e.g. h100-tf2.21 (compare accepts it)")
    add_results_dir(parser, "results folder; the history is DIR/baselines/NAME/")
    parser.add_argument("--force", action="store_true", help="replace this run if it is already in the history")
    parser.add_argument("--reset", action="store_true",
                        help="start the history over with this run (new runner, new setup): removes its other runs")
    parser.add_argument("--allow-doubtful", action="store_true",
                        help="promote even an incomplete run, or one with synthetic data or simulated devices")


def run(args: argparse.Namespace) -> int:
    promotion = promote(resolve_run(args.run_file, args.results_dir), args.name, args.results_dir,
                        force=args.force, allow_doubtful=args.allow_doubtful, reset=args.reset)
    if promotion.doubts:
        print(f"warning: promoted despite: {'; '.join(promotion.doubts)} (--allow-doubtful)", file=sys.stderr)
    if promotion.migrated:
        print(f"note: moved the single-run baseline into the history as {promotion.migrated}", file=sys.stderr)
    verb = "replaced" if promotion.replaced else "promoted"
    missing = MIN_HISTORY_RUNS - promotion.history_runs
    status = (f"; the between-run test needs {missing} more" if missing > 0
              else "; enough for the between-run test")
    series = MIN_REFERENCE + 1 - promotion.history_runs
    status += f", the change-point mode {series} more" if series > 0 else ", and for the change-point mode"
    print(f"{verb} {promotion.path} with run {promotion.run_id} "
          f"(history {args.name}: {promotion.history_runs} run(s){status})")
    return 0
