"""Predicting on the CPU after training on the GPU: five methods, each timed, checked and located.

TensorFlow first (the question came from there), then the same user-level steps on JAX and torch.

The question (keras-team/keras#20308, https://github.com/keras-team/keras/issues/20308): with Keras 3 on
TensorFlow, a model trained on the GPU with XLA and then predicted under ``tf.device("CPU")`` fails with
``Trying to access resource .../kernel/... located in device .../GPU:0 from device .../CPU:0``. Methods:

- ``naive``: predict under ``keras.device("/device:CPU:0")`` as it is.
- ``recompile``: ``bench.measure.model.compile_model(model, jit_compile=False)`` first (optimizer and loss passed
  again: ``model.compile(jit_compile=False)`` alone would swap Adam for RMSprop).
- ``strategy``: build and train under a ``tf.distribute`` strategy on the training device, then predict
  under the CPU device. A trap: it raises nothing, yet its MatMuls run on the training device.
- ``clone``: under the CPU device, ``keras.models.clone_model`` + ``set_weights(get_weights())``
  (clone_model "creates new layers (and thus new weights)",
  https://www.tensorflow.org/api_docs/python/tf/keras/models/clone_model; Keras 3 also compiles the clone
  from the original's compile config, keras/src/models/cloning.py, so the clone predicts with the
  training ``jit_compile`` — on its own CPU variables, which works).
- ``saved_model`` (extra): save to a ``.keras`` file and ``keras.models.load_model`` under the CPU device.

``keras.device`` is Keras 3's backend-agnostic device scope (keras.io/api/scope/context_managers); on
TensorFlow it is ``tf.device``. Each case is proven twice: predictions are compared with predictions made
on the training device, and the device of the MatMuls comes from TensorFlow's placement log
(:mod:`bench.measure.placement`). Without a GPU, ``configure_worker`` splits the CPU into two logical devices and
``/device:CPU:1`` stands in for the GPU; that reproduces #20308 exactly and every record is flagged.
"auto" ``jit_compile`` resolves to False on CPU-only machines and under tf.distribute
(``Trainer._resolve_auto_jit_compile``, keras/src/trainers/trainer.py), so ``naive`` may just work there;
what Keras decided is recorded.

Steady predict rounds are pytest-benchmark rounds (``benchmark.pedantic``). ``predict`` returns numpy, so
every call has finished on the device before the clock is read. Placement logging stays on for the whole
worker (it cannot be switched off again once TensorFlow started), so every method pays the same few
log lines per executed op.

JAX and torch (same methods, ``keras.device("cpu:0")``, the spelling Keras documents on every backend,
https://keras.io/api/scope/context_managers/; on JAX it is ``jax.default_device``, on torch it sets the
device Keras creates tensors on, keras/src/backend/{jax,torch}/core.py ``device_scope``):

- ``strategy`` is ``skipped`` with its reason: tf.distribute exists only on TensorFlow, and Keras' own
  ``keras.distribution`` (JAX only) shards over a device mesh; it is not a device scope for predict.
- Placement proof is the device of the predict step's outputs, read by wrapping ``model.predict_function``
  (the function ``Model.make_predict_function`` builds and ``predict`` calls per batch) for the first call
  only: ``jax.Array.devices()`` / ``torch.Tensor.device`` (:func:`bench.measure.placement.output_evidence`).
- Training device: the first GPU. Without one, JAX gets a second host device from
  ``XLA_FLAGS=--xla_force_host_platform_device_count=2`` (set by :func:`configure_worker` before JAX
  starts) and ``cpu:1`` stands in for the GPU: plain placement there runs fine on a 2-core box, where
  DataParallel over fake host devices has aborted with SIGABRT. torch has a single CPU device, so training and prediction share it:
  such a case can be ``ok`` only with a reason saying it proves correctness and cost, not a move.
- Seen with Keras 3.15.1 / torch 2.13 on a CPU: ``clone`` and ``saved_model`` fail under
  ``keras.device("cpu:0")`` while building the Dropout layers: Keras' torch ``Variable`` ends with
  ``Parameter(...).to("cpu:0")``, which copies (a CPU tensor reports ``cpu``, not ``cpu:0``; ``Tensor.to``
  returns ``self`` only when the device already matches, https://pytorch.org/docs/stable/generated/torch.Tensor.to.html),
  the copy is a plain tensor, and ``torch.nn.ParameterDict`` re-wraps the Dropout's int seed state as a
  gradient-requiring Parameter: ``Only Tensors of floating point and complex dtype can require gradients``.
  ``keras.device("cpu")`` does not hit it. The failure is recorded, with that hint in the reason.

Nothing here imports TensorFlow on JAX or torch: the GPU machine may not have it.
"""

