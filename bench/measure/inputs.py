"""What a training case feeds to ``fit``: one feed per value of the ``[train] input`` axis.

Every feed records exactly what it fed (:class:`FedInput`: a sentence plus dtype, where the data lives,
the pipeline steps and what one round unit is) and calls ``fit`` the way that input is used:

- ``numpy``: in-memory float32 arrays straight into ``fit(x, y, batch_size=B)`` (``shuffle=True``, Keras'
  default): Keras gathers a shuffled batch on the host every step and hands it to the backend.
- ``numpy_uint8``: the same with the uint8 pixels, and a ``Rescaling(1/255)`` first layer in the model
  (:func:`bench.measure.model.build_model`): identical maths, a quarter of the bytes per step.
- ``tf_data`` (TensorFlow): the reference tutorial's pipeline exactly — ``from_tensor_slices`` →
  ``shuffle(1024)`` → ``batch(B)``, no prefetch, no repeat, iterated afresh every epoch, last batch partial.
- ``tf_data_prefetch`` (TensorFlow): shuffle(10000), repeat, batch (full batches), ``prefetch(AUTOTUNE)``,
  distributed by the strategy inside ``fit`` — the pipeline this suite used before the axis existed.
- ``device``: the training set placed on the accelerator once, cut into its K = N // B full batches there,
  fed in order (batch i mod K, as the native loop) with no host work per step but Python: JAX arrays
  (``jax.device_put``, sharded as the distribution lays batches out) and torch tensors on the device,
  through an endless ``keras.utils.PyDataset``. TensorFlow cannot keep a ``tf.data`` pipeline on a GPU
  under ``fit``; there the K batches are built once in host memory and the strategy's distributed
  iterator copies each to the replica devices ahead of its step (``experimental_fetch_to_device``,
  two batches buffered per replica), with no shuffling or batching per step.

Round units: ``numpy``, ``numpy_uint8`` and ``tf_data`` are whole passes (each epoch of a user's ``fit``
walks the data once, pays its per-epoch set-up — a new permutation, a new iterator — and a ``fit`` with
``steps_per_epoch`` shorter than a pass would cut epochs at the pass boundary), so a round is a whole
number of epochs of one pass each. ``tf_data_prefetch`` and ``device`` repeat endlessly, so a round is one
epoch of ``steps_per_epoch`` calibrated steps.

Host arrays other than ``tf_data``'s are cut to the first K·B samples (full batches only, as the native
loop): a user's ``fit`` also runs one partial batch per epoch, which at B = 16 384 is 10 848 samples.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from bench.measure.data import Mnist
from bench.measure.devices import Placement
from bench.measure.records import CaseSkipped

PASS, STEPS = "pass", "steps"
TF_ONLY = ("tf_data", "tf_data_prefetch")
TUTORIAL_SHUFFLE_BUFFER = 1024
PREFETCH_SHUFFLE_BUFFER = 10_000


@dataclass(frozen=True)
class FedInput:
    """Exactly what a case fed to ``fit`` (stored in the case record as ``metrics.input_fed``)."""

    value: str  # the axis value
    description: str
    dtype: str  # of the images as fed: float32 or uint8
    location: str  # "host" (numpy / tf.data in host memory) or "device" (on the replicas' devices)
    host_work_per_step: str  # what the host does to deliver one batch, besides dispatching the step
    pipeline: tuple[str, ...]  # the steps from the arrays to fit, in order
    round_unit: str  # "pass" (whole epochs over the data) or "steps" (an epoch of steps_per_epoch steps)
    samples_per_pass: int  # samples one walk over the fed data holds
    steps_per_pass: int
    shuffled: bool

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["pipeline"] = list(self.pipeline)
        return d


class Feed(ABC):
    """Feeds one case's ``fit``; ``unit`` says whether a round unit is a pass or a step."""

    fed: FedInput
    uint8 = False  # the model takes uint8 pixels and rescales them itself

    @property
    def unit(self) -> str:
        return self.fed.round_unit

    @property
    def samples_per_unit(self) -> int:
        return self.fed.samples_per_pass if self.unit == PASS else self.global_batch

    @property
    def steps_per_unit(self) -> int:
        return self.fed.steps_per_pass if self.unit == PASS else 1

    def __init__(self, global_batch: int):
        self.global_batch = global_batch

    @abstractmethod
    def fit(self, model: Any, epochs: int, steps: int | None = None, callbacks: list[Any] | None = None) -> Any:
        """``steps``: ``steps_per_epoch`` (required for step units; for pass units only the warm-up uses it)."""


