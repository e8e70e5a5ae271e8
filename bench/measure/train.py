"""Training throughput of one case: warm-up (reported as compile time), then the shared timed-rounds protocol.

The rounds follow :mod:`bench.measure.protocol` (calibration, warm-up round, rounds through
``benchmark.pedantic``, NVML around exactly them, the independent wall clock). A round is whole epochs of
a single long ``model.fit`` (see :class:`EpochGate`); it ends only after the last epoch's loss has been
converted to a Python float, which waits for the device — so no clock is read while device work is still
queued. What one epoch is depends on the input (:mod:`bench.measure.inputs`): one pass over the data for
inputs a user's ``fit`` walks afresh every epoch, ``steps_per_epoch`` calibrated steps for endless ones.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np

from bench.cases import TrainCase
from bench.config import BenchConfig
from bench.measure import flavour
from bench.measure.data import Mnist
from bench.measure.devices import DeviceInventory, Placement, place
from bench.measure.faults import inject, slowdown_callbacks
from bench.measure.inputs import PASS, make_feed
from bench.measure.model import build_model, compile_model, optimizer_name, precision_policy
from bench.measure.protocol import RoundSettings, measure_rounds, round_up, throughput_metrics
from bench.measure.records import CaseClock, CaseSkipped, base_record, measure_into
from bench.measure.rounds import FitRounds, execution_counter, last_logs
from bench.monitor.select import monitor_for
from bench.store.schema import CaseRecord


def run_train_case(case: TrainCase, config: BenchConfig, data: Mnist, inventory: DeviceInventory,
                   benchmark: Any, clock: Callable[[], float] = time.perf_counter,
                   units: int | None = None) -> CaseRecord:
    """Measure one case and return its record; failures and skips are records, not exceptions.

    ``units``: the round length this case's first process calibrated (later processes reuse it)."""
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
            _measure(case, config, data, placement, benchmark, clock, record, units)

    return measure_into(record, case_clock, body)


def _measure(case: TrainCase, config: BenchConfig, data: Mnist, placement: Placement, benchmark: Any,
             clock: Callable[[], float], record: dict[str, Any], units: int | None = None) -> None:
    m = config.measure
    metrics = record["metrics"]
    # Which Keras this worker imported: with [train] environment another one may shadow the tool's own.
    metrics.update(per_replica_batch=case.global_batch // placement.replicas, global_batch=case.global_batch,
                   replicas=placement.replicas, keras_version=flavour.version())

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
    counter = execution_counter()
    t0 = clock()
    last_logs(feed.fit(model, epochs=1, steps=warmup, callbacks=[counter]))
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
        units=units,
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