from __future__ import annotations

import contextlib
import math
import os
import resource
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from bench.analyze.stats import summarize
from bench.cases import SUPPORTED_BACKENDS, CpuPredictCase
from bench.config import BenchConfig
from bench.measure.placement import (
    Evidence,
    capture_fd,
    compute_evidence,
    output_devices,
    output_evidence,
    same_device,
    short_device,
)
from bench.measure.records import CaseClock, base_record, finish, key_line
from bench.store.schema import CaseRecord

# TensorFlow's C++ runtime only writes placer lines at INFO level; bench.run.sweep merges this into the
# worker's env for every backend (harmless on JAX and torch; see configure_worker for their own set-up).
WORKER_ENV: dict[str, str] = {"TF_CPP_MIN_LOG_LEVEL": "0"}
PREDICT_DEVICE = "/device:CPU:0"  # TensorFlow
PREDICT_DEVICES = {"tensorflow": PREDICT_DEVICE, "jax": "cpu:0", "torch": "cpu:0"}
REFERENCE_BATCH = 1024
# One extra host device for JAX to train on when there is no GPU (only affects the CPU platform).
JAX_HOST_DEVICES_FLAG = "--xla_force_host_platform_device_count"
STRATEGY_SKIPPED = {
    "jax": "tf.distribute strategies exist only on the TensorFlow backend; the JAX equivalent "
           "keras.distribution shards over a device mesh and is not a device scope for predict",
    "torch": "tf.distribute strategies exist only on the TensorFlow backend, and Keras has no distribution "
             "API for torch (keras.distribution supports JAX only)",
}
# Seen on Keras 3.15.1 + torch (see the module docstring); added to the reason of a matching failure.
_TORCH_CPU0_HINT = ("Keras' torch Variable calls Parameter.to('cpu:0'), which copies a CPU tensor (it reports "
                    "'cpu') into a plain tensor, and the Dropout's int seed state is then re-wrapped as a "
                    "Parameter; keras.device('cpu') does not hit this")

# float32: both sides compute the same float32 maths; only summation order may differ.
# Mixed precision: activations are rounded to 16 bits between layers, and the training device (XLA, GPU
# tensor cores) may round at different points than the CPU kernels, so allow 4 units in the last place
# at 1.0 (probabilities are <= 1): bfloat16 has 7 mantissa bits, float16 has 10.
TOLERANCE = {"float32": 1e-5, "mixed_bfloat16": 4 * 2.0**-7, "mixed_float16": 4 * 2.0**-10}
# float32 reference made on a GPU by TensorFlow or JAX: both run float32 matmuls as TensorFloat-32 (10
# mantissa bits) on Ampere and newer by default (tf.config.experimental.enable_tensor_float_32_execution:
# "TensorFloat-32 is enabled by default"; https://docs.jax.dev/en/latest/201/precision.html: "TF32 on recent
# GPUs"), so float16's tolerance applies. torch keeps full float32 matmuls unless told otherwise.
TF32_TOLERANCE = 4 * 2.0**-10
_TF32_BY_DEFAULT = ("tensorflow", "jax")


