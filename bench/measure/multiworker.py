"""Training cases across several worker processes (``[train] workers`` > 1), and the Keras 2 row off TensorFlow.

Every process of the case's cluster runs the case in step (it joined in :mod:`bench.measure.distributed`)
and only the chief (worker 0) writes the record. The protocol is :mod:`bench.measure.protocol`'s with the
rounds of :class:`bench.measure.rounds.FitRounds` (one long ``fit``); what changes across processes:

- **Calibration** agrees on the slowest worker's trial time (all-gathered), so every worker runs the same
  steps per round (:class:`AgreedRounds`).
- **Reporting.** After the rounds every worker's round times are gathered: a round of the job lasts until
  its slowest worker finished it, so global throughput = global samples per round / that time
  (:func:`job_rounds`); each worker's own rounds and its share of the samples are kept under ``per_worker``.
- **Inputs.** TensorFlow's multi-worker tutorial feeds a ``tf.data`` pipeline of global batches that the
  strategy shards over the workers (``tf_data_prefetch`` here); Keras' JAX ``DataParallel`` shards such a
  dataset the same way (``rebatch`` + ``shard``, ``Distribution.distribute_tf_dataset`` in
  keras/src/distribution/distribution_lib.py), or takes each process's own shard of arrays with
  ``auto_shard_dataset = False`` (``numpy``, :class:`ShardFeed`). Other inputs are skipped with the reason.

Keras 3's ``fit`` under ``MultiWorkerMirroredStrategy`` fails today (keras-team/keras#20585): the case
really runs it and records the failure, so a Keras release that fixes it turns the record ``ok`` with no
change here. ``tf_keras`` (Keras 2) trains under the same strategy.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import signal
import time
import traceback
from collections.abc import Callable, Iterator
from typing import Any

from bench.cases import TrainCase
from bench.config import BenchConfig
from bench.measure import flavour
from bench.measure.data import Mnist
from bench.measure.devices import DeviceInventory, Placement, distribution_scope
from bench.measure.distributed import Cluster, ClusterMismatch, emit_to, one_line_error
from bench.measure.faults import fault_for
from bench.measure.inputs import PASS, FedInput, Feed, PrefetchFeed, make_feed
from bench.measure.model import build_model, compile_model, optimizer_name, precision_policy
from bench.measure.protocol import RoundSettings, TimedRounds, measure_rounds, round_up, throughput_metrics
from bench.measure.records import CaseClock, CaseSkipped, base_record, measure_into
from bench.measure.rounds import FitRounds, last_logs
from bench.monitor.select import monitor_for

# A fault (bench.measure.faults) only this module applies: worker 1 is SIGKILLed at its first timed round.
WORKER_DIES = "worker_dies"


def special_case(case: TrainCase, config: BenchConfig, data: Mnist, inventory: DeviceInventory, benchmark: Any,
                 clock: Callable[[], float] = time.perf_counter) -> dict[str, Any] | None:
    """The record of a case the single-process path cannot take, or None (a one-process tf_keras case on
    TensorFlow: bench.measure.train runs it with tf_keras' model and callbacks, bench.measure.flavour).
    A flavour that cannot run here (tf_keras off TensorFlow, or not installed) is skipped with the reason."""
    reason = flavour.unsupported(case.backend, case.keras)
    if reason is not None:
        clock_ = CaseClock()
        record = base_record("train", case.case_id, case.params(), data.spec.source, clock_,
                             flags={"simulated": inventory.simulated})

        def skip() -> None:
            raise CaseSkipped(reason)

        return measure_into(record, clock_, skip)
    if case.workers == 1:
        return None
    return run_multiworker_case(case, config, data, inventory, benchmark, clock)


def run_multiworker_case(case: TrainCase, config: BenchConfig, data: Mnist, inventory: DeviceInventory,
                         benchmark: Any, clock: Callable[[], float] = time.perf_counter) -> dict[str, Any]:
    cluster = getattr(inventory, "cluster", None)
    case_clock = CaseClock()
    record = base_record("train", case.case_id, case.params(), data.spec.source, case_clock,
                         flags={"simulated": inventory.simulated, "unstable": False, "gpu_metrics_unreliable": False,
                                "local_cluster": bool(cluster is not None and cluster.source == "local")})

    def body() -> None:
        if cluster is None or cluster.size != case.workers:
            raise CaseSkipped(f"this worker process is not part of a {case.workers}-worker cluster")
        record["metrics"]["cluster"] = cluster.describe()  # who took part, also when the case fails
        if cluster.mismatch:
            raise ClusterMismatch(cluster.mismatch)
        placement = _place(cluster, inventory, case)
        record["devices"] = placement.describe()
        try:
            with precision_policy(case.precision), placement.scope:
                _measure(case, config, data, cluster, placement, benchmark, clock, record)
        except (CaseSkipped, ClusterMismatch):
            raise
        except Exception as exc:  # the framework's error, as one informative line
            if cluster.progress_path:  # pytest captures a passing test's output: keep the traceback here
                emit_to(cluster.progress_path, "case_error", traceback=traceback.format_exc())
            replaced = one_line_error(exc)
            if replaced is exc:
                raise
            raise replaced from exc

    return measure_into(record, case_clock, body)


def _place(cluster: Cluster, inventory: DeviceInventory, case: TrainCase) -> Placement:
    """The case's placement: the strategy's scope on TensorFlow, the ``DataParallel`` distribution on JAX.

    Every ``fit`` of the case runs in that scope: the warm-up and the calibration trials in this thread,
    the timed rounds in EpochGate's, which takes this thread's Keras distribution with it
    (bench.measure.rounds.in_caller_state; Keras keeps it thread-local)."""
    from bench.measure.devices import require_devices

    require_devices(inventory, case.gpus)  # skipped, with the reason, where this worker has too few devices
    every_device = [d for peer in cluster.peers for d in peer.get("devices") or []]
    if cluster.backend == "tensorflow":
        replicas = cluster.strategy.num_replicas_in_sync
        if replicas != case.workers * case.gpus:
            raise CaseSkipped(f"MultiWorkerMirroredStrategy made {replicas} replicas for {case.workers} workers x "
                              f"{case.gpus} GPU(s): it takes every GPU visible to a worker, or its one CPU "
                              "(logical CPU devices are not used)")
        ordinals = [] if inventory.kind == "cpu" else list(range(case.gpus))
        return Placement("MultiWorkerMirroredStrategy", every_device, replicas, inventory.kind, inventory.simulated,
                         cluster.strategy.scope(), ordinals)
    import jax
    import keras

    devices = jax.devices()  # every process's devices: the global mesh
    if len(devices) != case.workers * case.gpus:
        raise CaseSkipped(f"JAX sees {len(devices)} devices over {case.workers} processes; the case asks for "
                          f"{case.gpus} per process")
    # numpy: every process feeds its own shard (auto_shard_dataset=False); tf.data: Keras shards it.
    distribution = keras.distribution.DataParallel(devices=devices, auto_shard_dataset=case.input != "numpy")
    ordinals = [] if inventory.kind == "cpu" else list(range(case.gpus))
    return Placement("keras.distribution.DataParallel (multi-process)", [str(d) for d in devices], len(devices),
                     inventory.kind, inventory.simulated, distribution_scope(distribution), ordinals)


def _feed(case: TrainCase, data: Mnist, cluster: Cluster, placement: Placement, seed: int) -> Feed:
    if case.backend == "tensorflow":
        return make_feed(case.input, case.backend, data, case.global_batch, placement, seed)
    if case.input == "numpy":
        return ShardFeed(data, case.global_batch, cluster.index, cluster.size)
    feed = PrefetchFeed(data, case.global_batch, seed)
    feed.fed = dataclasses.replace(
        feed.fed, description=feed.fed.description.replace("distributed by the strategy", "sharded by Keras' "
                                                           "DataParallel: rebatch(global / processes), shard(processes)"),
        pipeline=(*feed.fed.pipeline[:-1], "fit: DataParallel.distribute_dataset rebatches to global_batch / "
                  f"{cluster.size} and keeps every {cluster.size}th batch on each process"))
    return feed


class ShardFeed(Feed):
    """JAX ``numpy`` across processes: each process's own contiguous shard of the full batches, fed to
    ``fit(batch_size=global_batch / processes, shuffle=True)``; Keras assembles the global batch from the
    processes' local ones (``jax.make_array_from_process_local_data``, keras/src/backend/jax/distribution_lib.py).
    A pass is every process walking its shard once: K steps of the global batch, as one process's pass."""

    def __init__(self, data: Mnist, global_batch: int, index: int, processes: int):
        super().__init__(global_batch)
        k = len(data.x_train) // global_batch
        local_batch = global_batch // processes
        share = k * local_batch
        self.x = data.x_train[index * share:(index + 1) * share]
        self.y = data.y_train[index * share:(index + 1) * share]
        self.local_batch = local_batch
        self.fed = FedInput(
            value="numpy",
            description=(f"float32 numpy arrays in host memory, this process's shard of {share} samples, into "
                         f"fit(x, y, batch_size={local_batch}, shuffle=True) on each of {processes} processes; "
                         "DataParallel(auto_shard_dataset=False)"),
            dtype="float32", location="host",
            host_work_per_step=f"gather one shuffled local batch of {local_batch} and copy it to this process's devices",
            pipeline=(f"the first {k * global_batch} samples cut into {processes} contiguous shards",
                      "fit(shuffle=True) on each shard: a new permutation every epoch",
                      "Keras builds the global batch from the local ones (jax.make_array_from_process_local_data)"),
            round_unit=PASS, samples_per_pass=k * global_batch, steps_per_pass=k, shuffled=True,
        )

    def _fit(self, model: Any, epochs: int, steps: int | None, callbacks: list[Any]) -> Any:
        return model.fit(self.x, self.y, batch_size=self.local_batch, epochs=epochs, steps_per_epoch=steps,
                         shuffle=True, callbacks=callbacks, verbose=0)


class AgreedRounds:
    """A round source every worker runs identically: calibration trials report the slowest worker's time
    (all-gathered), so the protocol picks the same units per round on each; ``worker_dies`` faults apply."""

    def __init__(self, source: Any, cluster: Cluster, fault: str | None):
        self.source, self.cluster, self.fault = source, cluster, fault

    def trial(self, units: int) -> float:
        seconds = self.source.trial(units)
        return max(float(w["s"]) for w in self.cluster.all_gather({"worker": self.cluster.index, "s": seconds}))

    @contextlib.contextmanager
    def rounds(self, units: int, count: int) -> Iterator[Callable[[], float | None]]:
        with self.source.rounds(units, count) as one_round:
            calls = 0

            def round_() -> float | None:
                nonlocal calls
                calls += 1
                if self.fault == WORKER_DIES and self.cluster.index == 1 and calls == 2:
                    # Injected at the first timed round (after the warm-up round); the event dates the death.
                    emit_to(self.cluster.progress_path, "fault", fault=WORKER_DIES)
                    os.kill(os.getpid(), signal.SIGKILL)
                return one_round()

            yield round_


def _measure(case: TrainCase, config: BenchConfig, data: Mnist, cluster: Cluster, placement: Placement,
             benchmark: Any, clock: Callable[[], float], record: dict[str, Any]) -> None:
    m = config.measure
    metrics = record["metrics"]
    metrics.update(per_replica_batch=case.global_batch // placement.replicas, global_batch=case.global_batch,
                   per_worker_batch=case.global_batch // cluster.size, replicas=placement.replicas,
                   workers=cluster.size, keras_version=flavour.version())
    fault = fault_for(case.case_id)
    feed = _feed(case, data, cluster, placement, m.seed)
    metrics["input_fed"] = feed.fed.to_dict()
    metrics["input_pipeline"] = feed.fed.description
    model = build_model(seed=m.seed)
    spe = case.steps_per_execution
    compile_model(model, case.jit_compile, spe)

    warmup = round_up(m.warmup_steps, spe)
    if feed.unit == PASS:
        warmup = min(warmup, feed.fed.steps_per_pass)
    t0 = clock()
    last_logs(feed.fit(model, epochs=1, steps=warmup))  # waits for the device: the warm-up is really over
    metrics["compile_s"] = clock() - t0
    metrics["warmup_steps"] = warmup
    metrics["jit_compile_resolved"] = bool(model.jit_compile)
    metrics["optimizer"] = optimizer_name(model)
    metrics["steps_per_execution_resolved"] = flavour.steps_per_execution(model)

    passes = feed.unit == PASS
    settings = RoundSettings(
        rounds=m.rounds, min_round_s=m.min_round_s, start_units=1 if passes else warmup,
        max_units=max(1, m.max_steps_per_round // feed.fed.steps_per_pass) if passes else m.max_steps_per_round,
        multiple=1 if passes else spe, measure_overhead=config.nvml.measure_overhead,
    )
    fit_rounds = FitRounds(feed, model, clock)
    mine = measure_rounds(AgreedRounds(fit_rounds, cluster, fault), settings, benchmark,
                          monitor_for(placement, config.nvml), clock)
    everyone = cluster.all_gather({
        "worker": cluster.index, "round_s": list(mine.round_s), "wall_s": mine.wall_s,
        "off_round_s": list(mine.off_round_s), "units_per_round": mine.units_per_round,
        "round_host_cpu_s": list(mine.round_host_cpu_s),
        "gpu_metrics": {k: mine.gpu_metrics.get(k) for k in ("status", "reason", "reliable", "aggregate")},
    })
    job = job_rounds(mine, everyone)
    measured, flags = throughput_metrics(job, feed.samples_per_unit, feed.steps_per_unit, m.cv_threshold)
    metrics.update(measured)
    metrics["round_unit"] = feed.unit
    metrics["units_per_round"] = job.units_per_round
    metrics["per_worker"] = per_worker_metrics(everyone, cluster.peers, measured["samples_per_round"])
    metrics["final_loss"] = fit_rounds.last_logs.get("loss")
    metrics["final_accuracy"] = fit_rounds.last_logs.get("accuracy")
    record["flags"].update(flags)
    benchmark.extra_info.update(case_id=case.case_id, samples_per_second=metrics["samples_per_second"]["median"])


def job_rounds(mine: TimedRounds, everyone: list[dict[str, Any]]) -> TimedRounds:
    """The job's rounds: each lasts until its slowest worker finished it (the workers wait for each other
    in every step's all-reduce, so the max is the job's time, and the min would flatter it)."""
    counts = {len(w["round_s"]) for w in everyone}
    units = {w["units_per_round"] for w in everyone}
    if len(counts) != 1 or len(units) != 1:
        raise ClusterMismatch(f"workers timed different rounds (counts {sorted(counts)}, units {sorted(units)})")
    rounds = counts.pop()
    round_s = tuple(max(float(w["round_s"][i]) for w in everyone) for i in range(rounds))
    off = tuple(max(float(w["off_round_s"][i]) for w in everyone) for i in range(len(mine.off_round_s)))
    # The host cost of a job's round is its busiest worker's: that host, like the slowest round, sets the pace.
    hosts = [w.get("round_host_cpu_s") or [] for w in everyone]
    host = tuple(max(float(h[i]) for h in hosts) for i in range(rounds)) if all(len(h) == rounds for h in hosts) else ()
    return dataclasses.replace(mine, round_s=round_s, wall_s=max(float(w["wall_s"]) for w in everyone),
                               off_round_s=off, round_host_cpu_s=host)


def per_worker_metrics(everyone: list[dict[str, Any]], peers: list[dict[str, Any]],
                       global_samples_per_round: int) -> list[dict[str, Any]]:
    """Each worker's own rounds and throughput of its share (global samples per round / workers)."""
    from bench.analyze.stats import summarize

    # Every worker feeds global_batch / workers samples a step (global_batch divides by workers).
    share = global_samples_per_round // max(1, len(everyone))
    by_worker = {p.get("worker"): p for p in peers}
    rows = []
    for w in everyone:
        peer = by_worker.get(w["worker"], {})
        harness = sum(w["round_s"])
        rows.append({
            "worker": w["worker"], "host": peer.get("host"), "pid": peer.get("pid"), "devices": peer.get("devices"),
            "round_s": w["round_s"], "samples_per_round": share,
            "samples_per_second": summarize([share / s for s in w["round_s"]]),
            "timing_check": {"harness_s": harness, "wall_s": w["wall_s"],
                             "rel_diff": abs(w["wall_s"] - harness) / w["wall_s"] if w["wall_s"] else None},
            "gpu_metrics": w["gpu_metrics"],
        })
        if w.get("round_host_cpu_s"):
            rows[-1]["round_host_cpu_s"] = w["round_host_cpu_s"]
    return rows
