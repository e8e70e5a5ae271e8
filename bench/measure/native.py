"""A native reference per backend: the same MLP trained by a hand-written loop in the backend's own ops.

Keras' samples/s divided by this is the framework's overhead (``native_ratio``, :func:`bench.analyze.derive.attach_native_ratios`).
The model is the one in :mod:`bench.measure.model`: 784 -> Dense 512 relu -> Dropout 0.2 -> Dense 256 relu ->
Dropout 0.2 -> Dense 10 softmax in float32; glorot_uniform kernels and zero biases (drawn once with numpy
from ``[measure] seed``, so every backend starts from the same weights); sparse categorical cross-entropy
on the clipped softmax (``[1e-7, 1 - 1e-7]``, keras.losses' non-logits path); dropout from the backend's
RNG. Adam is written out in Keras' own update rule (``keras/src/optimizers/adam.py``,
``update_step``; TensorFlow documents the same rule for ``tf.raw_ops.ApplyAdam``)::

    alpha = lr * sqrt(1 - beta_2**t) / (1 - beta_1**t)
    m += (g - m) * (1 - beta_1);  v += (g*g - v) * (1 - beta_2);  w -= m * alpha / (sqrt(v) + eps)

with ``lr = 1e-3, beta_1 = 0.9, beta_2 = 0.999, eps = 1e-7``. This is the bias correction of optax's
``scale_by_adam`` (``m_hat / (sqrt(v_hat) + eps)``) except that eps sits outside the correction, so it
acts as ``eps / sqrt(1 - beta_2**t)`` there — 30x larger at t = 1. Writing it the optax way would train a
slightly different optimizer; tests/test_native.py checks every backend's update against
``keras.optimizers.Adam`` to 1e-6.

Variants (``variant``):

- ``step``: one dispatch per training step, as a user's hand-written loop. TensorFlow: a
  ``tf.function(jit_compile=True)`` step on ``tf.Variable`` s; JAX: a ``jax.jit`` step on a pytree (state
  buffers donated); torch: an eager step, ``torch.autograd.grad`` and ``torch._foreach_*`` Adam (what
  Keras' torch Adam does). No ``torch.compile``: Keras' ``jit_compile`` is a Keras setting.
- ``epoch_scan`` (JAX only): a whole round of N steps in one ``jax.jit`` via ``jax.lax.scan``, which JAX
  lowers to a single XLA while loop (https://docs.jax.dev/en/latest/_autosummary/jax.lax.scan.html): no
  host round trip between steps, the device's practical ceiling for this model. Compiled once per N.

Data: ``mnist.x_train`` / ``y_train`` are placed on the device once, before anything is timed; step i
trains on rows ``[(i mod K) * B, (i mod K + 1) * B)`` with K = 60000 // B full batches, in order, sliced on
the device inside the step. That is the point of a ceiling: no input pipeline at all. Keras' train cases
feed from the host (TensorFlow: shuffled ``tf.data``; JAX/torch: a ``PyDataset`` cycling the same order).

Precision: ``float32`` and ``mixed_bfloat16`` (float32 variables and Adam; layers compute in bfloat16; the
output layer and the loss in float32, as Keras' mixed policy with ``dtype="float32"`` on the last layer).
``mixed_float16`` cases are recorded as skipped: Keras trains them through a dynamically loss-scaled
``LossScaleOptimizer``, which this reference does not implement.

Timing is the shared protocol (:mod:`bench.measure.protocol`), as train's: the first ``warmup_steps`` steps are
timed apart (``compile_s``), then calibration, one untimed round, and ``[measure] rounds`` rounds through
``benchmark.pedantic``. Every round ends by reading the last step's loss back as a Python float, which
waits for the device (and ``torch.cuda.synchronize()`` on CUDA). Frameworks are imported only on their own
backend's path: a GPU machine with JAX and torch but no TensorFlow runs the JAX and torch cases.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from bench import mlp_spec
from bench.cases import NativeCase
from bench.config import BenchConfig
from bench.measure.data import Mnist
from bench.measure.devices import DeviceInventory, Placement, require_devices
from bench.measure.faults import inject
from bench.measure.model import LEARNING_RATE
from bench.measure.protocol import NonFiniteLoss, RoundSettings, measure_rounds, throughput_metrics
from bench.measure.records import CaseClock, CaseSkipped, base_record, measure_into
from bench.monitor.select import monitor_for
from bench.store.schema import CaseRecord

SUPPORTED_PRECISIONS = ("float32", "mixed_bfloat16")
BETA_1, BETA_2, EPSILON = 0.9, 0.999, 1e-7  # keras.optimizers.Adam defaults
PROB_EPSILON = 1e-7  # keras.backend.epsilon(): the clip on probabilities in keras.losses
DROPOUT_RATE = mlp_spec.DROPOUT_RATE
LAYERS = mlp_spec.DENSE_SHAPES  # ((784, 512), (512, 256), (256, 10))
PARAM_NAMES = ("w1", "b1", "w2", "b2", "w3", "b3")


# --------------------------------------------------------------------------- measuring


def run_native_case(case: NativeCase, config: BenchConfig, data: Mnist, inventory: DeviceInventory,
                    benchmark: Any, clock: Callable[[], float] = time.perf_counter,
                    units: int | None = None) -> CaseRecord:
    """Measure one native case and return its record; failures and skips are records, not exceptions.

    ``units``: the steps per round this case's first process calibrated (later processes reuse it)."""
    case_clock = CaseClock()
    record = base_record("native", case.case_id, case.params(), data.spec.source, case_clock,
                         flags={"simulated": inventory.simulated, "unstable": False,
                                "gpu_metrics_unreliable": False})

    def body() -> None:
        (device,) = require_devices(inventory, 1)
        record["devices"] = {"strategy": "none (native)", "devices": [device], "replicas": 1,
                             "kind": inventory.kind, "simulated": inventory.simulated}
        if case.precision not in SUPPORTED_PRECISIONS:
            raise CaseSkipped(f"the native reference has no dynamic loss scaling, which Keras applies under "
                              f"{case.precision} (LossScaleOptimizer); compare mixed_bfloat16 instead")
        _measure(case, config, data, inventory, device, benchmark, clock, record, units)

    return measure_into(record, case_clock, body)


