"""A synthetic collection shaped like ``scripts/gate_benchmark.py collect``'s output, where the truth is known.

For checking the analysis and the gate's calibration without an hour of runs: run documents built by
``tests/factories.py`` (the same builders the tests use), in collect's schedule of adjacent pairs, with a
machine that drifts between runs (log-normal ``--spread``, control and cases alike), pairs next to the busy
process 10 % slower as a whole, case-only noise (``--case-noise``) and ``--processes`` processes per case;
slowed runs have every case 10 % slower and the control untouched. Then::

    python scripts/gate_synthetic.py --out gate-synthetic --runs 320
    python scripts/gate_benchmark.py analyze --out gate-synthetic
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

GATE = {"name": "gate", "suites": ["train"],
        "train": {"backend": ["tensorflow"], "gpus": [1, 2], "global_batch": [128, 512], "precision": ["float32"],
                  "jit_compile": [False]}}


def collection(out: Path, runs: int, spread: float, case_noise: float, processes: int, seed: int) -> None:
    from scripts.gate_benchmark import SLOWDOWN, schedule
    from tests.factories import in_processes, make_run, write_run
    from tests.test_gate import drifted

    rng = np.random.default_rng(seed)
    ids = [c["case_id"] for c in make_run(0, GATE)["cases"]]
    entries = []
    path = None
    for index in range(runs):
        kind, loaded, pair = schedule(index)
        machine = float(np.exp(rng.normal(0, spread) - (SLOWDOWN if loaded else 0.0)))
        doc = make_run(10_000 * seed + index, GATE, rounds=5 * processes, run_index=index,
                       speed={c: float(np.exp(rng.normal(0, case_noise))) for c in ids})
        if kind == "slow":
            for case in doc["cases"]:
                case["metrics"]["round_s"] = [r / (1 - SLOWDOWN) for r in case["metrics"]["round_s"]]
                case["flags"]["injected_slowdown"] = True
        path = write_run(out / "runs", in_processes(drifted(doc, machine, control_noise=0.02, seed=index), processes))
        entries.append({"index": index, "kind": kind, "loaded": loaded, "pair": pair, "run": str(path),
                        "wall_s": 40.0, "loadavg_1min_before": 1.0 + loaded})
    entries += [{"index": None, "kind": "unit", "case_id": c, "run": str(path), "wall_s": 20.0} for c in ids]
    (out / "manifest.jsonl").write_text("".join(json.dumps(e) + "\n" for e in entries), encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("gate-synthetic"))
    parser.add_argument("--runs", type=int, default=320)
    parser.add_argument("--spread", type=float, default=0.05, help="machine drift between runs (log sd)")
    parser.add_argument("--case-noise", type=float, default=0.03, help="each case's own run-to-run noise (log sd)")
    parser.add_argument("--processes", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if (args.out / "manifest.jsonl").exists():
        parser.error(f"{args.out} already holds a collection")
    collection(args.out, args.runs, args.spread, args.case_noise, args.processes, args.seed)
    print(f"{args.runs} synthetic runs in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
