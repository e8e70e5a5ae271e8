#!/usr/bin/env bash
# One prepared run on a GPU machine that has JAX and PyTorch but no TensorFlow (the lent GPU machine):
# Keras 3 travels as wheels in .whl/ (see ../shared/device/README.md) and runs on the JAX backend; real
# MNIST travels as .whl/mnist.npz when it is there (the machine has no network; without it the run uses
# synthetic data and says so). Sized to finish under 8 minutes on an H200:
#   1. the sweep (configs/gpu-jax.toml: input path x steps_per_execution x batch x precision, native loop, NVML);
#   2. a profile of one step per batch and precision (scripts/step_profile.py, 16 384 first; written after
#      each configuration, so a cut-short profile keeps what it measured) and a jax.profiler trace;
#   3. last, the verdict per batch 4096 and 16 384 (scripts/gpu_summary.py): best Keras samples/s, native
#      ratio (target >= 0.5), NVML busy % (target >= 70 %), mixed_bfloat16/float32 speed-up vs the native loop's.
# Writes to $OUT: the results file, its HTML report, the profile (JSON and trace), the console logs and the
# worker logs (tgz). The tree arrives without .git: pass BENCH_GIT_COMMIT=<sha> to record it.
set -u
OUT=${OUT:-/tmp/out}
RESULTS=/tmp/bench-results
START=$(date +%s)
python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD KERAS_BACKEND=jax XLA_PYTHON_CLIENT_PREALLOCATE=false PYTHONUNBUFFERED=1
mkdir -p "$OUT" "$RESULTS"
if [ -f .whl/mnist.npz ]; then
  # The Keras cache is where [data] source = "auto" looks first (checksum verified).
  export KERAS_HOME=/tmp/keras-home
  mkdir -p "$KERAS_HOME/datasets" && cp .whl/mnist.npz "$KERAS_HOME/datasets/mnist.npz"
fi
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv
python3 -c "import jax, keras; print('jax', jax.__version__, jax.devices(), 'keras', keras.__version__)"

CONFIG=${1:-configs/gpu-jax.toml}
# SIGINT past the budget: the sweep stops and writes the finished cases to its results file (complete: false).
timeout -s INT 345 python3 -m bench run --config "$CONFIG" --results-dir "$RESULTS" 2>&1 | tee "$OUT/run.log" \
  | grep -v "^\[" | tail -40
echo "sweep done after $(( $(date +%s) - START )) s"
# An interrupted sweep still writes its results file (complete: false); without one, nothing was measured.
run=$(ls -t "$RESULTS"/*.json 2>/dev/null | head -1)
if [ -z "$run" ]; then
  cp "$RESULTS"/*.partial.jsonl "$OUT/" 2>/dev/null
  echo "no results file: the partial log (if any) is in \$OUT; resume it with --resume"
  exit 1
fi
tar czf "$OUT/worker-logs.tgz" -C "$RESULTS" --exclude "*.json" . 2>/dev/null
cp "$run" "$OUT/"

# A step taken apart (host vs device), while the sweep's numbers are fresh; bounded so the verdict prints.
timeout 60 python3 scripts/step_profile.py --batches 16384 4096 --precisions float32 mixed_bfloat16 \
  --steps 300 --out "$OUT/profile.json" --trace /tmp/trace 2>&1 | grep -v -i "warning" | tail -8
tar czf "$OUT/trace.tgz" -C /tmp trace 2>/dev/null
echo "profile done after $(( $(date +%s) - START )) s"

timeout 20 python3 -m bench report "$run" -o "$OUT/report.html" >/dev/null 2>&1 || echo "report: failed"
python3 - "$run" <<'PY'
import sys
import pandas as pd
from bench.store.results import cases_frame
f = cases_frame(sys.argv[1])
want = ["case_id", "status", "samples_per_second.median", "samples_per_second.cv", "native_ratio",
        "gpu_metrics.aggregate.utilization_pct_mean", "gpu_metrics.samples_in_window", "total_s"]
pd.set_option("display.width", 250); pd.set_option("display.max_colwidth", 72)
print(f[[c for c in want if c in f.columns]].to_string(index=False, float_format=lambda v: f"{v:,.3g}"))
PY
echo "=== verdict ($(( $(date +%s) - START )) s) ==="
python3 scripts/gpu_summary.py "$run" --profile "$OUT/profile.json" --batches 4096 16384
