#!/usr/bin/env bash
# One prepared run on the lent GPU machine (an H100 or an H200; JAX and torch, no TensorFlow, no network):
# Keras 3 on the JAX backend, from the wheels in .whl/ (scripts/device_common.sh says how they travel).
#
#   here, once:  python3 scripts/device_wheels.py           # .whl/ (+ mnist.npz) and .whl-nightly/
#   there:       bash scripts/device_run.sh [CONFIG [ARGS for python -m bench run ...]]   carrying .whl and .whl-nightly
#
# Sized to finish under 8 minutes on either kind (budgets below; the slower start-up counted):
#   1. the sweep (configs/gpu-jax.toml: input path x steps_per_execution x batch x precision, native loop, NVML),
#      interrupted with SIGINT after BENCH_MAX_S (400 s; finished cases are kept, complete: false). When
#      .whl-nightly/ holds keras-nightly, it goes into its own --target folder and the sweep runs every train case
#      under Keras 3.15.1 and under the nightly as two environments, interleaved ([environments.nightly]); batch
#      256 and the nightly's spe 1 cases are then left out (-k, unless ARGS has its own) and each process times
#      3 rounds, to stay within the budget: the questions are at 4096 and 16 384;
#   2. a profile of one step per batch and precision (scripts/step_profile.py, at most 60 s; written after each
#      configuration, so a cut-short profile keeps what it measured) and a jax.profiler trace;
#   3. last, the verdict per batch (scripts/gpu_summary.py): best Keras samples/s, native ratio (target >= 0.5),
#      NVML busy % (target >= 70 %), mixed_bfloat16/float32 speed-up vs the native loop's.
# Writes to $OUT (at most 8 files, each under 16 MiB): the results file, its HTML report, run.log, the worker
# logs (tgz), profile.json, trace.tgz. The tree arrives without .git: pass BENCH_GIT_COMMIT=<sha> to record it.
# The rehearsal (nox -s device_rehearsal) shrinks it with ARGS and BENCH_PROFILE_BATCHES, BENCH_PROFILE_STEPS,
# BENCH_PROFILE_PRECISIONS, BENCH_VERDICT_BATCHES.
set -u
cd "$(dirname "$0")/.."
. scripts/device_common.sh
SWEEP_MAX_S=${BENCH_MAX_S:-400}
PROFILE_BATCHES=${BENCH_PROFILE_BATCHES:-16384 4096}
PROFILE_STEPS=${BENCH_PROFILE_STEPS:-300}
PROFILE_PRECISIONS=${BENCH_PROFILE_PRECISIONS:-float32 mixed_bfloat16}
VERDICT_BATCHES=${BENCH_VERDICT_BATCHES:-4096 16384}
install_carried || exit 1

CONFIG=${1:-configs/gpu-jax.toml}
ARGS=("${@:2}")
if ls .whl-nightly/*.whl >/dev/null 2>&1; then
  # Its own folder, first on the nightly workers' PYTHONPATH only: two Keras never share one path.
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE-nightly" \
    .whl-nightly/*.whl || exit 1
  nightly=$(PYTHONPATH="$SITE-nightly:$PYTHONPATH" python3 -c "import keras; print(keras.__version__)") || exit 1
  echo "keras-nightly $nightly (development build) in $SITE-nightly: every train case runs under both Keras"
  ARGS+=(--set "environments.nightly.pythonpath=\"$SITE-nightly\""
         --set "environments.nightly.label=\"keras-nightly $nightly, development build\""
         --set 'train.environment=["default", "nightly"]')
  # The nightly's question is steps_per_execution > 1 (one jitted lax.scan per execution): its spe 1 cases are
  # left out with batch 256, and 3 rounds per process (the interval comes from the processes). At one GPU
  # `bench.run.estimate` puts the 23 cases (15 train, 8 native; 2 processes each, a 5 s compile allowance per
  # process and case) at about 6 min 25 s, inside SWEEP_MAX_S; a slower start keeps every case's first process
  # (interleaved passes) and loses some second ones.
  [[ " ${ARGS[*]} " == *" -k "* ]] || ARGS+=(-k "not batch=256/ and not spe=1/env=nightly")
  [[ " ${ARGS[*]} " == *"measure.rounds="* ]] || ARGS+=(--set measure.rounds=3)
fi

# The plan and its estimate first (no framework imported): the log says what was meant to run.
python3 -m bench run --config "$CONFIG" "${ARGS[@]}" --dry-run 2>&1 | tail -4
# SIGINT past the budget: the sweep stops and writes the finished cases to its results file (complete: false).
timeout -s INT "$SWEEP_MAX_S" python3 -m bench run --config "$CONFIG" --results-dir "$RESULTS" "${ARGS[@]}" 2>&1 \
  | tee "$OUT/run.log" | grep -v "^\[" | tail -40
echo "sweep done after $(elapsed)"
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
# shellcheck disable=SC2086  # the batch lists are word lists
TRACE=$(mktemp -d /tmp/bench-trace.XXXXXX)
timeout 60 python3 scripts/step_profile.py --batches $PROFILE_BATCHES --precisions $PROFILE_PRECISIONS \
  --steps "$PROFILE_STEPS" --out "$OUT/profile.json" --trace "$TRACE/trace" 2>&1 | grep -v -i "warning" | tail -8
[ -d "$TRACE/trace" ] && tar czf "$OUT/trace.tgz" -C "$TRACE" trace 2>/dev/null
echo "profile done after $(elapsed)"

timeout 30 python3 -m bench report "$run" -o "$OUT/report.html" >/dev/null 2>&1 || echo "report: failed"
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
check_out
echo "=== verdict ($(elapsed)) ==="
# shellcheck disable=SC2086
python3 scripts/gpu_summary.py "$run" --profile "$OUT/profile.json" --batches $VERDICT_BATCHES