class _NativeRounds:
    """The protocol's round source for a native runner: a unit is one training step."""

    def __init__(self, runner: Any, clock: Callable[[], float]):
        self.runner, self.clock = runner, clock
        self.last_loss = math.nan

    def trial(self, units: int) -> float:
        if self.runner.compiles_per_length:
            self.runner.run(units)  # the first call compiles this length; the second is the sample
        t0 = self.clock()
        self.runner.run(units)
        return self.clock() - t0

    @contextlib.contextmanager
    def rounds(self, units: int, count: int) -> Iterator[Callable[[], float | None]]:
        def one_round() -> float | None:
            # The loop runs in this (the timing) thread: its CPU time is the host's cost of the round.
            cpu0 = time.thread_time()
            self.last_loss = self.runner.run(units)
            host_cpu_s = time.thread_time() - cpu0
            if not math.isfinite(self.last_loss):
                raise NonFiniteLoss(f"non-finite loss {self.last_loss} during timed rounds")
            return host_cpu_s

        yield one_round


def _measure(case: NativeCase, config: BenchConfig, data: Mnist, inventory: DeviceInventory, device: str,
             benchmark: Any, clock: Callable[[], float], record: dict[str, Any], units: int | None = None) -> None:
    m = config.measure
    metrics = record["metrics"]
    metrics.update(variant=case.variant, device=device, global_batch=case.global_batch,
                   per_replica_batch=case.global_batch, replicas=1)
    fault = inject(case.case_id)
    params = init_params(m.seed)
    if fault == "nan":
        params["b3"][:] = np.nan  # injected (bench.measure.faults): the real step then yields a non-finite loss
    runner = _RUNNERS[case.backend](case, data, device, params, m.seed)
    metrics.update(implementation=runner.description, input_pipeline=runner.input_description,
                   input_fed=_input_fed(case, data, device), optimizer="Adam (hand-written, Keras' update rule)")

    t0 = clock()
    loss = runner.run(m.warmup_steps)
    metrics["compile_s"] = clock() - t0
    metrics["warmup_steps"] = m.warmup_steps
    if not math.isfinite(loss):
        raise NonFiniteLoss(f"non-finite loss {loss} after the warm-up steps")

    placement = Placement("none (native)", [device], 1, inventory.kind, inventory.simulated,
                          contextlib.nullcontext(), [] if inventory.kind == "cpu" else [0])
    settings = RoundSettings(rounds=m.rounds, min_round_s=m.min_round_s, start_units=m.warmup_steps,
                             max_units=m.max_steps_per_round, measure_overhead=config.nvml.measure_overhead,
                             units=units)
    source = _NativeRounds(runner, clock)
    result = measure_rounds(source, settings, benchmark, monitor_for(placement, config.nvml), clock)
    measured, flags = throughput_metrics(result, case.global_batch, 1, m.cv_threshold)
    metrics.update(measured)
    metrics["round_unit"] = "steps"
    metrics["units_per_round"] = result.units_per_round
    metrics["final_loss"] = source.last_loss
    record["flags"].update(flags)
    benchmark.extra_info.update(case_id=case.case_id, samples_per_second=metrics["samples_per_second"]["median"])


