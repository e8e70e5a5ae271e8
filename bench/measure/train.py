"""Training throughput of one case: warm-up (reported as compile time), then the shared timed-rounds protocol.

The rounds follow :mod:`bench.measure.protocol` (calibration, warm-up round, rounds through
``benchmark.pedantic``, NVML around exactly them, the independent wall clock). A round is whole epochs of
a single long ``model.fit`` (see :class:`EpochGate`); it ends only after the last epoch's loss has been
converted to a Python float, which waits for the device — so no clock is read while device work is still
queued. What one epoch is depends on the input (:mod:`bench.measure.inputs`): one pass over the data for
inputs a user's ``fit`` walks afresh every epoch, ``steps_per_epoch`` calibrated steps for endless ones.
"""

from __future__ import annotations

import contextlib
import math
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from bench.cases import TrainCase
from bench.config import BenchConfig
from bench.measure import flavour
from bench.measure.data import Mnist
from bench.measure.devices import DeviceInventory, Placement, place
from bench.measure.faults import inject, slowdown_callbacks
from bench.measure.inputs import PASS, Feed, make_feed
from bench.measure.model import build_model, compile_model, optimizer_name, precision_policy
from bench.measure.protocol import NonFiniteLoss, RoundSettings, measure_rounds, round_up, throughput_metrics
from bench.measure.records import CaseClock, CaseSkipped, base_record, measure_into
from bench.monitor.select import monitor_for
from bench.store.schema import CaseRecord


def _last_logs(history: Any) -> dict[str, float]:
    # float() of the last logged value waits for the device: the work is really over.
    return {key: float(values[-1]) for key, values in history.history.items()}


def _epoch_timer(clock: Callable[[], float]) -> Any:
    """A callback recording each epoch's duration, the device synchronised at the end of each."""
    keras = flavour.keras()  # a tf_keras model takes tf_keras callbacks only

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


def _execution_counter() -> Any:
    """Counts calls of Keras' train function (one ``on_train_batch_end`` per execution of
    ``steps_per_execution`` steps). Only used in the warm-up ``fit``: a callback with a batch hook turns off
    Keras' asynchronous callback dispatch, which the timed rounds must keep."""
    keras = flavour.keras()

    class ExecutionCounter(keras.callbacks.Callback):
        def __init__(self) -> None:
            super().__init__()
            self.executions = 0

        def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
            self.executions += 1

    return ExecutionCounter()


def in_caller_state(keras: Any, body: Callable[[], None]) -> Callable[[], None]:
    """``body`` wrapped to run, in another thread, under the calling thread's Keras distribution and dtype policy.

    Keras keeps both in thread-local state (keras/src/backend/common/global_state.py: ``threading.local()``),
    so a ``fit`` started in a fresh thread would see no ``keras.distribution`` at all: on JAX a
    ``DataParallel`` case would then feed every batch as if there were one device. tf_keras has no
    ``keras.distribution``; TensorFlow's strategies are captured by ``compile`` and re-entered by ``fit``.
    """
    distribution_lib = getattr(keras, "distribution", None)
    distribution = distribution_lib.distribution() if distribution_lib is not None else None
    policy = keras.mixed_precision.dtype_policy() if hasattr(keras.mixed_precision, "dtype_policy") else None

    def wrapped() -> None:
        if distribution is not None:
            distribution_lib.set_distribution(distribution)
        if policy is not None:
            keras.mixed_precision.set_dtype_policy(policy)
        body()

    return wrapped


class EpochGate:
    """Runs one long ``fit`` in a thread and hands ``epochs_per_round`` epochs at a time to the timer.

    Calling ``fit`` once per round would time Keras' per-call set-up too: under MirroredStrategy that
    is about 0.16 s per call on a 2-core CPU (distributing the dataset, building the multi-device
    iterator), against ~0.006 s per step — a user's single ``fit`` pays it once, not every epoch. Here a
    round begins only when the timed target releases it, and the target returns only after the round's
    last epoch's loss has been read back as a Python float, so the device has finished. Rounds of several
    epochs exist for inputs whose epoch is one pass over the data (:mod:`bench.measure.inputs`): each
    epoch then includes exactly the per-epoch set-up (new permutation, new iterator) a user's ``fit`` pays.
    """

    def __init__(self, feed: Feed, model: Any, steps: int | None, epochs_per_round: int, rounds: int):
        keras = flavour.keras()

        gate = self
        self.go = threading.Semaphore(0)
        self.done = threading.Semaphore(0)
        self.logs: dict[str, float] = {}
        self.error: BaseException | None = None
        self.abort = False

        class Gate(keras.callbacks.Callback):
            def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
                if epoch % epochs_per_round == 0:
                    gate.go.acquire()
                if gate.abort:
                    raise _Aborted()

            def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
                if (epoch + 1) % epochs_per_round == 0:
                    gate.logs = {k: float(v) for k, v in (logs or {}).items()}
                    gate.done.release()

        def body() -> None:
            try:
                feed.fit(model, epochs=epochs_per_round * rounds, steps=steps, callbacks=[Gate()])
            except _Aborted:
                pass
            except BaseException as exc:  # noqa: BLE001 - handed to the timing thread
                gate.error = exc
            finally:
                gate.done.release()

        self.thread = threading.Thread(target=in_caller_state(keras, body), name="bench-fit", daemon=True)

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


