"""Training throughput of one case: warm-up (reported as compile time), calibration, timed rounds.

The rounds are timed by pytest-benchmark (``benchmark.pedantic``, ``time.perf_counter``). A round is one
epoch of a single long ``model.fit`` (see :class:`EpochGate`); it ends only after the epoch's loss has
been converted to a Python float, which waits for the device — so no clock is read while device work is
still queued. An independent monotonic clock around all rounds is recorded next to pytest-benchmark's
sum as a cross-check.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from bench.analyze.stats import summarize
from bench.cases import TrainCase
from bench.config import BenchConfig
from bench.measure.data import Mnist
from bench.measure.devices import DeviceInventory, Placement, place
from bench.measure.faults import inject, slowdown_callbacks
from bench.measure.model import build_model, compile_model, optimizer_name, precision_policy
from bench.measure.records import CaseClock, CaseSkipped, base_record, measure_into
from bench.monitor.select import UnavailableMonitor, monitor_for
from bench.store.schema import CaseRecord


class NonFiniteLoss(ArithmeticError):
    pass


class TrainInput:
    """Feeds ``fit`` with epochs of exactly ``steps`` batches of ``global_batch`` from in-memory MNIST.

    TensorFlow gets a repeated, shuffled, prefetched ``tf.data`` pipeline built once (what TF users
    write), with ``steps_per_epoch``. JAX and torch get a ``keras.utils.PyDataset`` that cycles through
    the numpy arrays in full batches, so an epoch can be longer than one pass over the data.
    """

    def __init__(self, backend: str, data: Mnist, global_batch: int, seed: int):
        self.backend = backend
        self.global_batch = global_batch
        self.x, self.y = data.x_train, data.y_train
        self.full_steps = len(self.x) // global_batch
        if self.full_steps == 0:
            raise CaseSkipped(f"global batch {global_batch} is larger than the {len(self.x)} training samples")
        self.dataset = None
        self.fault_callbacks: list[Any] = []
        if backend == "tensorflow":
            import tensorflow as tf

            self.dataset = (
                tf.data.Dataset.from_tensor_slices((self.x, self.y))
                .shuffle(10_000, seed=seed, reshuffle_each_iteration=True)
                .repeat()
                .batch(global_batch, drop_remainder=True)
                .prefetch(tf.data.AUTOTUNE)
            )
            self.description = "tf.data from in-memory arrays: shuffle(10000), repeat, batch, prefetch(AUTOTUNE)"
        else:
            self.description = "keras.utils.PyDataset cycling in-memory numpy arrays in full batches"

    def fit(self, model: Any, steps: int, epochs: int = 1, callbacks: list[Any] | None = None) -> Any:
        callbacks = [*(callbacks or []), *self.fault_callbacks]  # [faults] slowdown (bench.measure.faults)
        if self.dataset is not None:
            return model.fit(self.dataset, epochs=epochs, steps_per_epoch=steps, callbacks=callbacks, verbose=0)
        return model.fit(_cycling_batches(self.x, self.y, self.global_batch, steps), epochs=epochs,
                         callbacks=callbacks, verbose=0)


def _cycling_batches(x: Any, y: Any, batch: int, steps: int) -> Any:
    import keras

    class CyclingBatches(keras.utils.PyDataset):
        def __init__(self) -> None:
            super().__init__()
            self.full_steps = len(x) // batch

        def __len__(self) -> int:
            return steps

        def __getitem__(self, index: int) -> tuple[Any, Any]:
            start = (index % self.full_steps) * batch
            return x[start:start + batch], y[start:start + batch]

    return CyclingBatches()


def _last_logs(history: Any) -> dict[str, float]:
    # float() of the last logged value waits for the device: the work is really over.
    return {key: float(values[-1]) for key, values in history.history.items()}


def _epoch_timer(clock: Callable[[], float]) -> Any:
    """A callback recording each epoch's duration, the device synchronised at the end of each."""
    import keras

    class EpochTimer(keras.callbacks.Callback):
        def __init__(self) -> None:
            super().__init__()
            self.durations: list[float] = []

        def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
            self._t0 = clock()

        def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
            float((logs or {}).get("loss", 0.0))
            self.durations.append(clock() - self._t0)

    return EpochTimer()


