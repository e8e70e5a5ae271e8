"""The GPU run's verdict, printed last by scripts/device_run.sh: does Keras show the GPU?

Per global batch (4096 and 16 384 by default) and precision: the best Keras configuration (over input,
steps_per_execution, jit_compile) with its samples/s, its ratio to the native step loop (target >= 0.5)
and NVML busy % (target >= 70 %); the mixed_bfloat16 / float32 speed-up of the best Keras configuration
beside the native loop's; the bottleneck sentence of bench.analyze.bottleneck; and, when given, the step
profile of scripts/step_profile.py.

    python scripts/gpu_summary.py RESULTS.json [--profile profile.json] [--batches 4096 16384]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.analyze.bottleneck import derive_tables, rate  # noqa: E402
from bench.store.results import load_run  # noqa: E402

RATIO_TARGET, BUSY_TARGET = 0.5, 70.0


def _mark(value: float | None, target: float) -> str:
    if value is None:
        return "n/a"
    return "meets target" if value >= target else "BELOW target"


def summary_lines(document: dict, batches: list[int], profile: dict | None = None) -> list[str]:
    tables = document.get("derived") or {}
    if "where_the_time_goes" not in tables:
        tables = derive_tables(document["cases"])
    lines = [f"run {document.get('run_id')}: data {document.get('data', {}).get('source')}"]
    rows = [r for r in tables["where_the_time_goes"] if r["global_batch"] in batches]
    for row in rows:
        ratio, util = row["native_ratio"], row["utilization_pct"]
        ratio_text = f"{ratio:.2f}" if ratio is not None else "n/a"
        util_text = f"{util:.0f} %" if util is not None else "n/a"
        # Rows are per [train] environment (another Keras beside this one); host vs device per step where measured.
        keras = f" Keras {row['keras_version']}" if row.get("keras_version") else ""
        host, device = row.get("host_us_per_step"), row.get("device_us_per_step")
        host_text = (f", host {host:,.0f} µs/step vs device {device:,.0f} µs/step" if host is not None and device is not None
                     else f", host {host:,.0f} µs/step" if host is not None else "")
        lines.append(
            f"{row['backend']}{keras} batch {row['global_batch']:>6} {row['precision']:<15} best Keras "
            f"{rate(row['best_samples_per_second']):>18} "
            f"[{row['best_config']}] native ratio {ratio_text} ({_mark(ratio, RATIO_TARGET)} >= {RATIO_TARGET}), "
            f"NVML busy {util_text} ({_mark(util, BUSY_TARGET)} >= {BUSY_TARGET:.0f} %){host_text}")
    for row in tables["mixed_precision_speedups"]:
        if row["global_batch"] in batches and row["gpus"] == 1:
            native = f"{row['native_speedup']:.2f}x" if row["native_speedup"] is not None else "n/a"
            lines.append(f"{row['backend']} batch {row['global_batch']:>6} {row['policy']}/float32: best Keras {row['speedup']:.2f}x "
                         f"(float32 input {row['float32_input']}, {row['policy']} input {row['mixed_input']}), "
                         f"native loop {native}")
    lines += [f"bottleneck: {row['sentence']}" for row in rows]
    for p in (profile or {}).get("profiles", []):
        lines.append(f"profile: {p['sentence']}")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results")
    parser.add_argument("--profile")
    parser.add_argument("--batches", type=int, nargs="+", default=[4096, 16384])
    args = parser.parse_args(argv)
    profile = json.loads(Path(args.profile).read_text()) if args.profile and Path(args.profile).is_file() else None
    print("\n".join(summary_lines(load_run(args.results), args.batches, profile)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
