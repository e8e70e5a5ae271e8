# Sourced by scripts/device_run.sh and scripts/device_converge.sh, on the lent GPU machine (an H100 or an H200:
# Python 3.12 with JAX and torch, no TensorFlow, Keras, pydantic or tomli-w, no network, no view of ../shared).
# What travels and why is scripts/device_packages.toml; `python3 scripts/device_wheels.py` fills .whl/ (and
# .whl-nightly/) here, and each call carries them. `nox -s device_rehearsal` runs these scripts on a CPU in an
# environment holding only the machine's packages and those wheels, so a missing import fails CI, not the lease.
#
# Settings (environment variables; the defaults are the GPU run's):
#   OUT              where files come back from (the device tool sets it; at most 8 files of 16 MiB each)
#   BENCH_SITE       the --target folder the carried wheels go into (default /tmp/site; the nightly: $BENCH_SITE-nightly)
#   BENCH_RESULTS    the results folder (default: a fresh one under /tmp, so an older run is never picked up)
OUT=${OUT:-/tmp/out}
SITE=${BENCH_SITE:-/tmp/site}
RESULTS=${BENCH_RESULTS:-$(mktemp -d /tmp/bench-results.XXXXXX)}
OUT_FILES_MAX=8
OUT_FILE_MAX_BYTES=$((16 * 1024 * 1024))
START=$(date +%s)
mkdir -p "$OUT" "$RESULTS"

elapsed() { echo "$(( $(date +%s) - START )) s"; }

# The device recipe (../shared/device/README.md): carried wheels into a --target folder on PYTHONPATH, never
# pip install -e (no network there). Then every module the run needs is imported once, here, so a wheel that
# is missing stops the call in seconds with the module's name rather than minutes into the sweep.
install_carried() {
  if ! ls .whl/*.whl >/dev/null 2>&1; then
    echo "no wheels in .whl/: run python3 scripts/device_wheels.py on the machine with the network, and carry .whl"
    return 1
  fi
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" .whl/*.whl \
    || return 1
  export PYTHONPATH=$SITE:$PWD KERAS_BACKEND=jax XLA_PYTHON_CLIENT_PREALLOCATE=false PYTHONUNBUFFERED=1
  if [ -f .whl/mnist.npz ]; then
    # The Keras cache is where [data] source = "auto" looks first (MNIST recognised by its arrays).
    export KERAS_HOME=${KERAS_HOME:-/tmp/keras-home}
    mkdir -p "$KERAS_HOME/datasets" && cp .whl/mnist.npz "$KERAS_HOME/datasets/mnist.npz"
  fi
  if command -v nvidia-smi >/dev/null 2>&1; then
    nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv
  else
    echo "no nvidia-smi: no GPU here (the CPU rehearsal?)"
  fi
  python3 - <<'PY' || { echo "an import failed: the carried wheels do not cover what the code imports (scripts/device_packages.toml)"; return 1; }
import importlib
for name in ("bench.cli", "bench.commands.run", "bench.run.worker", "bench.run.ab", "bench.store.results",
             "bench.report.page", "bench.analyze.derive", "pytest_benchmark", "pynvml"):
    importlib.import_module(name)
import jax, keras, pydantic
print("python", __import__("sys").version.split()[0], "jax", jax.__version__, jax.devices(), "keras", keras.__version__,
      "pydantic", pydantic.VERSION)
PY
}

# The device tool brings back at most 8 files of at most 16 MiB each: say what would not come back, and drop
# a file over the size (it would not arrive anyway, and its absence must not hide the others).
check_out() {
  local f size count=0
  for f in "$OUT"/*; do
    [ -f "$f" ] || continue
    count=$((count + 1))
    size=$(stat -c %s "$f")
    if [ "$size" -gt "$OUT_FILE_MAX_BYTES" ]; then
      echo "out: $(basename "$f") is $((size / 1048576)) MiB, over the 16 MiB that comes back: removed"
      rm -f "$f"
      count=$((count - 1))
    fi
  done
  if [ "$count" -gt "$OUT_FILES_MAX" ]; then
    echo "out: $count files, but only $OUT_FILES_MAX come back"
  fi
}