class EpochGate:
    """Runs one long ``fit`` in a thread and hands each epoch to pytest-benchmark as one round.

    Calling ``fit`` once per round would time Keras' per-call set-up too: under MirroredStrategy that
    is about 0.16 s per call on a 2-core CPU (distributing the dataset, building the multi-device
    iterator), against ~0.006 s per step — a user's single ``fit`` pays it once, not every epoch. Here
    the epoch begins only when the timed target releases it, and the target returns only after the
    epoch's loss has been read back as a Python float, so the device has finished.
    """

    def __init__(self, feed: TrainInput, model: Any, steps: int, epochs: int):
        import keras

        gate = self
        self.go = threading.Semaphore(0)
        self.done = threading.Semaphore(0)
        self.logs: dict[str, float] = {}
        self.error: BaseException | None = None
        self.abort = False

        class Gate(keras.callbacks.Callback):
            def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
                gate.go.acquire()
                if gate.abort:
                    raise _Aborted()

            def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
                gate.logs = {k: float(v) for k, v in (logs or {}).items()}
                gate.done.release()

        def body() -> None:
            try:
                feed.fit(model, steps, epochs=epochs, callbacks=[Gate()])
            except _Aborted:
                pass
            except BaseException as exc:  # noqa: BLE001 - handed to the timing thread
                gate.error = exc
            finally:
                gate.done.release()

        self.thread = threading.Thread(target=body, name="bench-fit", daemon=True)

    def __enter__(self) -> EpochGate:
        self.thread.start()
        return self

    def round(self) -> dict[str, float]:
        self.go.release()
        self.done.acquire()
        if self.error is not None:
            raise self.error
        return self.logs

    def __exit__(self, *exc: Any) -> None:
        self.abort = True
        self.go.release()
        self.thread.join(timeout=600)


class _Aborted(Exception):
    pass


def calibrate(run_epoch: Callable[[int], float], start_steps: int, min_round_s: float,
              max_steps: int) -> tuple[int, list[dict[str, float]]]:
    """Steps per round so a round lasts at least ``min_round_s`` (pyperf's calibrate-loops idea).

    ``run_epoch(steps)`` returns the duration of one epoch of that many steps, excluding per-``fit``
    set-up. Grows geometrically until an epoch lasts a fifth of the target, then scales linearly with
    10 % headroom.
    """
    steps = max(1, start_steps)
    trials = []
    while True:
        seconds = run_epoch(steps)
        trials.append({"steps": steps, "seconds": seconds})
        if seconds >= 0.2 * min_round_s or steps >= max_steps:
            break
        growth = 10.0 if seconds <= 0 else min(10.0, max(2.0, 0.3 * min_round_s / seconds))
        steps = min(max_steps, int(math.ceil(steps * growth)))
    per_step = seconds / steps
    target = int(math.ceil(1.1 * min_round_s / per_step)) if per_step > 0 else max_steps
    return max(1, min(max_steps, target)), trials


def run_train_case(case: TrainCase, config: BenchConfig, data: Mnist, inventory: DeviceInventory,
                   benchmark: Any, clock: Callable[[], float] = time.perf_counter) -> CaseRecord:
    """Measure one case and return its record; failures and skips are records, not exceptions."""
    case_clock = CaseClock()
    record = base_record("train", case.case_id, case.params(), data.spec.source, case_clock,
                         flags={"simulated": inventory.simulated, "unstable": False,
                                "gpu_metrics_unreliable": False})

    def body() -> None:
        placement = place(inventory, case.gpus)
        record["devices"] = placement.describe()
        record["flags"]["simulated"] = placement.simulated
        with precision_policy(case.precision), placement.scope:
            _measure(case, config, data, placement, benchmark, clock, record)

    return measure_into(record, case_clock, body)


