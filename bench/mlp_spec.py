"""The reference MLP's shape, with no framework: the one description that ``bench.measure.model`` (Keras),
``bench.measure.native`` (the hand-written loops) build from and ``bench.analyze.flops`` counts.

Input(784) -> Dense(512, relu) -> Dropout(0.2) -> Dense(256, relu) -> Dropout(0.2) -> Dense(10, softmax):
the model of the question that started this suite. Change it here and every builder and the FLOP count
follow; nothing else types the layer sizes.
"""

from __future__ import annotations

INPUT_FEATURES = 784
CLASSES = 10
DROPOUT_RATE = 0.2
# (units, activation) of each hidden Dense layer, each followed by Dropout(DROPOUT_RATE).
HIDDEN: tuple[tuple[int, str], ...] = ((512, "relu"), (256, "relu"))
OUTPUT_ACTIVATION = "softmax"


def dense_shapes() -> tuple[tuple[int, int], ...]:
    """(fan_in, fan_out) of every Dense layer, input to output: ((784, 512), (512, 256), (256, 10))."""
    sizes = [INPUT_FEATURES, *(units for units, _ in HIDDEN), CLASSES]
    return tuple(zip(sizes[:-1], sizes[1:], strict=False))


DENSE_SHAPES = dense_shapes()