def _input_fed(case: NativeCase, data: Mnist, device: str) -> dict[str, Any]:
    """The native input in the structured form train cases record (``metrics.input_fed``)."""
    k = len(data.x_train) // case.global_batch
    return {"value": "device", "description": _INPUT, "dtype": "float32", "location": "device",
            "host_work_per_step": "none: the step slices its batch on the device",
            "pipeline": [f"the first {k * case.global_batch} float32 images and int32 labels placed on {device} once",
                         "step i slices batch i mod K in order inside the compiled step"],
            "round_unit": "steps", "samples_per_pass": k * case.global_batch, "steps_per_pass": k, "shuffled": False}


# --------------------------------------------------------------------------- shared maths


def init_params(seed: int) -> dict[str, np.ndarray]:
    """glorot_uniform kernels (limit sqrt(6 / (fan_in + fan_out)), as Keras' Dense) and zero biases."""
    rng = np.random.default_rng(seed)
    params: dict[str, np.ndarray] = {}
    for i, (fan_in, fan_out) in enumerate(LAYERS, start=1):
        limit = math.sqrt(6.0 / (fan_in + fan_out))
        params[f"w{i}"] = rng.uniform(-limit, limit, size=(fan_in, fan_out)).astype(np.float32)
        params[f"b{i}"] = np.zeros(fan_out, dtype=np.float32)
    return params


def adam_alpha(iterations: Any, sqrt: Callable[[Any], Any]) -> Any:
    """Keras' step size for the update after ``iterations`` earlier ones (``self.iterations``)."""
    t = iterations + 1
    return LEARNING_RATE * sqrt(1 - BETA_2**t) / (1 - BETA_1**t)


def _batches(data: Mnist, batch: int) -> tuple[np.ndarray, np.ndarray, int]:
    full = len(data.x_train) // batch
    if full == 0:
        raise CaseSkipped(f"global batch {batch} is larger than the {len(data.x_train)} training samples")
    return data.x_train[: full * batch], data.y_train[: full * batch], full


_INPUT = ("MNIST train arrays placed on the device once; step i slices full batch i mod K in order on the "
          "device (K = samples // global_batch)")


