#!/usr/bin/env bash
# One prepared time-to-accuracy run on the lent GPU machine (JAX and PyTorch, no TensorFlow, no network,
# no view of ../shared): Keras 3 travels as wheels in .whl/ (see ../shared/device/README.md) and real
# MNIST as .whl/mnist.npz — once, here: cp ../shared/data/mnist.npz .whl/ — and the run carries ".whl".
# The file goes into a Keras cache under /tmp (KERAS_HOME), where the suite recognises it by its arrays.
# Writes to $OUT: the results file (or the partial log if cut short), its HTML report, the console log and
# the worker logs (tgz); prints a short table last. The sweep is interrupted (SIGINT: finished cases are
# kept) after BENCH_MAX_S seconds (default 420) so the whole call stays under 8 minutes.
# The tree arrives without .git: pass BENCH_GIT_COMMIT=<sha> to record it.
set -u
OUT=${OUT:-/tmp/out}
RESULTS=/tmp/bench-results
[ -f .whl/mnist.npz ] || { echo "no .whl/mnist.npz: copy ../shared/data/mnist.npz into .whl/ and carry .whl"; exit 1; }
python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD KERAS_BACKEND=jax XLA_PYTHON_CLIENT_PREALLOCATE=false PYTHONUNBUFFERED=1
export KERAS_HOME=/tmp/keras-home
mkdir -p "$OUT" "$RESULTS" "$KERAS_HOME/datasets"
cp .whl/mnist.npz "$KERAS_HOME/datasets/mnist.npz"
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv
python3 -c "import jax, keras; print('jax', jax.__version__, jax.devices(), 'keras', keras.__version__)"

CONFIG=${1:-configs/converge.toml}
timeout -s INT "${BENCH_MAX_S:-420}" python3 -m bench run --config "$CONFIG" --results-dir "$RESULTS" 2>&1 \
  | tee "$OUT/run.log" | grep -v "^\[" | tail -20
tar czf "$OUT/worker-logs.tgz" -C "$RESULTS" . 2>/dev/null
run=$(ls -t "$RESULTS"/*.json 2>/dev/null | head -1)
if [ -z "$run" ]; then
  cp "$RESULTS"/*.partial.jsonl "$OUT/" 2>/dev/null
  echo "no results file (interrupted?): the partial log is in \$OUT; resume it with --resume"
  exit 1
fi
cp "$run" "$OUT/"
python3 -m bench report "$run" -o "$OUT/report.html" || true
python3 - "$run" <<'PY'
import sys
import pandas as pd
from bench.analyze.convergence import case_table, reference_rows, tradeoffs
from bench.store.results import load_run
run = load_run(sys.argv[1])
table = case_table(run)
pd.set_option("display.width", 250)
cols = ["global_batch", "precision", "lr_scaling", "learning_rate", "status", "converged", "seeds",
        "seconds_to_target", "seconds_q1", "seconds_q3", "epochs_to_target", "epoch_s", "final_accuracy"]
print(table[[c for c in cols if c in table.columns]].to_string(index=False, float_format=lambda v: f"{v:,.4g}"))
for sentence in tradeoffs(table):
    print(sentence)
for row in reference_rows(table):
    print(row)
for case in run["cases"]:
    if case["status"] not in ("ok", "not_converged"):
        print(case["status"], case["case_id"], case.get("reason"))
PY
