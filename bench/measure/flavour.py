"""Which Keras a worker process measures: Keras 3 (``import keras``) or Keras 2 (``tf_keras``).

The ``[train] keras`` axis. ``tf_keras`` is the legacy Keras 2 for TensorFlow — what ``tf.keras`` is when
``TF_USE_LEGACY_KERAS=1`` — and the one Keras whose ``fit`` trains under ``MultiWorkerMirroredStrategy``
today (Keras 3's fails, keras-team/keras#20585). A worker process serves one flavour: the sweep starts it
with ``BENCH_KERAS`` set (and ``TF_USE_LEGACY_KERAS=1`` for tf_keras, so ``tf.keras`` inside TensorFlow
is the same Keras the case builds with), and the measuring code asks :func:`keras` for its module instead of
importing ``keras`` itself. The two APIs the suite uses differ only in the global dtype policy, bridged by
:func:`dtype_policy` and :func:`set_dtype_policy`.
"""

from __future__ import annotations

import importlib.util
import os
from types import ModuleType

ENV_VAR = "BENCH_KERAS"
DEFAULT = "keras3"
TF_KERAS = "tf_keras"


def unsupported(backend: str, keras_flavour: str) -> str | None:
    """Why a flavour cannot run here (a skipped case), or None. Looks the package up without importing it."""
    if keras_flavour == DEFAULT:
        return None
    if backend != "tensorflow":
        return (f"{keras_flavour} is Keras 2 for TensorFlow only (this case runs on {backend}); Keras 3 is the Keras "
                "of every backend")
    if importlib.util.find_spec(keras_flavour) is None:
        return f"{keras_flavour} is not installed (pip install tf_keras, the release matching TensorFlow's)"
    return None


def name() -> str:
    """The flavour this process measures ("keras3" unless the sweep started it for tf_keras)."""
    return os.environ.get(ENV_VAR, DEFAULT) or DEFAULT


def keras() -> ModuleType:
    """The Keras module of this process: ``tf_keras`` for the tf_keras flavour, else Keras 3."""
    if name() == TF_KERAS:
        import tf_keras

        return tf_keras
    import keras as keras3

    return keras3


def version() -> str:
    return str(getattr(keras(), "__version__", "?"))


def jit_compile_argument(value: bool | str) -> bool | str | None:
    """``compile(jit_compile=...)`` for this flavour. Keras 3 takes "auto" (XLA where the model and strategy
    allow it); tf_keras has no "auto" — any non-None value is truthy and compiles with XLA — and its own
    default, None, is what "auto" means there (XLA off, on TPUs on)."""
    return None if value == "auto" and name() == TF_KERAS else value


def steps_per_execution(model: object) -> int:
    """The compiled ``steps_per_execution`` as an int: Keras 3 keeps an int, tf_keras a variable (a
    ``MirroredVariable`` under a strategy, which ``int()`` refuses)."""
    value = model.steps_per_execution  # type: ignore[attr-defined]
    return int(value.numpy()) if hasattr(value, "numpy") else int(value)


def dtype_policy() -> object:
    """The global dtype policy (Keras 3 ``dtype_policy()``, Keras 2 ``global_policy()``)."""
    mp = keras().mixed_precision
    return mp.global_policy() if name() == TF_KERAS else mp.dtype_policy()


def set_dtype_policy(policy: object) -> None:
    mp = keras().mixed_precision
    if name() == TF_KERAS:
        mp.set_global_policy(policy)
    else:
        mp.set_dtype_policy(policy)
