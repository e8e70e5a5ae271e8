#!/usr/bin/env bash
# One prepared time-to-accuracy run on the lent GPU machine (an H100 or an H200; JAX and torch, no TensorFlow,
# no network, no view of ../shared): Keras 3 from the wheels in .whl/ and real MNIST as .whl/mnist.npz, both put
# there by `python3 scripts/device_wheels.py` (scripts/device_common.sh says how they travel); carry ".whl".
# The file goes into a Keras cache under /tmp (KERAS_HOME), where the suite recognises it by its arrays.
# Writes to $OUT: the results file (or the partial log if cut short), its HTML report, the console log and
# the worker logs (tgz); prints a short table last. The sweep is interrupted (SIGINT: finished cases are
# kept) after BENCH_MAX_S seconds (default 420) so the whole call stays under 8 minutes on either kind.
# The tree arrives without .git: pass BENCH_GIT_COMMIT=<sha> to record it.
#   bash scripts/device_converge.sh [CONFIG [ARGS for python -m bench run ...]]
set -u
cd "$(dirname "$0")/.."
. scripts/device_common.sh
[ -f .whl/mnist.npz ] || { echo "no .whl/mnist.npz: run python3 scripts/device_wheels.py where ../shared/data/mnist.npz is, and carry .whl"; exit 1; }
install_carried || exit 1

CONFIG=${1:-configs/converge.toml}
timeout -s INT "${BENCH_MAX_S:-420}" python3 -m bench run --config "$CONFIG" --results-dir "$RESULTS" "${@:2}" 2>&1 \
  | tee "$OUT/run.log" | grep -v "^\[" | tail -20
tar czf "$OUT/worker-logs.tgz" -C "$RESULTS" --exclude "*.json" . 2>/dev/null
run=$(ls -t "$RESULTS"/*.json 2>/dev/null | head -1)
if [ -z "$run" ]; then
  cp "$RESULTS"/*.partial.jsonl "$OUT/" 2>/dev/null
  echo "no results file (interrupted?): the partial log is in \$OUT; resume it with --resume"
  exit 1
fi
cp "$run" "$OUT/"
timeout 30 python3 -m bench report "$run" -o "$OUT/report.html" >/dev/null 2>&1 || echo "report: failed"
check_out
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