@dataclass(frozen=True)
class CpuSetup:
    """What the worker's devices look like, fixed before the framework initialised."""

    backend: str
    train_device: str  # "/device:GPU:0" / "gpu:0", or "/device:CPU:1" / "cpu:1" / torch's "cpu" standing in
    stand_in: bool
    predict_device: str = PREDICT_DEVICE
    note: str = ""

    @property
    def same_device(self) -> bool:
        """True where training had to run on the predict device itself (torch without a GPU)."""
        return same_device(self.train_device, self.predict_device)

    @property
    def train_kind(self) -> str:
        return "gpu" if short_device(self.train_device).startswith("GPU") else "cpu"


def configure_worker(backend: str) -> CpuSetup:
    """Placement logging and the training device; call before anything imports the framework.

    Imports only the worker's own framework: TensorFlow is never imported for JAX or torch.
    """
    if backend not in SUPPORTED_BACKENDS:
        raise ValueError(f"cpu_predict supports {', '.join(SUPPORTED_BACKENDS)} only, got {backend!r}")
    if backend == "jax":
        return _configure_jax()
    if backend == "torch":
        return _configure_torch()
    os.environ.update(WORKER_ENV)  # read once, when TensorFlow first logs
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        for gpu in gpus:
            with contextlib.suppress(RuntimeError, ValueError):
                tf.config.experimental.set_memory_growth(gpu, True)
        setup = CpuSetup(backend, "/device:GPU:0", False, note=f"{len(gpus)} GPU(s) visible; training on GPU:0")
    else:
        cpus = tf.config.list_physical_devices("CPU")
        tf.config.set_logical_device_configuration(cpus[0], [tf.config.LogicalDeviceConfiguration()] * 2)
        setup = CpuSetup(backend, "/device:CPU:1", True,
                         note="no GPU visible: logical CPU:1 stands in for the GPU")
    tf.debugging.set_log_device_placement(True)
    return setup


def with_host_devices(xla_flags: str, count: int = 2) -> str:
    """``XLA_FLAGS`` with at least ``count`` host devices; a count already set (e.g. by bench.run.sweep) is kept."""
    if JAX_HOST_DEVICES_FLAG in xla_flags:
        return xla_flags
    return f"{xla_flags} {JAX_HOST_DEVICES_FLAG}={count}".strip()


def _configure_jax() -> CpuSetup:
    # Read when JAX's CPU client starts, i.e. on the first jax.devices() below, not at import.
    os.environ["XLA_FLAGS"] = with_host_devices(os.environ.get("XLA_FLAGS", ""))
    import jax

    gpus = [d for d in jax.devices() if d.platform == "gpu"]
    cpus = jax.devices("cpu")
    if gpus:
        return CpuSetup("jax", "gpu:0", False, PREDICT_DEVICES["jax"],
                        note=f"{len(gpus)} GPU(s) visible; training on gpu:0 ({gpus[0].device_kind})")
    if len(cpus) >= 2:
        return CpuSetup("jax", "cpu:1", True, PREDICT_DEVICES["jax"],
                        note=f"no GPU visible: host device cpu:1 ({JAX_HOST_DEVICES_FLAG}) stands in for the GPU")
    return CpuSetup("jax", "cpu:0", True, PREDICT_DEVICES["jax"],
                    note="no GPU visible and JAX started with one host device: training and predict share cpu:0")


def _configure_torch() -> CpuSetup:
    import torch

    if torch.cuda.is_available():
        name = torch.cuda.get_device_name(0)
        return CpuSetup("torch", "gpu:0", False, PREDICT_DEVICES["torch"],
                        note=f"{torch.cuda.device_count()} GPU(s) visible; training on cuda:0 ({name})")
    # torch has one CPU device; "cpu" (not "cpu:0") so training is not hit by the cpu:0 problem above.
    return CpuSetup("torch", "cpu", True, PREDICT_DEVICES["torch"],
                    note="no GPU visible: torch has a single CPU device, so training and predict share it")


