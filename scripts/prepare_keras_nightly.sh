#!/usr/bin/env bash
# The next Keras beside this one: installs the pinned keras-nightly into its own folder, for
# configs/keras-next.toml ([environments.nightly] pythonpath = ".envs/keras-nightly").
#
# Its own folder (pip install --target, no dependencies): the worker processes of that environment put it
# first on PYTHONPATH, so its `keras` shadows the tool's own, and nothing else changes (numpy, JAX, TensorFlow
# stay the tool's). The two Keras versions never share one PYTHONPATH.
#
#   scripts/prepare_keras_nightly.sh                 # .whl-nightly/<wheel> and .envs/keras-nightly
#   KERAS_NIGHTLY_VERSION=3.16.0.devN scripts/prepare_keras_nightly.sh
#   PYTHON=.venv/bin/python scripts/prepare_keras_nightly.sh
#
# The wheel stays in .whl-nightly/ (pure Python, py3-none-any), so a machine without network (the lent GPU
# machine) can install the same file with: pip install --no-index --no-deps --target DIR .whl-nightly/*.whl
set -euo pipefail
# keras-team/keras#23527 (steps_per_execution as one jitted lax.scan) is in this build and in no release yet.
VERSION=${KERAS_NIGHTLY_VERSION:-3.16.0.dev2026102704}
DEST=${1:-.envs/keras-nightly}
WHEELS=${KERAS_NIGHTLY_WHEELS:-.whl-nightly}
PY=${PYTHON:-python3}

mkdir -p "$WHEELS"
wheel="$WHEELS/keras_nightly-$VERSION-py3-none-any.whl"
if [ ! -f "$wheel" ]; then
  rm -f "$WHEELS"/keras_nightly-*.whl  # one pinned wheel: the device run installs whatever is here
  "$PY" -m pip download -q --no-deps --only-binary=:all: -d "$WHEELS" "keras-nightly==$VERSION"
fi
rm -rf "$DEST"
"$PY" -m pip install -q --no-deps --no-compile --no-index --target "$DEST" "$wheel"
KERAS_BACKEND=jax PYTHONPATH="$DEST" "$PY" -c \
  "import keras; print('keras', keras.__version__, 'from', keras.__file__)" 2>/dev/null