# --------------------------------------------------------------------------- JAX


def jax_adam_update(params: dict, grads: dict, m: dict, v: dict, iterations: Any) -> tuple[dict, dict, dict]:
    """One Keras-rule Adam step on pytrees in jax.numpy; ``iterations`` counts earlier updates."""
    import jax
    import jax.numpy as jnp

    alpha = adam_alpha(jnp.asarray(iterations, jnp.float32), jnp.sqrt)
    m = jax.tree.map(lambda m_, g: m_ + (g - m_) * (1 - BETA_1), m, grads)
    v = jax.tree.map(lambda v_, g: v_ + (g * g - v_) * (1 - BETA_2), v, grads)
    params = jax.tree.map(lambda p, m_, v_: p - m_ * alpha / (jnp.sqrt(v_) + EPSILON), params, m, v)
    return params, m, v


class _JaxRunner:
    def __init__(self, case: NativeCase, data: Mnist, device: str, params: dict[str, np.ndarray], seed: int):
        import jax
        import jax.numpy as jnp

        self.jax = jax
        place = next(d for d in [*jax.devices(), *jax.devices("cpu")] if str(d) == device)
        x, y, full = _batches(data, case.global_batch)
        self.x_all, self.y_all = jax.device_put(x, place), jax.device_put(y, place)
        p = {k: jax.device_put(v, place) for k, v in params.items()}
        zeros = jax.tree.map(jnp.zeros_like, p)
        self.state = (p, zeros, jax.tree.map(jnp.zeros_like, p), jax.device_put(jnp.int32(0), place),
                      jax.device_put(jax.random.PRNGKey(seed), place))
        compute = jnp.bfloat16 if case.precision == "mixed_bfloat16" else jnp.float32
        batch = case.global_batch

        def dropout(h: Any, key: Any) -> Any:
            keep = jax.random.bernoulli(key, 1.0 - DROPOUT_RATE, h.shape)
            return jnp.where(keep, h / jnp.asarray(1.0 - DROPOUT_RATE, h.dtype), jnp.zeros_like(h))

        def loss_fn(p: dict, xb: Any, yb: Any, key: Any) -> Any:
            k1, k2 = jax.random.split(key)
            h = jax.nn.relu(xb.astype(compute) @ p["w1"].astype(compute) + p["b1"].astype(compute))
            h = dropout(h, k1)
            h = jax.nn.relu(h @ p["w2"].astype(compute) + p["b2"].astype(compute))
            h = dropout(h, k2)
            probs = jax.nn.softmax(h.astype(jnp.float32) @ p["w3"] + p["b3"])
            picked = jnp.take_along_axis(probs, yb[:, None], axis=1)[:, 0]
            return -jnp.mean(jnp.log(jnp.clip(picked, PROB_EPSILON, 1.0 - PROB_EPSILON)))

        def one_step(state: tuple, x_all: Any, y_all: Any) -> tuple[tuple, Any]:
            p, m, v, step, key = state
            start = (step % full) * batch
            xb = jax.lax.dynamic_slice_in_dim(x_all, start, batch)
            yb = jax.lax.dynamic_slice_in_dim(y_all, start, batch)
            loss, grads = jax.value_and_grad(loss_fn)(p, xb, yb, jax.random.fold_in(key, step))
            p, m, v = jax_adam_update(p, grads, m, v, step)
            return (p, m, v, step + 1, key), loss

        def epoch(state: tuple, x_all: Any, y_all: Any, steps: int) -> tuple[tuple, Any]:
            state, losses = jax.lax.scan(lambda s, _: one_step(s, x_all, y_all), state, None, length=steps)
            return state, losses[-1]

        self.scan = case.variant == "epoch_scan"
        self.compiles_per_length = self.scan
        if self.scan:
            self.fn = jax.jit(epoch, static_argnums=3, donate_argnums=0)
            self.description = "jax.jit of jax.lax.scan over a round's steps, Adam in jax.numpy"
        else:
            self.fn = jax.jit(one_step, donate_argnums=0)
            self.description = "jax.jit train step (state donated), one dispatch per step, Adam in jax.numpy"
        self.input_description = _INPUT

    def run(self, steps: int) -> float:
        if self.scan:
            self.state, loss = self.fn(self.state, self.x_all, self.y_all, steps)
        else:
            for _ in range(steps):
                self.state, loss = self.fn(self.state, self.x_all, self.y_all)
        return float(loss.block_until_ready())