def make_feed(value: str, backend: str, data: Mnist, global_batch: int, placement: Placement, seed: int) -> Feed:
    """The feed for an input value, or :class:`CaseSkipped` saying why it does not exist here."""
    if value in TF_ONLY and backend != "tensorflow":
        raise CaseSkipped(f"input {value} is a tf.data pipeline: TensorFlow only (this case runs on {backend}); "
                          "use numpy or device")
    full = len(data.x_train) // global_batch
    if full == 0:
        raise CaseSkipped(f"global batch {global_batch} is larger than the {len(data.x_train)} training samples")
    if value in ("numpy", "numpy_uint8"):
        return NumpyFeed(backend, data, global_batch, uint8=value == "numpy_uint8")
    if value == "tf_data":
        return TutorialFeed(data, global_batch)
    if value == "tf_data_prefetch":
        return PrefetchFeed(data, global_batch, seed)
    if value == "device":
        return {"tensorflow": TfDeviceFeed, "jax": JaxDeviceFeed, "torch": TorchDeviceFeed}[backend](
            data, global_batch, placement)
    raise ValueError(f"unknown input {value!r}")


def to_uint8(x: np.ndarray) -> np.ndarray:
    """The uint8 pixels behind ``x`` (which is pixels / 255), or :class:`CaseSkipped` if it is not that."""
    pixels = np.rint(x * np.float32(255.0)).astype(np.uint8)
    if not np.array_equal(pixels.astype(np.float32) / np.float32(255.0), x):
        raise CaseSkipped("numpy_uint8 needs images that are uint8 pixels / 255; this data file holds other floats")
    return pixels


def _full_batches(data: Mnist, batch: int) -> tuple[np.ndarray, np.ndarray, int]:
    k = len(data.x_train) // batch
    return data.x_train[: k * batch], data.y_train[: k * batch], k


_NUMPY_PATH = {
    "tensorflow": "Keras turns the arrays into its own tf.data pipeline (a shuffled index gather, "
                  "prefetch(AUTOTUNE)) and the strategy distributes it; a fresh iterator every epoch",
    "jax": "Keras gathers each shuffled batch with numpy on the host and jax.device_put()s it (one batch "
           "ahead on a GPU)",
    "torch": "Keras' torch DataLoader gathers each shuffled batch on the host and converts it to a tensor on "
             "the device",
}


class NumpyFeed(Feed):
    def __init__(self, backend: str, data: Mnist, global_batch: int, uint8: bool):
        super().__init__(global_batch)
        self.x, self.y, k = _full_batches(data, global_batch)
        self.uint8 = uint8
        if uint8:
            self.x = to_uint8(self.x)
        name = "numpy_uint8" if uint8 else "numpy"
        dtype = "uint8" if uint8 else "float32"
        self.fed = FedInput(
            value=name,
            description=(f"{dtype} numpy arrays in host memory straight into fit(x, y, batch_size={global_batch}, "
                         f"shuffle=True){'; the model rescales by 1/255 in its first layer' if uint8 else ''}"),
            dtype=dtype, location="host",
            host_work_per_step=f"gather one shuffled batch of {dtype} images and copy it to the device",
            pipeline=(f"numpy {dtype} x {self.x.shape}, int32 y: the first {k} full batches of "
                      f"{len(data.x_train)} samples", "fit(shuffle=True): a new permutation every epoch",
                      _NUMPY_PATH[backend]),
            round_unit=PASS, samples_per_pass=len(self.x), steps_per_pass=k, shuffled=True,
        )

    def fit(self, model: Any, epochs: int, steps: int | None = None, callbacks: list[Any] | None = None) -> Any:
        return model.fit(self.x, self.y, batch_size=self.global_batch, epochs=epochs, steps_per_epoch=steps,
                         shuffle=True, callbacks=callbacks, verbose=0)


