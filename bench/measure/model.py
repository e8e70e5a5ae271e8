"""The reference MLP and its training set-up, exactly as the question that started this suite.

Input(784) -> Dense(512, relu) -> Dropout(0.2) -> Dense(256, relu) -> Dropout(0.2) -> Dense(10, softmax)
(the shape is :mod:`bench.mlp_spec`'s, which the FLOP count reads too), Adam(1e-3), sparse categorical cross-entropy, accuracy. Imported only inside worker processes, after the
backend and devices are fixed.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from bench import mlp_spec
from bench.measure import flavour

LEARNING_RATE = 1e-3


@contextlib.contextmanager
def precision_policy(precision: str) -> Iterator[None]:
    """Set the global Keras dtype policy for one case and restore the previous one afterwards.

    The policy is process-global state in Keras; leaving it set would silently turn the next case (or
    the next test) into a mixed-precision one.
    """
    previous = flavour.dtype_policy()  # Keras 3 or tf_keras, whichever this process measures
    flavour.set_dtype_policy(precision)
    try:
        yield
    finally:
        flavour.set_dtype_policy(previous)


def build_model(seed: int = 0, uint8_input: bool = False) -> Any:
    """The reference MLP under the current dtype policy; the softmax output stays float32.

    Without dtype="float32" on the last layer, mixed precision would return float16/bfloat16
    probabilities, which is both numerically poor and not what the reference computes.

    ``uint8_input``: the model takes the raw uint8 pixels and scales them itself (``Rescaling(1/255)``,
    computed in float32 whatever the policy, as the float input is): the same maths as feeding
    ``pixels / 255`` (within one float32 rounding: x * (1/255) is not always x / 255), a quarter of the bytes
    fed per step. The layer has no weights, so the Dense layers draw the same initial weights.
    """
    keras = flavour.keras()  # Keras 3, or tf_keras for the legacy Keras 2 row
    layers = keras.layers

    keras.utils.set_random_seed(seed)
    shape = (mlp_spec.INPUT_FEATURES,)
    first = ([keras.Input(shape=shape, dtype="uint8"), layers.Rescaling(1.0 / 255, dtype="float32")]
             if uint8_input else [keras.Input(shape=shape)])
    hidden = [layer for units, activation in mlp_spec.HIDDEN
              for layer in (layers.Dense(units, activation=activation), layers.Dropout(mlp_spec.DROPOUT_RATE))]
    return keras.Sequential(
        [*first, *hidden,
         layers.Dense(mlp_spec.CLASSES, activation=mlp_spec.OUTPUT_ACTIVATION, dtype="float32")],
        name="mnist_mlp",
    )


def compile_model(model: Any, jit_compile: bool | str, steps_per_execution: int = 1) -> None:
    """Adam(1e-3) + sparse categorical cross-entropy, passed explicitly every time.

    ``model.compile(jit_compile=False)`` alone would silently swap Adam for RMSprop (Keras' default
    optimizer), so recompiles elsewhere go through this function too. Under a ``mixed_float16`` policy
    Keras wraps the optimizer in a LossScaleOptimizer itself (``auto_scale_loss=True``).
    """
    keras = flavour.keras()

    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=LEARNING_RATE),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
        jit_compile=flavour.jit_compile_argument(jit_compile),
        steps_per_execution=steps_per_execution,
    )


def optimizer_name(model: Any) -> str:
    """E.g. 'Adam' or 'LossScaleOptimizer(Adam)' — recorded so loss scaling is visible in results."""
    opt = model.optimizer
    inner = getattr(opt, "inner_optimizer", None)
    return f"{type(opt).__name__}({type(inner).__name__})" if inner is not None else type(opt).__name__
