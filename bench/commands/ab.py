"""``python -m bench ab --config TOML --a-rev REV --b-rev REV`` (or ``--a-python``/``--b-python``): the
decisive check before a merge. Both sides run every case of the config, case by case, alternately, in
one session (:mod:`bench.run.ab`): 8 pairs first, then 16 and 24 for the cases whose answer is still
unclear (:func:`bench.analyze.ab.progress`); the pairs are compared with a paired test
(:mod:`bench.analyze.ab`), Holm across the cases. Exit 0 no regression of side b against side a,
1 regression, 2 bad input.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path
from typing import Any

from bench.analyze.ab import DEFAULT_LOOKS, by_case, compare_pairs, progress
from bench.analyze.compare import CompareSettings, exit_code
from bench.analyze.normalize import NORMALIZE_MODES
from bench.analyze.regression import DEFAULT_ALPHA
from bench.commands import add_results_dir
from bench.commands.compare import parse_thresholds
from bench.config_overrides import load_config_with_overrides
from bench.errors import UserError
from bench.report.compare_table import environment_lines, render_table
from bench.report.export import markdown_summary
from bench.run.ab import ProcessRunner, Session, Side, parse_env, run_session
from bench.store.comparisons import check_comparison
from bench.store.results import write_json_atomic, write_text_atomic
from bench.store.schema import run_id_stamp


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", metavar="TOML", required=True, help="the cases to compare (e.g. configs/gate.toml)")
    for label, role in (("a", "the baseline"), ("b", "the candidate")):
        parser.add_argument(f"--{label}-rev", metavar="REV",
                            help=f"side {label} ({role}): a git revision, checked out into a temporary worktree "
                                 "(default: the working tree as it is)")
        parser.add_argument(f"--{label}-python", metavar="PYTHON", default=sys.executable,
                            help=f"side {label}: the interpreter, e.g. another virtualenv's bin/python (default: this one)")
        parser.add_argument(f"--{label}-env", metavar="KEY=VALUE", action="append", default=[],
                            help=f"side {label}: an extra environment variable (repeatable)")
    parser.add_argument("--pairs", metavar="N,N,...", default=",".join(map(str, DEFAULT_LOOKS)),
                        help="the looks: pairs per case after which the session decides which cases are still unclear "
                             f"and need more (default {','.join(map(str, DEFAULT_LOOKS))}; each pair is two fresh "
                             "processes)")
    parser.add_argument("--repeats", type=int, default=None,
                        help="exactly this many pairs per case, no looks in between (instead of --pairs)")
    parser.add_argument("--allow-same", action="store_true",
                        help="allow identical sides: an A/A session, to see this machine's noise")
    add_results_dir(parser, "the session goes to DIR/ab-<time>/")
    parser.add_argument("--normalize", choices=NORMALIZE_MODES, default="none",
                        help="none (default): pairing already cancels drift, and the control runs on each side's own "
                             "framework, so dividing by it would hide a framework slowdown; auto: divide where it "
                             "measurably lowers the spread of the pairs' log ratios (same framework on both sides "
                             "only); control: divide anyway")
    parser.add_argument("--threshold", metavar="[METRIC=]PCT", action="append", default=[],
                        help="minimum change that can count as a regression (default 5%%), as for compare")
    parser.add_argument("--alpha", type=float, default=DEFAULT_ALPHA,
                        help=f"false-alarm budget of the session (default {DEFAULT_ALPHA}), split over the looks and "
                             "over the cases (Holm)")
    parser.add_argument("--judge-contended", action="store_true",
                        help="keep pairs with a case the sweep flagged contention (another job loaded the machine); by "
                             "default such pairs are left out")
    parser.add_argument("--only-changed", action="store_true", help="leave the 'no change' rows out of the table")
    parser.add_argument("--json", metavar="PATH", help="also write the comparison document here "
                                                      "(always written as comparison.json in the session folder)")
    parser.add_argument("--markdown", metavar="PATH", help="also write a Markdown summary of the changed rows")
    parser.add_argument("--quiet", action="store_true", help="no line per process")


def parse_looks(pairs: str, repeats: int | None) -> tuple[int, ...]:
    if repeats is not None:
        if repeats < 2:
            raise UserError(f"--repeats must be at least 2 (a paired test needs two pairs), got {repeats}")
        return (repeats,)
    try:
        looks = tuple(int(n) for n in pairs.split(","))
    except ValueError:
        raise UserError(f"--pairs {pairs!r}: expected increasing pair counts like 8,16,24") from None
    if looks[0] < 2 or list(looks) != sorted(set(looks)):
        raise UserError(f"--pairs {pairs!r}: expected increasing pair counts, the first at least 2, like 8,16,24")
    return looks


def unclear_units(session: Session, settings: CompareSettings, looks: tuple[int, ...]) -> set[int]:
    """The units with a case whose answer is still unclear after this look."""
    states = progress(session.pairs, settings, looks)
    cases_of: dict[int, set[str]] = {}
    for unit, pair in zip(session.pair_units, session.pairs, strict=True):
        cases_of.setdefault(unit, set()).update(by_case([pair]))
    return {unit for unit, cases in cases_of.items()
            if any(states[c].state == "unclear" for c in cases if c in states)}


def run(args: argparse.Namespace) -> int:
    looks = parse_looks(args.pairs, args.repeats)
    if not 0 < args.alpha < 1:
        raise UserError(f"--alpha must be between 0 and 1, got {args.alpha}")
    a = Side("a", args.a_python, args.a_rev, parse_env(args.a_env, "--a-env"))
    b = Side("b", args.b_python, args.b_rev, parse_env(args.b_env, "--b-env"))
    if a.same_as(b) and not args.allow_same:
        raise UserError("both sides are the same (interpreter, revision and environment); give --a-rev/--b-rev, "
                        "--a-python/--b-python or --a-env/--b-env, or --allow-same for an A/A session")
    settings = CompareSettings(thresholds=parse_thresholds(args.threshold), alpha=args.alpha,
                               normalize=args.normalize, skip_contended=not args.judge_contended)
    config = load_config_with_overrides(args.config)
    out_dir = Path(args.results_dir) / f"ab-{run_id_stamp()}"
    out_dir.mkdir(parents=True, exist_ok=True)
    runner = ProcessRunner(_repo_root(), out_dir)

    def on_step(entry: dict[str, Any], done: int, total: int) -> None:
        if not args.quiet:
            print(f"[{done}/{total}] repeat {entry['repeat']} side {entry['side']}: {entry['unit']} -> {entry['run']} "
                  f"({entry['seconds']:.0f} s)", flush=True)

    def decide(session: Session) -> set[int]:
        unclear = unclear_units(session, settings, looks)
        if not args.quiet:
            print(f"after {len(session.pairs)} pairs: {len(unclear)} of {len(session.units)} unit(s) still unclear",
                  flush=True)
        return unclear

    print(f"A/B session {out_dir}: side a = {a.describe()}; side b = {b.describe()}; looks at "
          f"{', '.join(map(str, looks))} pairs", flush=True)
    session = run_session(config, a, b, runner, out_dir, looks, on_step, decide=decide)
    document = compare_pairs(session.pairs, settings,
                             a_ref={"path": out_dir / "a", "baseline_name": f"side a: {a.describe()}"},
                             b_ref={"path": out_dir / "b"}, looks=looks, seconds=session.seconds())
    document["method"]["sides"] = {"a": a.describe(), "b": b.describe()}
    write_json_atomic(out_dir / "session.json", {"kind": "keras-gpu-bench/ab-session", "config": str(args.config),
                                                 "sides": document["method"]["sides"], "looks": list(looks),
                                                 "log": session.log})
    write_json_atomic(out_dir / "comparison.json", document)
    for line in environment_lines(document):
        print(line, file=sys.stderr)
    print(render_table(document, only_changed=args.only_changed))
    if args.json:
        check_comparison(document, "the comparison document")
        write_json_atomic(Path(args.json), document, option="--json")
    if args.markdown:
        write_text_atomic(Path(args.markdown), markdown_summary(document), option="--markdown")
    return exit_code(document)


def _repo_root() -> Path:
    result = subprocess.run(["git", "rev-parse", "--show-toplevel"], capture_output=True, text=True)
    if result.returncode == 0 and result.stdout.strip():
        return Path(result.stdout.strip())
    return Path(__file__).resolve().parents[2]