class FitRounds:
    """The protocol's round source for a Keras model and its feed (:class:`bench.measure.protocol.RoundSource`).

    Units are passes for pass feeds (a round is that many one-pass epochs) and steps for endless feeds
    (a round is one epoch of that many steps).
    """

    def __init__(self, feed: Feed, model: Any, clock: Callable[[], float]):
        self.feed, self.model, self.clock = feed, model, clock
        self.last_logs: dict[str, float] = {}

    def trial(self, units: int) -> float:
        timer = _epoch_timer(self.clock)
        if self.feed.unit == PASS:
            # One more epoch than timed: the first of a new fit absorbs its set-up (and, for tf_data, the
            # trace of the partial last batch).
            self.feed.fit(self.model, epochs=1 + units, callbacks=[timer])
            return sum(timer.durations[1:])
        # Two epochs: the first absorbs a retrace for the new epoch length; the second is the sample.
        self.feed.fit(self.model, epochs=2, steps=units, callbacks=[timer])
        return timer.durations[-1]

    @contextlib.contextmanager
    def rounds(self, units: int, count: int) -> Iterator[Callable[[], None]]:
        passes = self.feed.unit == PASS
        with EpochGate(self.feed, self.model, None if passes else units, units if passes else 1, count) as gate:

            def one_round() -> None:
                logs = gate.round()
                self.last_logs = logs
                loss = logs.get("loss", math.nan)
                if not math.isfinite(loss):
                    raise NonFiniteLoss(f"non-finite loss {loss} during timed rounds")

            yield one_round


def run_train_case(case: TrainCase, config: BenchConfig, data: Mnist, inventory: DeviceInventory,
                   benchmark: Any, clock: Callable[[], float] = time.perf_counter) -> CaseRecord:
    """Measure one case and return its record; failures and skips are records, not exceptions."""
    if case.workers > 1 or case.keras != "keras3":
        # Several worker processes, or Keras 2 off TensorFlow: bench.measure.multiworker (it reuses FitRounds).
        # A one-process tf_keras case on TensorFlow gets None back and runs below like any other.
        from bench.measure.multiworker import special_case

        special = special_case(case, config, data, inventory, benchmark, clock)
        if special is not None:
            return special
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
    if case.backend == "torch" and case.steps_per_execution > 1:
        # Keras' torch trainer refuses it in compile ("steps_per_execution must be 1 with the PyTorch backend").
        raise CaseSkipped("Keras' torch backend runs one step per train-function call: steps_per_execution "
                          "must be 1 there")
    feed = make_feed(case.input, case.backend, data, case.global_batch, placement, m.seed)
    feed.extra_callbacks = tuple(slowdown_callbacks(case.case_id, config.faults, record))  # gate tests only
    metrics["input_fed"] = feed.fed.to_dict()
    metrics["input_pipeline"] = feed.fed.description
    model = build_model(seed=m.seed, uint8_input=feed.uint8)
    spe = case.steps_per_execution
    compile_model(model, case.jit_compile, spe)
    if fault == "nan":
        # Injected (bench.measure.faults): a NaN output bias makes the real loss non-finite. NaN pixels would
        # not do — ReLU maps NaN to 0 on oneDNN, and the loss stays finite.
        bias = model.layers[-1].bias
        bias.assign(np.full(bias.shape, np.nan, dtype="float32"))

    # Keras runs whole executions of spe steps (an endless input gives spe steps even when fewer are
    # asked for); a pass input also ends at the end of the data.
    warmup = round_up(m.warmup_steps, spe)
    if feed.unit == PASS:
        warmup = min(warmup, feed.fed.steps_per_pass)
    counter = _execution_counter()
    t0 = clock()
    _last_logs(feed.fit(model, epochs=1, steps=warmup, callbacks=[counter]))
    metrics["compile_s"] = clock() - t0
    metrics["warmup_steps"] = warmup
    metrics["jit_compile_resolved"] = bool(model.jit_compile)
    metrics["optimizer"] = optimizer_name(model)
    # What Keras ran, read back: the compiled setting, and the train-function calls it took for the
    # warm-up steps (ceil(warmup / spe) when every call ran spe steps).
    metrics["steps_per_execution_resolved"] = flavour.steps_per_execution(model)
    metrics["warmup_executions"] = counter.executions

    passes = feed.unit == PASS
    settings = RoundSettings(
        rounds=m.rounds,
        min_round_s=m.min_round_s,
        start_units=1 if passes else warmup,
        max_units=max(1, m.max_steps_per_round // feed.fed.steps_per_pass) if passes else m.max_steps_per_round,
        multiple=1 if passes else spe,
        measure_overhead=config.nvml.measure_overhead,
    )
    source = FitRounds(feed, model, clock)
    result = measure_rounds(source, settings, benchmark, monitor_for(placement, config.nvml), clock)
    measured, flags = throughput_metrics(result, feed.samples_per_unit, feed.steps_per_unit, m.cv_threshold)
    metrics.update(measured)
    metrics["round_unit"] = feed.unit
    metrics["units_per_round"] = result.units_per_round
    metrics["final_loss"] = source.last_logs.get("loss")
    metrics["final_accuracy"] = source.last_logs.get("accuracy")
    record["flags"].update(flags)
    benchmark.extra_info.update(case_id=case.case_id, samples_per_second=metrics["samples_per_second"]["median"])