def _measure(case: TrainCase, config: BenchConfig, data: Mnist, placement: Placement, benchmark: Any,
             clock: Callable[[], float], record: dict[str, Any]) -> None:
    m = config.measure
    metrics = record["metrics"]
    metrics.update(per_replica_batch=case.global_batch // placement.replicas, global_batch=case.global_batch,
                   replicas=placement.replicas)

    fault = inject(case.case_id)
    model = build_model(seed=m.seed)
    compile_model(model, case.jit_compile, m.steps_per_execution)
    if fault == "nan":
        # Injected (bench.measure.faults): a NaN output bias makes the real loss non-finite. NaN pixels would
        # not do — ReLU maps NaN to 0 on oneDNN, and the loss stays finite.
        bias = model.layers[-1].bias
        bias.assign(np.full(bias.shape, np.nan, dtype="float32"))
    feed = TrainInput(case.backend, data, case.global_batch, m.seed)
    feed.fault_callbacks = slowdown_callbacks(case.case_id, config.faults, record)  # [faults] slowdown: gate tests
    metrics["input_pipeline"] = feed.description

    t0 = clock()
    _last_logs(feed.fit(model, m.warmup_steps))
    metrics["compile_s"] = clock() - t0
    metrics["warmup_steps"] = m.warmup_steps
    metrics["jit_compile_resolved"] = bool(model.jit_compile)
    metrics["optimizer"] = optimizer_name(model)

    def epoch_seconds(steps: int) -> float:
        # Two epochs: the first absorbs a retrace for the new epoch length; the second is the sample.
        timer = _epoch_timer(clock)
        feed.fit(model, steps, epochs=2, callbacks=[timer])
        return timer.durations[-1]

    steps, trials = calibrate(epoch_seconds, m.warmup_steps, m.min_round_s, m.max_steps_per_round)
    metrics["calibration"] = trials
    last: dict[str, Any] = {}

    monitor = monitor_for(placement, config.nvml)
    # Monitor cost: the same number of unmonitored rounds, half before and half after the monitored
    # ones (so slow drift — clocks, temperature — does not masquerade as overhead).
    # Only where something is sampled: the cost of an unavailable monitor is nothing, and timing it
    # would record noise as "overhead".
    off_rounds = m.rounds if config.nvml.measure_overhead and not isinstance(monitor, UnavailableMonitor) else 0
    off_before = off_rounds // 2
    off_round_s: list[float] = []
    # One untimed warm-up epoch, then the timed ones, all inside a single fit.
    with EpochGate(feed, model, steps, epochs=1 + m.rounds + off_rounds) as gate:

        def one_round() -> None:
            logs = gate.round()
            last["logs"] = logs
            loss = logs.get("loss", math.nan)
            if not math.isfinite(loss):
                raise NonFiniteLoss(f"non-finite loss {loss} during timed rounds")

        def unmonitored(n: int) -> None:
            for _ in range(n):
                t = clock()
                gate.round()
                off_round_s.append(clock() - t)

        gate.round()  # warm-up epoch: the iterator and the epoch-length trace are ready after it
        unmonitored(off_before)
        with monitor:
            wall0 = time.monotonic()
            benchmark.pedantic(one_round, rounds=m.rounds, iterations=1, warmup_rounds=0)
            wall_s = time.monotonic() - wall0
        unmonitored(off_rounds - off_before)
    round_s = [float(x) for x in benchmark.stats.stats.data]
    steps_run = steps
    samples_per_round = steps_run * case.global_batch

    metrics.update(
        steps_per_round=steps_run,
        samples_per_round=samples_per_round,
        round_s=round_s,
        samples_per_second=summarize([samples_per_round / s for s in round_s]),
        step_time_s=summarize([s / steps_run for s in round_s]),
        final_loss=last["logs"].get("loss"),
        final_accuracy=last["logs"].get("accuracy"),
        timing_check={"harness_s": sum(round_s), "wall_s": wall_s,
                      "rel_diff": abs(wall_s - sum(round_s)) / wall_s if wall_s else None},
        gpu_metrics=monitor.result(),
    )
    if off_round_s:
        on = metrics["samples_per_second"]["median"]
        off = summarize([samples_per_round / s for s in off_round_s])
        metrics["monitor_overhead"] = {
            "off_round_s": off_round_s,
            "off_samples_per_second": off,
            # Positive = the monitored rounds were slower. Compare with the CV: below it, it is noise.
            "overhead_pct": 100.0 * (off["median"] - on) / off["median"],
        }
    cv = metrics["samples_per_second"]["cv"]
    record["flags"]["unstable"] = bool(cv is not None and cv > m.cv_threshold)
    # reliable is None when there was nothing to sample (CPU replicas): not a doubtful measurement.
    record["flags"]["gpu_metrics_unreliable"] = metrics["gpu_metrics"].get("reliable") is False
    benchmark.extra_info.update(case_id=case.case_id, samples_per_second=metrics["samples_per_second"]["median"])