class TutorialFeed(Feed):
    """The reference tutorial's pipeline, unchanged: scripts/reference_tutorial.py builds the same one."""

    def __init__(self, data: Mnist, global_batch: int):
        import tensorflow as tf

        super().__init__(global_batch)
        n = len(data.x_train)
        # No seed: the tutorial passes none; keras.utils.set_random_seed (build_model) fixes TF's global one.
        self.dataset = (tf.data.Dataset.from_tensor_slices((data.x_train, data.y_train))
                        .shuffle(TUTORIAL_SHUFFLE_BUFFER)
                        .batch(global_batch))
        steps = math.ceil(n / global_batch)
        self.fed = FedInput(
            value="tf_data",
            description=(f"the reference tutorial's tf.data pipeline: from_tensor_slices, "
                         f"shuffle({TUTORIAL_SHUFFLE_BUFFER}), batch({global_batch}); no prefetch, iterated "
                         "afresh every epoch"),
            dtype="float32", location="host",
            host_work_per_step="tf.data shuffles and batches on the host, then the batch is copied to the device",
            pipeline=(f"tf.data.Dataset.from_tensor_slices of the {n} float32 images and int32 labels",
                      f"shuffle({TUTORIAL_SHUFFLE_BUFFER}) (reshuffled every epoch)",
                      f"batch({global_batch}): {steps} batches per epoch, the last one "
                      f"{n - (steps - 1) * global_batch} samples",
                      "fit distributes it with the strategy; a new iterator every epoch"),
            round_unit=PASS, samples_per_pass=n, steps_per_pass=steps, shuffled=True,
        )

    def fit(self, model: Any, epochs: int, steps: int | None = None, callbacks: list[Any] | None = None) -> Any:
        return model.fit(self.dataset, epochs=epochs, steps_per_epoch=steps, callbacks=callbacks, verbose=0)


class PrefetchFeed(Feed):
    def __init__(self, data: Mnist, global_batch: int, seed: int):
        import tensorflow as tf

        super().__init__(global_batch)
        self.dataset = (
            tf.data.Dataset.from_tensor_slices((data.x_train, data.y_train))
            .shuffle(PREFETCH_SHUFFLE_BUFFER, seed=seed, reshuffle_each_iteration=True)
            .repeat()
            .batch(global_batch, drop_remainder=True)
            .prefetch(tf.data.AUTOTUNE)
        )
        n = len(data.x_train)
        self.fed = FedInput(
            value="tf_data_prefetch",
            description=(f"tf.data from in-memory arrays: shuffle({PREFETCH_SHUFFLE_BUFFER}), repeat, "
                         f"batch({global_batch}, drop_remainder), prefetch(AUTOTUNE), distributed by the strategy"),
            dtype="float32", location="host",
            host_work_per_step="tf.data shuffles and batches on the host ahead of the step (prefetch), then the "
                               "batch is copied to the device",
            pipeline=(f"tf.data.Dataset.from_tensor_slices of the {n} float32 images and int32 labels",
                      f"shuffle({PREFETCH_SHUFFLE_BUFFER}, seed={seed}, reshuffle_each_iteration=True)", "repeat()",
                      f"batch({global_batch}, drop_remainder=True)", "prefetch(tf.data.AUTOTUNE)",
                      "fit distributes it with the strategy; one iterator for the whole fit"),
            round_unit=STEPS, samples_per_pass=n - n % global_batch, steps_per_pass=n // global_batch, shuffled=True,
        )

    def fit(self, model: Any, epochs: int, steps: int | None = None, callbacks: list[Any] | None = None) -> Any:
        return model.fit(self.dataset, epochs=epochs, steps_per_epoch=steps, callbacks=callbacks, verbose=0)


def _device_fed(global_batch: int, k: int, placed: str, delivery: str, location: str = "device",
                host_work: str = "none: Python hands over a ready device array") -> FedInput:
    return FedInput(
        value="device",
        description=(f"the training set placed once ({placed}), cut into {k} full batches of {global_batch}, "
                     f"fed in order without shuffling; {delivery}"),
        dtype="float32", location=location, host_work_per_step=host_work,
        pipeline=(f"the first {k * global_batch} float32 images and int32 labels, {placed}",
                  f"cut once into {k} batches of {global_batch}", "step i gets batch i mod K, in order", delivery),
        round_unit=STEPS, samples_per_pass=k * global_batch, steps_per_pass=k, shuffled=False,
    )


def _endless_batches(batches: list[tuple[Any, Any]]) -> Any:
    """A ``keras.utils.PyDataset`` without length over ready batches: ``fit`` only iterates it."""
    import keras

    class EndlessBatches(keras.utils.PyDataset):
        def __init__(self) -> None:
            super().__init__()  # workers=1, no multiprocessing: no enqueuer thread, no queue

        @property
        def num_batches(self) -> None:
            return None  # endless: fit keeps one iterator and walks on across epochs

        def __getitem__(self, index: int) -> tuple[Any, Any]:
            return batches[index % len(batches)]

    return EndlessBatches()


