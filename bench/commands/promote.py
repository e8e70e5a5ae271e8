"""``python -m bench promote RUN --name NAME``: keep a run as ``results/baselines/NAME.json``."""

from __future__ import annotations

import argparse
import sys

from bench.commands import add_results_dir
from bench.store.baselines import promote, resolve_run


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_file", metavar="RUN", help="run document (path, or run_id in --results-dir)")
    parser.add_argument("--name", required=True, help="baseline name, e.g. h100-tf2.21 (compare accepts it)")
    add_results_dir(parser, "results folder; the baseline goes to DIR/baselines/")
    parser.add_argument("--force", action="store_true", help="replace an existing baseline of that name")
    parser.add_argument("--allow-doubtful", action="store_true",
                        help="promote even an incomplete run, or one with synthetic data or simulated devices")


def run(args: argparse.Namespace) -> int:
    promotion = promote(resolve_run(args.run_file, args.results_dir), args.name, args.results_dir,
                        force=args.force, allow_doubtful=args.allow_doubtful)
    if promotion.doubts:
        print(f"warning: promoted despite: {'; '.join(promotion.doubts)} (--allow-doubtful)", file=sys.stderr)
    verb = "replaced" if promotion.replaced else "promoted"
    print(f"{verb} {promotion.path} with run {promotion.run_id}")
    return 0