def tolerance(precision: str, backend: str = "tensorflow", train_kind: str = "cpu") -> float:
    """Allowed max |diff| against the training device's predictions (see TF32_TOLERANCE)."""
    if precision == "float32" and train_kind == "gpu" and backend in _TF32_BY_DEFAULT:
        return TF32_TOLERANCE
    return TOLERANCE[precision]


_WHAT_RAN = {"MatMul": "MatMuls", "xla_cluster": "the XLA cluster", "output_arrays": "predict outputs (JAX arrays)",
             "output_tensors": "predict outputs (torch tensors)"}


def judge(evidence: Evidence, predict_device: str, max_abs_diff: float | None,
          tol: float, train_device: str | None = None) -> tuple[str, str | None]:
    """Status and reason: ``ok`` needs right predictions *and* compute proven on ``predict_device``.

    When ``train_device`` is the predict device itself (torch without a GPU), an ``ok`` says so in its
    reason: the run proves correctness and cost, not that prediction moved off the training device.
    """
    right = max_abs_diff is not None and max_abs_diff <= tol  # NaN compares False: wrong
    if evidence.source is None:
        return "failed", f"could not prove where predict ran: {evidence.missing}"
    if not evidence.on(predict_device):
        what = _WHAT_RAN.get(evidence.source, evidence.source)
        verb = "were" if evidence.source.startswith("output") else "ran"
        reason = f"{what} {verb} on {', '.join(evidence.devices)}, not {predict_device}"
        outer = [d for d in evidence.function_devices if d not in evidence.devices]
        if outer:
            reason += f" (the outer function was dispatched on {', '.join(outer)})"
        if not right:
            reason += f"; predictions also differ by {max_abs_diff:.3g}"
        return "not_on_cpu", reason
    if not right:
        return "wrong", f"max |diff| {max_abs_diff:.3g} against the training device exceeds the tolerance {tol:g}"
    if train_device is not None and same_device(train_device, predict_device):
        return "ok", (f"training device == predict device ({short_device(predict_device)}): this run proves "
                      "correct predictions on the CPU and their cost only, not a move off the training device")
    return "ok", None


# --------------------------------------------------------------------------- trained models


@dataclass
class Trained:
    """A model trained on the training device, and its predictions there (the reference)."""

    model: Any = None
    reference: Any = None
    info: dict[str, Any] = field(default_factory=dict)
    error: BaseException | None = None


# (backend, precision, train_jit_compile) -> family -> Trained. Holds one key at a time.
_TRAINED: dict[tuple[Any, ...], dict[str, Trained]] = {}


def clear_trained_models() -> None:
    """Drop cached models and Keras' global state (which also resets the dtype policy to float32)."""
    _TRAINED.clear()
    if "keras" in sys.modules:
        import keras

        keras.backend.clear_session()


def _trained(case: CpuPredictCase, config: BenchConfig, x_predict: Any, train_x: Any, train_y: Any,
             setup: CpuSetup, clock: Callable[[], float]) -> Trained:
    """Train once per (precision, train_jit_compile, family); later batch sizes reuse the model."""
    families = _TRAINED[(case.backend, case.precision, case.train_jit_compile)]
    if case.family in families:
        trained = families[case.family]
        trained.info["reused"] = True
        return trained
    trained = Trained()
    try:
        _train(case, config, x_predict, train_x, train_y, setup, clock, trained)
    except Exception as exc:  # noqa: BLE001 - kept: every case of this family reports it
        trained.error = exc
    families[case.family] = trained
    return trained