class JaxDeviceFeed(Feed):
    def __init__(self, data: Mnist, global_batch: int, placement: Placement):
        import jax
        import keras

        super().__init__(global_batch)
        x, y, k = _full_batches(data, global_batch)
        distribution = keras.distribution.distribution()
        if distribution is not None:
            # Each batch laid out as the distribution shards data, so Keras' per-step placement finds it
            # already there.
            sharding = distribution.get_data_layout((global_batch, x.shape[1])).backend_layout
            label_sharding = distribution.get_data_layout((global_batch,)).backend_layout
            batches = [(jax.device_put(x[i * global_batch:(i + 1) * global_batch], sharding),
                        jax.device_put(y[i * global_batch:(i + 1) * global_batch], label_sharding))
                       for i in range(k)]
            placed = f"sharded over {', '.join(placement.devices)} as the distribution lays out batches"
        else:
            device = next(d for d in [*jax.devices(), *jax.devices("cpu")] if str(d) == placement.devices[0])
            x_all, y_all = jax.device_put(x, device), jax.device_put(y, device)
            # Sliced on the device, once: each slice is its own buffer there.
            batches = [(x_all[i * global_batch:(i + 1) * global_batch], y_all[i * global_batch:(i + 1) * global_batch])
                       for i in range(k)]
            del x_all, y_all
            placed = f"with jax.device_put on {device}"
        jax.block_until_ready(batches)
        self.batches = batches
        self.dataset = _endless_batches(batches)
        self.fed = _device_fed(global_batch, k, placed,
                               "an endless keras.utils.PyDataset hands the ready jax.Arrays to fit")

    def fit(self, model: Any, epochs: int, steps: int | None = None, callbacks: list[Any] | None = None) -> Any:
        return model.fit(self.dataset, epochs=epochs, steps_per_epoch=steps, callbacks=callbacks, verbose=0)


class TorchDeviceFeed(Feed):
    def __init__(self, data: Mnist, global_batch: int, placement: Placement):
        import torch

        super().__init__(global_batch)
        x, y, k = _full_batches(data, global_batch)
        device = torch.device(placement.devices[0])
        x_all, y_all = torch.from_numpy(x).to(device), torch.from_numpy(y).to(device)
        # Views into the device tensors: no copy, no host work per step.
        self.batches = [(x_all[i * global_batch:(i + 1) * global_batch], y_all[i * global_batch:(i + 1) * global_batch])
                        for i in range(k)]
        self.dataset = _endless_batches(self.batches)
        self.fed = _device_fed(global_batch, k, f"as torch tensors on {device}",
                               "an endless keras.utils.PyDataset hands the ready tensors to fit")

    def fit(self, model: Any, epochs: int, steps: int | None = None, callbacks: list[Any] | None = None) -> Any:
        return model.fit(self.dataset, epochs=epochs, steps_per_epoch=steps, callbacks=callbacks, verbose=0)


class TfDeviceFeed(Feed):
    def __init__(self, data: Mnist, global_batch: int, placement: Placement):
        import tensorflow as tf

        super().__init__(global_batch)
        x, y, k = _full_batches(data, global_batch)
        strategy = tf.distribute.get_strategy()  # the case's MirroredStrategy: fit runs inside its scope
        batches = tf.data.Dataset.from_tensor_slices((x.reshape(k, global_batch, -1), y.reshape(k, global_batch)))
        options = tf.distribute.InputOptions(experimental_fetch_to_device=True,
                                             experimental_per_replica_buffer_size=2)
        self.dataset = strategy.experimental_distribute_dataset(batches.repeat(), options=options)
        self.fed = _device_fed(
            global_batch, k, "in host memory as tf.data elements of one whole batch each",
            f"the strategy's distributed iterator copies each batch to {', '.join(placement.devices)} ahead of its "
            "step (experimental_fetch_to_device, 2 per replica buffered); TensorFlow keeps no tf.data pipeline "
            "on a GPU under fit", location="host",
            host_work="copy one ready batch to each replica device, ahead of the step")

    def fit(self, model: Any, epochs: int, steps: int | None = None, callbacks: list[Any] | None = None) -> Any:
        return model.fit(self.dataset, epochs=epochs, steps_per_epoch=steps, callbacks=callbacks, verbose=0)
