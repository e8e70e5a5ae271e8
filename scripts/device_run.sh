#!/usr/bin/env bash
# One prepared run on a GPU machine that has JAX and PyTorch but no TensorFlow (the lent GPU machine):
# Keras 3 travels as wheels in .whl/ (see ../shared/device/README.md) and runs on the JAX backend.
# Writes to $OUT: the results file, its HTML report, the run's console log and the worker logs (tgz);
# prints a short table last. The tree arrives without .git: pass BENCH_GIT_COMMIT=<sha> to record it.
set -u
OUT=${OUT:-/tmp/out}
RESULTS=/tmp/bench-results
python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD KERAS_BACKEND=jax XLA_PYTHON_CLIENT_PREALLOCATE=false PYTHONUNBUFFERED=1
mkdir -p "$OUT" "$RESULTS"
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv
python3 -c "import jax, keras; print('jax', jax.__version__, jax.devices(), 'keras', keras.__version__)"

CONFIG=${1:-configs/gpu-jax.toml}
python3 -m bench run --config "$CONFIG" --results-dir "$RESULTS" 2>&1 | tee "$OUT/run.log" | grep -v "^\[" | tail -45
tar czf "$OUT/worker-logs.tgz" -C "$RESULTS" . 2>/dev/null
run=$(ls -t "$RESULTS"/*.json 2>/dev/null | head -1)
[ -n "$run" ] || { echo "no results file"; exit 1; }
cp "$run" "$OUT/"
python3 -m bench report "$run" -o "$OUT/report.html" || true
python3 -m pytest tests/test_nvml.py -q -p no:cacheprovider 2>&1 | tail -1
python3 - "$run" <<'PY'
import sys
import pandas as pd
from bench.store.results import cases_frame
f = cases_frame(sys.argv[1])
want = ["case_id", "status", "samples_per_second.median", "samples_per_second.cv", "native_ratio",
        "native_ratio_ceiling", "gpu_metrics.aggregate.utilization_pct_mean", "gpu_metrics.samples_in_window",
        "monitor_overhead.overhead_pct", "total_s"]
pd.set_option("display.width", 250); pd.set_option("display.max_colwidth", 52)
print(f[[c for c in want if c in f.columns]].to_string(index=False, float_format=lambda v: f"{v:,.3g}"))
for case in (c for c in __import__("bench.store.results", fromlist=["load_run"]).load_run(sys.argv[1])["cases"]
             if c["suite"] == "train" and c["status"] == "ok"):
    for d in case["metrics"]["gpu_metrics"].get("devices", []):
        print(case["case_id"], d.get("name"), "util", d.get("utilization_pct"), "mem_peak_mib", d.get("memory_used_peak_mib"),
              "power_w", d.get("power_mean_w"), "n", d.get("samples_in_window"), "throttle", d.get("throttle_reasons"))
    break
PY
