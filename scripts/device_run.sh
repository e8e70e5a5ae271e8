#!/usr/bin/env bash
# One prepared run on a GPU machine that has JAX and PyTorch but no TensorFlow (the lent GPU machine):
# Keras 3 travels as wheels in .whl/ (see ../shared/device/README.md), runs on the JAX backend, and
# the sweep writes its results and report under $OUT. Prints a short table last.
set -u
OUT=${OUT:-/tmp/out}
python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD KERAS_BACKEND=jax XLA_PYTHON_CLIENT_PREALLOCATE=false PYTHONUNBUFFERED=1
mkdir -p "$OUT/results" "$OUT/report"
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv
python3 -c "import jax, keras; print('jax', jax.__version__, jax.devices(), 'keras', keras.__version__)"

CONFIG=${1:-configs/gpu-jax.toml}
python3 -m bench run --config "$CONFIG" --results-dir "$OUT/results" --quiet 2>&1 | tee "$OUT/run.log" | tail -60
run=$(ls -t "$OUT"/results/*.json 2>/dev/null | head -1)
[ -n "$run" ] || { echo "no results file"; tar czf "$OUT/logs.tgz" -C "$OUT/results" . 2>/dev/null; exit 1; }
python3 -m bench report "$run" -o "$OUT/report/index.html" || true
tar czf "$OUT/logs.tgz" -C "$OUT/results" --exclude='*.json' . 2>/dev/null
python3 -m pytest tests/test_nvml.py -q -p no:cacheprovider 2>&1 | tail -2
python3 - "$run" <<'PY'
import sys
from bench.results import cases_frame
f = cases_frame(sys.argv[1])
cols = [c for c in ["case_id", "status", "samples_per_second.median", "samples_per_second.cv", "native_ratio",
        "gpu_metrics.aggregate.utilization_pct_mean", "gpu_metrics.devices", "monitor_overhead.overhead_pct"] if c in f.columns]
import pandas as pd
pd.set_option("display.width", 250); pd.set_option("display.max_colwidth", 60)
print(f[[c for c in cols if c != "gpu_metrics.devices"]].to_string(index=False))
PY