def _train(case: CpuPredictCase, config: BenchConfig, x_predict: Any, train_x: Any, train_y: Any,
           setup: CpuSetup, clock: Callable[[], float], trained: Trained) -> None:
    import keras

    from bench.measure.model import build_model, compile_model

    cp = config.cpu_predict
    scope: Any = contextlib.nullcontext()
    info: dict[str, Any] = {"family": case.family, "reused": False, "strategy": None}
    trained.info = info
    if case.family == "strategy":
        strategy, info["strategy"], info["strategy_note"] = _strategy_for(setup.train_device)
        scope = strategy.scope()
    n = cp.train_steps * cp.train_batch
    epochs = max(1, math.ceil(n / len(train_x)))
    x, y = (train_x[:n], train_y[:n]) if n <= len(train_x) else (train_x, train_y)
    t0 = clock()
    with scope, keras.device(setup.train_device):
        model = build_model(seed=config.measure.seed)
        compile_model(model, case.train_jit_compile)
        history = model.fit(x, y, batch_size=cp.train_batch, epochs=epochs, shuffle=False, verbose=0)
    info.update(seconds=clock() - t0, steps=epochs * math.ceil(len(x) / cp.train_batch),
                final_loss=float(history.history["loss"][-1]), jit_compile_resolved=bool(model.jit_compile),
                variable_devices=_variable_devices(model))
    with keras.device(setup.train_device):
        trained.reference = model.predict(x_predict, batch_size=REFERENCE_BATCH, verbose=0)
    trained.model = model


def _strategy_for(train_device: str) -> tuple[Any, str, str]:
    import tensorflow as tf

    try:
        return tf.distribute.MirroredStrategy([train_device]), "MirroredStrategy", ""
    except (ValueError, RuntimeError) as exc:
        note = f"MirroredStrategy unavailable ({key_line(str(exc))}); OneDeviceStrategy used"
        return tf.distribute.OneDeviceStrategy(train_device), "OneDeviceStrategy", note


def _variable_devices(model: Any) -> list[str]:
    devices = set()
    for variable in model.weights:
        with contextlib.suppress(AttributeError, RuntimeError, ValueError):
            value = variable.value
            if callable(getattr(value, "devices", None)):  # jax.Array: the set of devices holding it
                devices.update(str(d) for d in value.devices())
            else:  # tf.Variable.device (full name), torch.Tensor.device
                devices.add(str(value.device))
    return sorted(devices)


@contextlib.contextmanager
def _recording_output_devices(model: Any, backend: str) -> Iterator[list[tuple[str, ...]]]:
    """Wrap ``model.predict_function`` (what ``predict`` calls per batch) to record its outputs' devices.

    ``predict`` reuses an existing ``predict_function`` (``make_predict_function`` returns early unless
    forced), so the wrapper sees exactly the calls predict makes; the original is restored afterwards so the
    steady rounds time Keras' own function.
    """
    original = model.predict_function
    batches: list[tuple[str, ...]] = []

    def recording(*args: Any) -> Any:
        result = original(*args)
        batches.append(output_devices(result[0] if backend == "jax" else result))  # jax: (outputs, state)
        return result

    model.predict_function = recording
    try:
        yield batches
    finally:
        model.predict_function = original


# --------------------------------------------------------------------------- one case


