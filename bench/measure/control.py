"""The control workload: a fixed training step in the backend's own ops, timed next to every case.

Why: rounds of one run share the machine's state, and on a shared runner that state drifts between
runs (6-45 % between two runs of one commit on a 2-core CI box, while each run's rounds agree within
1-5 %). A workload that never changes, timed in the same worker on the same device right before and
right after each case, measures that state; dividing a case's throughput by it removes what the two
have in common (a slower or busier machine) and keeps what only the case has (pytest-benchmark users
asked for exactly this: timings relative to a control benchmark, ionelmc/pytest-benchmark#2).

The workload: a two-layer MLP (784 -> 512 relu -> 10, softmax cross-entropy, plain SGD) on one fixed
batch of 256 random samples, forward + backward + update per step, one dispatch per step from Python
as Keras' ``fit`` does, then the loss read back as a float (which waits for the device). Written in the
backend's own ops (TensorFlow: ``tf.function`` without XLA; JAX: ``jax.jit``; torch: eager), never
Keras: a Keras or suite change that slows the cases leaves the control alone, so normalising keeps it
visible. A backend upgrade that slows its kernels moves both, which is why comparisons also report the
control's own change.

Steps per control round are calibrated once, in the layout's first worker process, so a round lasts
``[control] min_round_s``; later processes of the run reuse that count (``WorkerPlan.control_steps``);
throughput (samples/s), not duration, is stored and compared, so calibrations may differ between runs.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from bench.analyze.stats import summarize
from bench.config import ControlSettings
from bench.measure.records import describe_exception

BATCH = 256
HIDDEN = 512
LEARNING_RATE = 0.01
MAX_STEPS = 100_000
WORKLOAD = f"MLP 784-{HIDDEN}-10, SGD, batch {BATCH} of fixed random data; forward+backward+update per step"


def _arrays(seed: int = 0) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((BATCH, 784)).astype(np.float32)
    y = np.eye(10, dtype=np.float32)[rng.integers(0, 10, BATCH)]
    w1 = (rng.standard_normal((784, HIDDEN)) * math.sqrt(2.0 / 784)).astype(np.float32)
    w2 = (rng.standard_normal((HIDDEN, 10)) * math.sqrt(2.0 / HIDDEN)).astype(np.float32)
    return x, y, w1, w2


def _tensorflow(device: str) -> Callable[[int], float]:
    import tensorflow as tf

    x, y, w1, w2 = _arrays()
    with tf.device(device):
        xs, ys = tf.constant(x), tf.constant(y)
        v1, v2 = tf.Variable(w1), tf.Variable(w2)

    @tf.function(jit_compile=False)
    def step() -> Any:
        with tf.GradientTape() as tape:
            logits = tf.matmul(tf.nn.relu(tf.matmul(xs, v1)), v2)
            loss = tf.reduce_mean(tf.nn.softmax_cross_entropy_with_logits(ys, logits))
        g1, g2 = tape.gradient(loss, [v1, v2])
        v1.assign_sub(LEARNING_RATE * g1)
        v2.assign_sub(LEARNING_RATE * g2)
        return loss

    def run(steps: int) -> float:
        with tf.device(device):
            for _ in range(steps):
                loss = step()
        return float(loss)

    return run


def _jax(device: str) -> Callable[[int], float]:
    import jax
    import jax.numpy as jnp

    target = next((d for d in jax.devices() if str(d) == device), jax.devices()[0])
    x, y, w1, w2 = (jax.device_put(a, target) for a in _arrays())

    def loss_fn(params: tuple[Any, Any]) -> Any:
        logits = jnp.maximum(x @ params[0], 0.0) @ params[1]
        return -jnp.mean(jnp.sum(y * jax.nn.log_softmax(logits), axis=-1))

    @jax.jit
    def step(params: tuple[Any, Any]) -> tuple[tuple[Any, Any], Any]:
        loss, grads = jax.value_and_grad(loss_fn)(params)
        return (params[0] - LEARNING_RATE * grads[0], params[1] - LEARNING_RATE * grads[1]), loss

    state = {"params": (w1, w2)}

    def run(steps: int) -> float:
        params = state["params"]
        for _ in range(steps):
            params, loss = step(params)
        state["params"] = params
        return float(loss)

    return run


def _torch(device: str) -> Callable[[int], float]:
    import torch

    dev = torch.device(device)
    x, y, w1, w2 = (torch.from_numpy(a).to(dev) for a in _arrays())
    w1.requires_grad_(True)
    w2.requires_grad_(True)

    def run(steps: int) -> float:
        for _ in range(steps):
            logits = torch.relu(x @ w1) @ w2
            loss = -(y * torch.log_softmax(logits, dim=-1)).sum(dim=-1).mean()
            g1, g2 = torch.autograd.grad(loss, [w1, w2])
            with torch.no_grad():
                w1.sub_(LEARNING_RATE * g1)
                w2.sub_(LEARNING_RATE * g2)
        return float(loss)  # .item() on CUDA waits for the stream

    return run


_BUILDERS = {"tensorflow": _tensorflow, "jax": _jax, "torch": _torch}


class Control:
    """The control workload of one worker: built and calibrated on first use, then sampled per case.

    ``run(steps)`` is the backend step loop (injectable, so tests can time a fake). A failure of the
    control never fails a case: it is recorded in the case's ``control`` field instead.
    """

    def __init__(self, backend: str, device: str, settings: ControlSettings,
                 clock: Callable[[], float] = time.perf_counter, run: Callable[[int], float] | None = None,
                 steps: int | None = None):
        self.backend = backend
        self.device = device
        self.settings = settings
        self.clock = clock
        self._run = run
        self._given_steps = steps  # calibrated by an earlier process of the layout: every round alike
        self.steps: int | None = None
        self.error: dict[str, str] | None = None

    def _ready(self) -> bool:
        if self.error is not None:
            return False
        if self.steps is None:
            try:
                if self._run is None:
                    self._run = _BUILDERS[self.backend](self.device)
                self._run(2)  # trace / compile outside any timing
                self.steps = self._given_steps or self._calibrate()
            except Exception as exc:  # noqa: BLE001 - recorded, the case still runs
                self.error = describe_exception(exc)
                return False
        return True

    def _time(self, steps: int) -> float:
        assert self._run is not None
        t0 = self.clock()
        self._run(steps)
        return self.clock() - t0

    def _calibrate(self) -> int:
        target = self.settings.min_round_s
        steps = 1
        while True:
            seconds = self._time(steps)
            if seconds >= 0.2 * target or steps >= MAX_STEPS:
                break
            steps = min(MAX_STEPS, steps * (10 if seconds <= 0 else max(2, min(10, math.ceil(0.3 * target / seconds)))))
        per_step = seconds / steps
        return max(1, min(MAX_STEPS, math.ceil(1.1 * target / per_step))) if per_step > 0 else MAX_STEPS

    def sample(self) -> list[float]:
        """``[control] rounds`` round durations now (empty when the control is unavailable)."""
        if not self._ready():
            return []
        assert self.steps is not None
        return [self._time(self.steps) for _ in range(self.settings.rounds)]

    def record(self, before: list[float], after: list[float]) -> dict[str, Any]:
        """The ``control`` field of a case record (shape in docs/results.md)."""
        out: dict[str, Any] = {"workload": WORKLOAD, "backend": self.backend, "device": self.device}
        if self.error is not None or self.steps is None or not (before or after):
            out.update(status="failed", reason=(self.error or {}).get("message") or "control did not run")
            return out
        samples_per_round = self.steps * BATCH
        round_s = before + after
        out.update(status="ok", batch=BATCH, steps_per_round=self.steps, samples_per_round=samples_per_round,
                   round_s=round_s, position=["before"] * len(before) + ["after"] * len(after),
                   samples_per_second=summarize([samples_per_round / s for s in round_s]))
        return out


def control_device(backend: str, devices: list[str]) -> str:
    """The case's first device, or the host CPU when the worker has none (cpu_predict predicts there)."""
    if devices:
        return devices[0]
    return {"tensorflow": "/cpu:0", "jax": "TFRT_CPU_0", "torch": "cpu"}[backend]