# --------------------------------------------------------------------------- TensorFlow


def tf_adam_update(params: list, grads: list, m: list, v: list, iterations: Any) -> None:
    """One Keras-rule Adam step on ``tf.Variable`` lists, in place; ``iterations`` counts earlier updates."""
    import tensorflow as tf

    alpha = adam_alpha(tf.cast(iterations, tf.float32), tf.sqrt)
    for p, g, m_, v_ in zip(params, grads, m, v, strict=True):
        m_.assign_add((g - m_) * (1 - BETA_1))
        v_.assign_add((tf.square(g) - v_) * (1 - BETA_2))
        p.assign_sub(m_ * alpha / (tf.sqrt(v_) + EPSILON))


class _TfRunner:
    compiles_per_length = False

    def __init__(self, case: NativeCase, data: Mnist, device: str, params: dict[str, np.ndarray], seed: int):
        import tensorflow as tf

        self.tf, self.device = tf, device
        x, y, full = _batches(data, case.global_batch)
        compute = tf.bfloat16 if case.precision == "mixed_bfloat16" else tf.float32
        batch = case.global_batch
        with tf.device(device):
            # tf.identity copies the host constant onto the device once.
            self.x_all, self.y_all = tf.identity(tf.constant(x)), tf.identity(tf.constant(y))
            self.params = [tf.Variable(params[k], name=k) for k in PARAM_NAMES]
            self.m = [tf.Variable(tf.zeros_like(p)) for p in self.params]
            self.v = [tf.Variable(tf.zeros_like(p)) for p in self.params]
            self.iterations = tf.Variable(0, dtype=tf.int64)

        def loss_fn(xb: Any, yb: Any, step: Any) -> Any:
            w1, b1, w2, b2, w3, b3 = self.params
            # int32 seeds, as Keras' TF backend passes them (XLA's stateless RNG expects int32).
            seeds = tf.cast(tf.math.floormod(tf.stack([2 * step, 2 * step + 1]), tf.int32.max - 1), tf.int32)
            h = tf.nn.relu(tf.cast(xb, compute) @ tf.cast(w1, compute) + tf.cast(b1, compute))
            h = tf.nn.experimental.stateless_dropout(h, DROPOUT_RATE, seed=tf.stack([seed, seeds[0]]))
            h = tf.nn.relu(h @ tf.cast(w2, compute) + tf.cast(b2, compute))
            h = tf.nn.experimental.stateless_dropout(h, DROPOUT_RATE, seed=tf.stack([seed, seeds[1]]))
            probs = tf.nn.softmax(tf.cast(h, tf.float32) @ w3 + b3)
            picked = tf.gather(probs, yb, axis=1, batch_dims=1)
            return -tf.reduce_mean(tf.math.log(tf.clip_by_value(picked, PROB_EPSILON, 1.0 - PROB_EPSILON)))

        @tf.function(jit_compile=True)
        def train_step(x_all: Any, y_all: Any) -> Any:
            step = self.iterations.read_value()
            # A gather, not tf.slice / x[a:b] / tf.range(a, b): TF's XLA bridge needs those bounds as
            # compile-time constants and would recompile the step for every batch offset.
            rows = tf.cast(step % full, tf.int32) * batch + tf.range(batch)
            xb, yb = tf.gather(x_all, rows), tf.gather(y_all, rows)
            with tf.GradientTape() as tape:
                loss = loss_fn(xb, yb, step)
            grads = tape.gradient(loss, self.params)
            tf_adam_update(self.params, grads, self.m, self.v, step)
            self.iterations.assign_add(1)
            return loss

        self.step = train_step
        self.description = "tf.function(jit_compile=True) train step on tf.Variables, Adam in TF ops"
        self.input_description = _INPUT

    def run(self, steps: int) -> float:
        with self.tf.device(self.device):
            for _ in range(steps):
                loss = self.step(self.x_all, self.y_all)
        return float(loss.numpy())


