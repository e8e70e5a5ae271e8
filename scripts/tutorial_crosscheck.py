"""Does the suite measure what a user's own script sees? The reference tutorial beside the suite's tf_data case.

Runs scripts/reference_tutorial.py (its own epoch callback; epochs 2-5, the first traces) and the suite's
matching case — ``train/tensorflow/gpus=N/batch=64·N/float32/jit=auto/input=tf_data/spe=1`` with N logical
CPU devices standing in for GPUs — alternately (ABAB...), each in a fresh process, so drift on a shared
machine hits both sides. Prints every trial, the median of each side and their ratio; exit 0 when they
agree within ``--tolerance`` (5 %), 1 otherwise.

    python scripts/tutorial_crosscheck.py --npz ../shared/data/mnist.npz [--pairs 2] [--devices 2]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

SUITE_CONFIG = """
name = "tutorial-crosscheck"
suites = ["train"]

[train]
backend = ["tensorflow"]
gpus = [{devices}]
global_batch = [{batch}]
precision = ["float32"]
jit_compile = ["auto"]
input = ["{input}"]
steps_per_execution = [1]

[measure]
warmup_steps = 5
rounds = {rounds}
min_round_s = 1.0
case_timeout_s = 900
cv_threshold = 0.10

[data]
{data}

[devices]
simulate = true
"""


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    return env


def run_tutorial(npz: str | None, devices: int, out: Path) -> dict:
    cmd = [sys.executable, str(REPO / "scripts" / "reference_tutorial.py"), "--logical-cpus", str(devices),
           "--json-out", str(out)]
    if npz:
        cmd += ["--npz", npz]
    proc = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=1800)
    if proc.returncode != 0:
        raise SystemExit(f"reference_tutorial.py failed:\n{proc.stderr[-3000:]}")
    return json.loads(out.read_text())


def run_suite(config: Path, results: Path) -> dict:
    proc = subprocess.run([sys.executable, "-m", "bench", "run", "--config", str(config), "--results-dir",
                           str(results), "--quiet"], env=_env(), cwd=REPO, capture_output=True, text=True,
                          timeout=1800)
    if proc.returncode != 0:
        raise SystemExit(f"bench run failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    document = json.loads(Path(proc.stdout.strip().splitlines()[-1]).read_text())
    (case,) = [c for c in document["cases"] if c["suite"] == "train"]
    if case["status"] != "ok":
        raise SystemExit(f"suite case {case['case_id']} {case['status']}: {case['reason']}")
    return case


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--npz", help="mnist.npz for both sides (default: the Keras cache / download)")
    parser.add_argument("--devices", type=int, default=2, help="logical CPU devices (replicas), default 2")
    parser.add_argument("--pairs", type=int, default=2, help="tutorial/suite pairs, alternating (default 2)")
    parser.add_argument("--rounds", type=int, default=5, help="the suite's timed rounds (one epoch each here)")
    parser.add_argument("--input", default="tf_data", help="the suite's input value to compare (default tf_data)")
    parser.add_argument("--tolerance", type=float, default=0.05)
    args = parser.parse_args(argv)

    batch = 64 * args.devices
    data = f'path = "{Path(args.npz).resolve()}"' if args.npz else 'source = "mnist"'
    tutorial_sps: list[float] = []
    suite_sps: list[float] = []
    tutorial_epochs: list[float] = []  # every timed epoch / round, pooled over the pairs
    suite_rounds: list[float] = []
    with tempfile.TemporaryDirectory(prefix="crosscheck-") as tmp:
        tmp_path = Path(tmp)
        config = tmp_path / "crosscheck.toml"
        config.write_text(SUITE_CONFIG.format(devices=args.devices, batch=batch, input=args.input,
                                              rounds=args.rounds, data=data))
        for pair in range(args.pairs):
            tutorial = run_tutorial(args.npz, args.devices, tmp_path / f"tutorial-{pair}.json")
            tutorial_sps.append(tutorial["samples_per_second_median"])
            tutorial_epochs += tutorial["samples_per_second"]
            print(f"[{pair + 1}A] tutorial: {tutorial['samples_per_second_median']:,.0f} samples/s "
                  f"(epochs 2-{len(tutorial['epoch_s'])}: "
                  f"{', '.join(f'{s:,.0f}' for s in tutorial['samples_per_second'])}; test accuracy "
                  f"{tutorial['test_accuracy']:.4f})", flush=True)
            case = run_suite(config, tmp_path / f"results-{pair}")
            m = case["metrics"]
            suite_sps.append(m["samples_per_second"]["median"])
            suite_rounds += [m["samples_per_round"] / s for s in m["round_s"]]
            rounds = ", ".join(f"{m['samples_per_round'] / s:,.0f}" for s in m["round_s"])
            print(f"[{pair + 1}B] suite {case['case_id']}: {m['samples_per_second']['median']:,.0f} samples/s "
                  f"(rounds {rounds}; {m['units_per_round']} {'pass(es)' if m['round_unit'] == 'pass' else 'steps'} per round)",
                  flush=True)
    tutorial_median, suite_median = statistics.median(tutorial_sps), statistics.median(suite_sps)
    ratio = suite_median / tutorial_median
    pooled = statistics.median(suite_rounds) / statistics.median(tutorial_epochs)
    agree = abs(ratio - 1) <= args.tolerance
    print(f"pooled over every epoch / round: tutorial {statistics.median(tutorial_epochs):,.0f}, suite "
          f"{statistics.median(suite_rounds):,.0f} samples/s (ratio {pooled:.3f})")
    print(f"tutorial {tutorial_median:,.0f} samples/s, suite {suite_median:,.0f} samples/s (medians of the per-run "
          f"medians): suite / tutorial = {ratio:.3f} ({'within' if agree else 'outside'} ±{args.tolerance:.0%})")
    return 0 if agree else 1


if __name__ == "__main__":
    sys.exit(main())