def run_cpu_predict_case(case: CpuPredictCase, config: BenchConfig, data: Any, setup: CpuSetup, benchmark: Any,
                         clock: Callable[[], float] = time.perf_counter) -> CaseRecord:
    """Measure one case and return its record; a method that fails is a result, never an exception."""
    from bench.measure.model import precision_policy

    case_clock = CaseClock()
    record = base_record("cpu_predict", case.case_id, case.params(), data.spec.source, case_clock,
                         flags={"unstable": False, "stand_in_device": setup.stand_in},
                         devices={"strategy": None, "devices": [setup.predict_device], "replicas": 1,
                                  "kind": "cpu", "simulated": False})
    metrics = record["metrics"]
    metrics.update(train_device=setup.train_device, train_device_stand_in=setup.stand_in,
                   train_device_is_predict_device=setup.same_device,
                   tolerance=tolerance(case.precision, case.backend, setup.train_kind), total_s=None,
                   max_abs_diff=None)
    if case.method == "strategy" and case.backend != "tensorflow":
        return finish(record, case_clock, "skipped", STRATEGY_SKIPPED[case.backend])
    samples = config.cpu_predict.predict_samples or len(data.x_test)
    x = data.x_test[:samples]
    metrics["predict_samples"] = len(x)
    key = (case.backend, case.precision, case.train_jit_compile)
    if key not in _TRAINED:
        clear_trained_models()  # outside precision_policy: clear_session resets the policy
        _TRAINED[key] = {}
    try:
        with precision_policy(case.precision):
            trained = _trained(case, config, x, data.x_train, data.y_train, setup, clock)
            metrics["train"] = dict(trained.info)
            record["devices"]["strategy"] = trained.info.get("strategy")
            if trained.error is not None:
                reason = f"training on {setup.train_device} failed: {type(trained.error).__name__}: " \
                         f"{failure_line(trained.error)}"
                metrics["failed_in"] = "train"
                return _finish(record, case_clock, "failed", reason, trained.error)
            status, reason, error = _measure(case, config, x, setup, trained, benchmark, clock, record)
    except Exception as exc:  # noqa: BLE001 - any framework error is this case's result
        return _finish(record, case_clock, "failed", error=exc, setup=setup)
    return _finish(record, case_clock, status, reason, error, setup)


def failure_line(exc: BaseException) -> str:
    """The key line of an exception; for Keras' nested deserialization errors, the innermost cause.

    ``clone_model`` / ``load_model`` wrap the real error in "could not be deserialized properly ...
    Exception encountered: ..." once per nesting level; the last "Exception encountered:" is the cause.
    """
    message = str(exc)
    marker = "Exception encountered:"
    if marker in message:
        message = message.rsplit(marker, 1)[1]
    return key_line(message)


def _finish(record: dict[str, Any], case_clock: CaseClock, status: str, reason: str | None = None,
            error: BaseException | None = None, setup: CpuSetup | None = None) -> CaseRecord:
    """Close a case that got as far as training: the worker's peak memory, the innermost error line."""
    record["metrics"]["peak_rss_mib"] = _peak_rss_mib()
    line = failure_line(error) if error is not None else None
    if error is not None and reason is None:
        reason = f"{type(error).__name__}: {line}"
        if (setup is not None and setup.backend == "torch" and setup.predict_device == "cpu:0"
                and "Only Tensors of floating point" in line):
            reason += f" ({_TORCH_CPU0_HINT})"
    return finish(record, case_clock, status, reason, error, error_message=line)