# --------------------------------------------------------------------------- torch


def torch_adam_update(params: list, grads: list, m: list, v: list, iterations: int) -> None:
    """One Keras-rule Adam step with ``torch._foreach_*`` (as Keras' torch Adam), in place, no autograd."""
    import torch

    alpha = adam_alpha(iterations, math.sqrt)
    with torch.no_grad():
        torch._foreach_mul_(m, BETA_1)
        torch._foreach_add_(m, grads, alpha=1 - BETA_1)
        torch._foreach_mul_(v, BETA_2)
        torch._foreach_add_(v, torch._foreach_mul(grads, grads), alpha=1 - BETA_2)
        denom = torch._foreach_add(torch._foreach_sqrt(v), EPSILON)
        torch._foreach_add_(params, torch._foreach_div(torch._foreach_mul(m, alpha), denom), alpha=-1)


class _TorchRunner:
    compiles_per_length = False

    def __init__(self, case: NativeCase, data: Mnist, device: str, params: dict[str, np.ndarray], seed: int):
        import torch

        self.torch = torch
        self.device = torch.device(device)
        torch.manual_seed(seed)  # dropout draws from torch's default generator, as Keras' torch backend
        x, y, self.full = _batches(data, case.global_batch)
        self.x_all = torch.from_numpy(x).to(self.device)
        self.y_all = torch.from_numpy(y.astype(np.int64)).to(self.device)
        self.params = [torch.tensor(params[k], device=self.device, requires_grad=True) for k in PARAM_NAMES]
        self.m = [torch.zeros_like(p) for p in self.params]
        self.v = [torch.zeros_like(p) for p in self.params]
        self.iterations = 0
        self.batch = case.global_batch
        self.compute = torch.bfloat16 if case.precision == "mixed_bfloat16" else torch.float32
        self.description = "eager torch train step, torch.autograd.grad, Adam with torch._foreach_* ops"
        self.input_description = _INPUT

    def _loss(self, xb: Any, yb: Any) -> Any:
        torch, c = self.torch, self.compute
        F = torch.nn.functional
        w1, b1, w2, b2, w3, b3 = self.params
        h = F.dropout(torch.relu(xb.to(c) @ w1.to(c) + b1.to(c)), DROPOUT_RATE, training=True)
        h = F.dropout(torch.relu(h @ w2.to(c) + b2.to(c)), DROPOUT_RATE, training=True)
        probs = torch.softmax(h.float() @ w3 + b3, dim=1)
        picked = probs.gather(1, yb[:, None])[:, 0]
        return -torch.log(picked.clamp(PROB_EPSILON, 1.0 - PROB_EPSILON)).mean()

    def run(self, steps: int) -> float:
        torch = self.torch
        for _ in range(steps):
            start = (self.iterations % self.full) * self.batch
            loss = self._loss(self.x_all[start:start + self.batch], self.y_all[start:start + self.batch])
            grads = torch.autograd.grad(loss, self.params)
            torch_adam_update(self.params, list(grads), self.m, self.v, self.iterations)
            self.iterations += 1
        value = float(loss.detach())  # .item() waits for the device
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        return value


_RUNNERS: dict[str, Any] = {"tensorflow": _TfRunner, "jax": _JaxRunner, "torch": _TorchRunner}
