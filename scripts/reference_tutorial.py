"""The reference tutorial's training script, as its readers run it (TensorFlow's MirroredStrategy MNIST tutorial).

MirroredStrategy over every visible device; the reference MLP built and compiled inside
``strategy.scope()``; ``from_tensor_slices`` → ``shuffle(1024)`` → ``batch(64 × replicas)``, no prefetch;
5 epochs; each epoch timed by the script's own callback; test accuracy at the end. The only additions
are for running it beside the suite (scripts/tutorial_crosscheck.py): ``--npz`` (this machine cannot
download MNIST), ``--logical-cpus N`` (N logical CPU devices stand in for GPUs, as the suite's
``[devices] simulate``) and ``--json-out`` (the epoch times, for the cross-check to read).

    python scripts/reference_tutorial.py --npz ../shared/data/mnist.npz --logical-cpus 2
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--npz", help="an mnist.npz (default: keras.datasets.mnist.load_data())")
parser.add_argument("--logical-cpus", type=int, default=0, help="carve this many logical CPU devices first")
parser.add_argument("--epochs", type=int, default=5)
parser.add_argument("--json-out", help="write the epoch times here as JSON")
args = parser.parse_args()

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

if args.logical_cpus:
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * args.logical_cpus)

from tensorflow import keras  # noqa: E402

# --------------------------------------------------------------------------- the tutorial

strategy = tf.distribute.MirroredStrategy()
print(f"Number of devices: {strategy.num_replicas_in_sync}")

BUFFER_SIZE = 1024
BATCH_SIZE_PER_REPLICA = 64
BATCH_SIZE = BATCH_SIZE_PER_REPLICA * strategy.num_replicas_in_sync

if args.npz:
    with np.load(args.npz) as data:
        (x_train, y_train), (x_test, y_test) = (data["x_train"], data["y_train"]), (data["x_test"], data["y_test"])
else:
    (x_train, y_train), (x_test, y_test) = keras.datasets.mnist.load_data()
x_train = x_train.reshape(-1, 784).astype("float32") / 255
x_test = x_test.reshape(-1, 784).astype("float32") / 255

train_dataset = tf.data.Dataset.from_tensor_slices((x_train, y_train)).shuffle(BUFFER_SIZE).batch(BATCH_SIZE)
eval_dataset = tf.data.Dataset.from_tensor_slices((x_test, y_test)).batch(BATCH_SIZE)

with strategy.scope():
    model = keras.Sequential([
        keras.Input(shape=(784,)),
        keras.layers.Dense(512, activation="relu"),
        keras.layers.Dropout(0.2),
        keras.layers.Dense(256, activation="relu"),
        keras.layers.Dropout(0.2),
        keras.layers.Dense(10, activation="softmax"),
    ])
    model.compile(loss=keras.losses.SparseCategoricalCrossentropy(),
                  optimizer=keras.optimizers.Adam(learning_rate=1e-3),
                  metrics=["accuracy"])


class EpochTimer(keras.callbacks.Callback):
    """Prints how long each epoch took and how many samples per second that is."""

    def __init__(self) -> None:
        super().__init__()
        self.seconds: list[float] = []

    def on_epoch_begin(self, epoch, logs=None):
        self.start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds.append(time.perf_counter() - self.start)
        print(f"\nEpoch {epoch + 1}: {self.seconds[-1]:.2f} s, {len(x_train) / self.seconds[-1]:,.0f} samples/s")


timer = EpochTimer()
model.fit(train_dataset, epochs=args.epochs, callbacks=[timer])
eval_loss, eval_acc = model.evaluate(eval_dataset)
print(f"Test accuracy: {eval_acc:.4f}")

# --------------------------------------------------------------------------- for the cross-check

if args.json_out:
    later = timer.seconds[1:] or timer.seconds  # the first epoch traces the step functions
    with open(args.json_out, "w", encoding="utf-8") as fh:
        json.dump({"replicas": strategy.num_replicas_in_sync, "global_batch": BATCH_SIZE, "samples": len(x_train),
                   "epoch_s": timer.seconds, "samples_per_second": [len(x_train) / s for s in later],
                   "samples_per_second_median": statistics.median(len(x_train) / s for s in later),
                   "test_accuracy": float(eval_acc)}, fh)