def _measure(case: CpuPredictCase, config: BenchConfig, x: Any, setup: CpuSetup, trained: Trained, benchmark: Any,
             clock: Callable[[], float], record: dict[str, Any]) -> tuple[str, str | None, BaseException | None]:
    import keras
    import numpy as np

    metrics = record["metrics"]
    metrics.update(prepare_s=None, first_predict_s=None, steady_round_s=[], steady_s=summarize([]))
    with keras.device(setup.predict_device):
        t0 = clock()
        metrics["failed_in"] = "prepare"  # cleared below; an exception from _prepare leaves it set
        model = _prepare(case, trained.model, metrics, clock)
        metrics["failed_in"] = None
        metrics["prepare_s"] = clock() - t0 if case.method not in ("naive", "strategy") else 0.0
        metrics["predict_jit_compile"] = bool(model.jit_compile)
        metrics["predict_dtype_policy"] = getattr(model.dtype_policy, "name", str(model.dtype_policy))
        # JAX moves variables to where the jitted predict ran; compare with variable_devices afterwards.
        metrics["variable_devices_before_predict"] = _variable_devices(model)
        model.make_predict_function(force=True)  # a fresh function: its placement is logged on first call
        error = None
        on_tf = case.backend == "tensorflow"
        outputs = contextlib.nullcontext([]) if on_tf else _recording_output_devices(model, case.backend)
        with capture_fd(2) as captured, outputs as batch_devices:
            t0 = clock()
            try:
                predictions = model.predict(x, batch_size=case.predict_batch, verbose=0)
            except Exception as exc:  # noqa: BLE001 - the failure is this method's result
                error = exc
            first_s = clock() - t0
        if on_tf:
            evidence = compute_evidence(captured[0])
        else:
            evidence = output_evidence("output_arrays" if case.backend == "jax" else "output_tensors", batch_devices)
        metrics.update(predict_device=", ".join(evidence.devices) or None, predict_devices=list(evidence.devices),
                       placement_source=evidence.source, placement_proof=list(evidence.proof),
                       function_devices=list(evidence.function_devices), variable_devices=_variable_devices(model))
        if error is not None:
            metrics["failed_after_s"] = first_s
            metrics["failed_in"] = "first_predict"
            return "failed", None, error
        metrics["first_predict_s"] = first_s
        reference = trained.reference
        if predictions.shape != reference.shape:
            diff = math.inf
        else:
            diff = float(np.max(np.abs(predictions.astype(np.float64) - reference.astype(np.float64))))
            metrics["argmax_agreement"] = float(np.mean(predictions.argmax(-1) == reference.argmax(-1)))
        metrics["max_abs_diff"] = diff
        steady = _steady_rounds(model, x, case.predict_batch, config.cpu_predict.rounds, benchmark, clock)
    metrics["steady_round_s"] = steady
    metrics["steady_s"] = summarize(steady)
    metrics["total_s"] = metrics["prepare_s"] + first_s + metrics["steady_s"]["median"]
    cv = metrics["steady_s"]["cv"]
    record["flags"]["unstable"] = bool(cv is not None and cv > config.measure.cv_threshold)
    benchmark.extra_info.update(case_id=case.case_id, total_s=metrics["total_s"])
    status, reason = judge(evidence, setup.predict_device, diff, metrics["tolerance"], setup.train_device)
    return status, reason, None


def _prepare(case: CpuPredictCase, model: Any, metrics: dict[str, Any], clock: Callable[[], float]) -> Any:
    """The method's own step, run under the CPU device scope; returns the model that will predict."""
    import keras

    from bench.measure.model import compile_model

    if case.method == "recompile":
        compile_model(model, jit_compile=False)
        return model
    if case.method == "clone":
        clone = keras.models.clone_model(model)
        clone.set_weights(model.get_weights())
        return clone
    if case.method == "saved_model":
        with tempfile.TemporaryDirectory(prefix="bench-cpu-predict-") as tmp:
            path = os.path.join(tmp, "model.keras")
            t0 = clock()
            model.save(path)
            metrics["save_s"] = clock() - t0
            t0 = clock()
            loaded = keras.models.load_model(path)
            metrics["load_s"] = clock() - t0
        return loaded
    return model  # naive, strategy: nothing to prepare


def _steady_rounds(model: Any, x: Any, batch: int, rounds: int, benchmark: Any,
                   clock: Callable[[], float]) -> list[float]:
    def predict() -> None:
        model.predict(x, batch_size=batch, verbose=0)

    # Placement logging writes a line per executed op; keep it out of the worker log.
    with capture_fd(2):
        if getattr(benchmark, "disabled", False):  # --benchmark-disable: time the rounds ourselves
            samples = []
            for _ in range(rounds):
                t0 = clock()
                predict()
                samples.append(clock() - t0)
            return samples
        benchmark.pedantic(predict, rounds=rounds, iterations=1, warmup_rounds=0)
    return [float(s) for s in benchmark.stats.stats.data]


def _peak_rss_mib() -> float:
    # ru_maxrss is KiB on Linux and the peak of the whole worker so far, not of this method alone.
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, 1)

