"""The one schema of a run document: typed, frozen models for everything a results file holds.

Written by ``bench.measure.records.finish`` (a case), ``bench.commands.run`` (the header) and
``bench.store.results.finalize_run`` (the document); read by ``bench.store.results.load_run``. The JSON
Schema in ``docs/schema/`` is generated from these models (``python -m bench.store.publish``), and a test
fails when the committed file differs from what they generate. Prose: ``docs/results.md``.

Why pydantic (v2): frozen models (a record cannot be changed after the case, a derive step returns a new
one with ``model_copy(update=...)``), validation on read and on write from the same type hints, and
``model_json_schema()`` generates the JSON Schema from those same types. Hand-rolled frozen dataclasses
would need a validator and a second, hand-kept JSON Schema that drifts from the code.

Rules the models follow:

- **Strict types.** ``"5"`` is not a number and ``1`` is not ``true`` (``strict=True``): a damaged or
  hand-edited file is refused with the field's path instead of being coerced.
- **Readers accept, writers declare.** Every model keeps unknown fields on read (``extra="allow"``), so a
  file from a newer tool that added a metric still loads in an older one (the field is kept and shows in
  ``cases_frame``). Writing refuses them (:func:`undeclared_fields`, checked by ``records.finish`` and the
  case log): a typo in measuring code (``sampels_per_second``) is caught where it is made, and the code,
  this module and ``docs/schema`` cannot drift apart.
- **Metrics hold what was measured.** Every metrics field is optional (a failed case has none) and a field
  the measuring code never set is left out of the file, not written as ``null``. The case envelope (status,
  reason, flags, devices, ...) always has every field.

Adding a metrics field is one line in the suite's model, e.g. in :class:`TrainMetrics`::

    steps_per_execution: int | None = Field(None, description="Steps run per compiled call (model.compile).")

then ``python -m bench.store.publish`` to regenerate ``docs/schema/`` (the schema test says so when it is
stale) and a line in ``docs/results.md``. Fields every timed-rounds suite shares go in
:class:`TimedRoundsMetrics`. Adding a suite: its params and metrics models (fields as above) and one line in
:data:`SUITES`, e.g. ``"converge": SuiteModels(ConvergeParams, ConvergeMetrics)``; the record type
``ConvergeCaseRecord`` and its place in :data:`AnyCaseRecord` follow from that line. A change that would
make old files invalid (a rename, a new required field) bumps :data:`SCHEMA_VERSION` and adds an upgrade
function to :mod:`bench.store.upgrade`.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import datetime, timezone
from typing import Annotated, Any, Literal, NamedTuple, Union

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, create_model

from bench.config import BACKENDS, CPU_PREDICT_METHODS, INPUTS, PRECISIONS

RUN_KIND = "keras-gpu-bench/run"
SCHEMA_VERSION = 2
UTC_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
UTC_PATTERN = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$"
RUN_ID_STAMP_FORMAT = "%Y%m%dT%H%M%SZ"


def utc_now(when: datetime | None = None) -> str:
    """ISO 8601 UTC to the second (``2026-11-26T01:22:41Z``), the format of every ``*_utc`` field."""
    return (when or datetime.now(timezone.utc)).astimezone(timezone.utc).strftime(UTC_FORMAT)


def run_id_stamp(when: datetime | None = None) -> str:
    """The compact UTC stamp that starts a run_id (``20261126T012241Z``), so file names sort by time."""
    return (when or datetime.now(timezone.utc)).astimezone(timezone.utc).strftime(RUN_ID_STAMP_FORMAT)


class Model(BaseModel):
    """Frozen, strict, unknown fields kept (see the module docstring)."""

    model_config = ConfigDict(frozen=True, strict=True, extra="allow")

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready data, as stored: fields never set are left out (see :class:`Metrics`)."""
        return self.model_dump(exclude_unset=True)


class Metrics(Model):
    """A suite's measurements: every field optional, absent unless the measuring code set it."""


Utc = Annotated[str, Field(pattern=UTC_PATTERN)]
Status = Literal["ok", "skipped", "failed"]
CpuPredictStatus = Literal["ok", "skipped", "failed", "wrong", "not_on_cpu"]
ConvergeStatus = Literal["ok", "not_converged", "skipped", "failed"]
DataSource = Literal["mnist", "npz", "synthetic"]
Backend = Literal[BACKENDS]
Precision = Literal[PRECISIONS]
JitCompile = bool | Literal["auto"]


# --------------------------------------------------------------------------- shared blocks


class Summary(Model):
    """Statistics over raw samples (``bench.analyze.stats.summarize``); null numbers when ``n`` is 0."""

    n: int = Field(description="Number of samples.")
    median: float | None = Field(description="Median (linear interpolation between closest ranks).")
    q1: float | None = Field(description="First quartile.")
    q3: float | None = Field(description="Third quartile.")
    iqr: float | None = Field(description="q3 - q1.")
    min: float | None = Field(description="Smallest sample.")
    max: float | None = Field(description="Largest sample.")
    mean: float | None = Field(description="Arithmetic mean.")
    stdev: float | None = Field(description="Sample standard deviation (0 for one sample).")
    cv: float | None = Field(description="stdev / mean, the coefficient of variation (infinite when the mean is 0).")


class TimingCheck(Model):
    """pytest-benchmark's round sum against an independent monotonic clock around the same rounds."""

    harness_s: float = Field(description="Sum of round_s (pytest-benchmark's timer).")
    wall_s: float = Field(description="time.monotonic() around all timed rounds.")
    rel_diff: float | None = Field(description="|wall_s - harness_s| / wall_s; null when wall_s is 0.")


class CalibrationTrial(Model):
    """One calibration trial: how long ``units`` round units (``steps`` steps) took."""

    units: int | None = Field(None, description="Round units in the trial (steps, or whole passes over the data); "
                                                "absent before the input axis.")
    steps: int = Field(description="Steps in the trial.")
    seconds: float = Field(description="Its duration, per-call set-up excluded.")


class FedInput(Model):
    """Exactly what a case fed to ``fit`` or to the native loop (``bench.measure.inputs.FedInput``)."""

    value: str = Field(description="The input axis value.")
    description: str = Field(description="In words.")
    dtype: str = Field(description="Of the images as fed: float32 or uint8.")
    location: Literal["host", "device"] = Field(description="Where the fed data lives.")
    host_work_per_step: str = Field(description="What the host does per batch besides dispatching the step.")
    pipeline: list[str] = Field(description="The steps from the arrays to fit, in order.")
    round_unit: Literal["pass", "steps"] = Field(description="pass: rounds are whole epochs over the data; "
                                                             "steps: an epoch of steps_per_epoch steps.")
    samples_per_pass: int = Field(description="Samples one walk over the fed data holds.")
    steps_per_pass: int = Field(description="Steps of one such walk.")
    shuffled: bool = Field(description="Whether the order is shuffled.")


class MonitorOverhead(Model):
    """The NVML monitor's cost: as many unmonitored rounds, half before and half after the monitored ones."""

    off_round_s: list[float] = Field(description="Durations of the unmonitored rounds.")
    off_samples_per_second: Summary = Field(description="Their throughput statistics.")
    overhead_pct: float = Field(description="100 * (off median - monitored median) / off median; positive = "
                                            "monitored rounds slower.")


# --------------------------------------------------------------------------- NVML (metrics.gpu_metrics)


class PercentStats(Model):
    """A percentage series over the window."""

    mean: float | None = Field(description="Mean of the samples.")
    p50: float | None = Field(description="Median (numpy's linear interpolation).")
    p95: float | None = Field(description="95th percentile (numpy's linear interpolation).")
    n: int = Field(description="Number of samples.")


class QueryError(Model):
    """An NVML error other than NotSupported, counted per query."""

    message: str = Field(description="The first error's text.")
    count: int = Field(description="How many polls it failed.")


class GpuDeviceMetrics(Metrics):
    """One GPU over the timed window (``bench.monitor.gpu_summary.device_summary``)."""

    nvml_index: int | None = Field(None, description="NVML index of the physical GPU.")
    uuid: str | None = Field(None, description="GPU (or MIG instance) UUID.")
    name: str | None = Field(None, description="Product name as NVML reports it.")
    pci_bus_id: str | None = Field(None, description="PCI bus id as NVML writes it.")
    cuda_ordinal: int | None = Field(None, description="The framework's CUDA device number.")
    matched_by: str | None = Field(None, description="How the CUDA device was matched to NVML: uuid, pci_bus_id, "
                                                     "pci_order, identical_gpus or fastest_first_guess.")
    ambiguous_order: bool | None = Field(None, description="True when that match is a guess (different models "
                                                           "under CUDA_DEVICE_ORDER=FASTEST_FIRST).")
    method: str | None = Field(None, description="Where utilisation came from: samples_buffer or polling.")
    sample_clock: str | None = Field(None, description="Buffer timestamps' clock: wall (documented) or driver.")
    samples_in_window: int | None = Field(None, description="Utilisation samples inside the window.")
    buffer_coverage: float | None = Field(None, description="Sample count x median sample spacing / window.")
    utilization_pct: PercentStats | None = Field(None, description="NVML utilization.gpu: share of each sample "
                                                                   "period in which any kernel ran.")
    memory_util_method: str | None = Field(None, description="Where memory_util_pct came from.")
    memory_util_pct: PercentStats | None = Field(None, description="Memory controller busy share.")
    memory_used_peak_mib: float | None = Field(None, description="Peak device memory used, MiB (polled).")
    power_mean_w: float | None = Field(None, description="Mean board power, W (polled).")
    sm_clock_mean_mhz: float | None = Field(None, description="Mean SM clock, MHz (polled).")
    temperature_max_c: float | None = Field(None, description="Highest GPU temperature, °C (polled).")
    throttle_reasons: list[str] | None = Field(None, description="Clock event reasons seen, by name.")
    throttle_reason_fraction: dict[str, float] | None = Field(None, description="Share of polls showing each reason.")
    unsupported: list[str] | None = Field(None, description="Queries this GPU does not support (their fields null).")
    query_errors: dict[str, QueryError] | None = Field(None, description="Other NVML errors per query.")


class GpuAggregate(Metrics):
    """Utilisation over all GPUs of the case."""

    utilization_pct_mean: float | None = Field(None, description="Mean of all GPUs' samples pooled.")
    utilization_pct_p50: float | None = Field(None, description="Median of the pooled samples.")
    utilization_pct_p95: float | None = Field(None, description="95th percentile of the pooled samples.")
    utilization_pct_min_device_mean: float | None = Field(None, description="The least busy GPU's mean.")
    devices: int | None = Field(None, description="GPUs with utilisation data.")


class GpuMetrics(Metrics):
    """NVML over exactly the timed rounds (``bench.monitor.nvml.NvmlMonitor``); see docs/results.md."""

    status: Literal["ok", "unavailable"] = Field(description="unavailable: NVML disabled, missing, no GPU, or "
                                                              "GPUs that cannot be mapped.")
    reason: str | None = Field(None, description="Why unavailable (null when ok).")
    method: str | None = Field(None, description="samples_buffer, polling, or mixed when GPUs differ.")
    window_s: float | None = Field(None, description="Length of the monitored window.")
    reliable: bool | None = Field(None, description="False for short windows, few samples or low buffer "
                                                    "coverage; null when nothing was sampled.")
    unreliable_reason: str | None = Field(None, description="Which of those, in words.")
    samples_in_window: int | None = Field(None, description="Fewest utilisation samples of any GPU.")
    polls: int | None = Field(None, description="Polling rounds taken.")
    poll_interval_s: float | None = Field(None, description="Polling period used (capped at 0.1 s).")
    devices: list[GpuDeviceMetrics] | None = Field(None, description="One entry per GPU of the case.")
    aggregate: GpuAggregate | None = Field(None, description="Over the case's GPUs.")


# --------------------------------------------------------------------------- per-suite params and metrics


class TrainParams(Model):
    """The axis values of a train case (``bench.cases.TrainCase.params``)."""

    backend: Backend = Field(description="Keras backend.")
    gpus: int = Field(description="Replicas (GPUs, or simulated devices).")
    global_batch: int = Field(description="Samples per step over all replicas.")
    precision: Precision = Field(description="Keras dtype policy.")
    jit_compile: JitCompile = Field(description='model.compile(jit_compile=...): true, false or "auto".')
    input: Literal[INPUTS] | None = Field(None, description="How batches reach fit (bench.measure.inputs); null in "
                                                            "files from before the input axis.")
    steps_per_execution: int | None = Field(None, description="model.compile(steps_per_execution=...); null in files "
                                                              "from before that axis.")
    workers: int | None = Field(None, description="Processes in the case's cluster (bench.measure.multiworker); "
                                                  "null before that axis: 1.")
    keras: Literal["keras3", "tf_keras"] | None = Field(None, description="Keras 3, or Keras 2 (tf_keras) on "
                                                                          "TensorFlow; null before that axis: keras3.")
    environment: str | None = Field(None, description="The [environments] entry the worker ran in (its PYTHONPATH "
                                                      "first): default = the tool's own Python; null before that "
                                                      "axis: default.")


class NativeParams(Model):
    """The axis values of a native case (``bench.cases.NativeCase.params``)."""

    backend: Backend = Field(description="Backend whose own ops the loop is written in.")
    global_batch: int = Field(description="Samples per step.")
    precision: Precision = Field(description="float32 or mixed_bfloat16 (mixed_float16 is skipped).")
    variant: Literal["step", "epoch_scan"] = Field(description="step: one dispatch per step; epoch_scan (JAX): a "
                                                               "round in one jax.jit through jax.lax.scan.")


class CpuPredictParams(Model):
    """The axis values of a cpu_predict case (``bench.cases.CpuPredictCase.params``)."""

    backend: Backend = Field(description="Keras backend.")
    precision: Precision = Field(description="Training dtype policy.")
    train_jit_compile: JitCompile = Field(description="jit_compile used for training.")
    predict_batch: int = Field(description="Batch size of predict on the CPU.")
    method: Literal[CPU_PREDICT_METHODS] = Field(description="Way of predicting on the CPU (docs/results.md).")


class ConvergeParams(Model):
    """The axis values of a converge case (``bench.cases.ConvergeCase.params``)."""

    backend: Backend = Field(description="Keras backend.")
    gpus: int = Field(description="Replicas (GPUs, or simulated devices).")
    global_batch: int = Field(description="Samples per step over all replicas.")
    precision: Precision = Field(description="Keras dtype policy.")
    jit_compile: JitCompile = Field(description='model.compile(jit_compile=...): true, false or "auto".')
    lr_scaling: Literal["none", "linear", "sqrt"] = Field(description="Adam's rate against [converge] "
                                                                      "reference_batch: x1, x B/ref, x sqrt(B/ref).")


class MachineShare(Model):
    """What else the machine did while a case's rounds were timed (``/proc/stat``; null off Linux)."""

    others_cpu_share: float | None = Field(None, description="CPU time of every other process (and the kernel's "
        "work for them) over the window, as a share of all CPUs' time: another job loading the box.")
    steal_share: float | None = Field(None, description="CPU time the hypervisor gave to other machines (steal), "
                                                        "as a share of all CPUs' time.")
    own_cpu_share: float | None = Field(None, description="This worker process's CPU time, as a share of all "
                                                          "CPUs' time.")
    window_s: float | None = Field(None, description="Length of the window.")
    own_minor_faults: int | None = Field(None, description="Minor page faults of this process in the window.")
    own_major_faults: int | None = Field(None, description="Major page faults of this process in the window.")


class ProcessInfo(Model):
    """One worker process's measurement of a case (``[measure] processes``; bench.run.plan.schedule)."""

    pass_index: int = Field(description="The pass: 0 for the case's first process, then 1, 2, ...")
    pid: int | None = Field(None, description="Its process id (null when the parent recorded a crash).")
    position: int | None = Field(None, description="Place of the case among the cases that process measured "
                                                   "(0: the first).")
    started_unix: float | None = Field(None, description="time.time() when the case began in that process.")
    status: str | None = Field(None, description="That process's outcome (merged records).")
    reason: str | None = Field(None, description="Why, when not ok (merged records).")
    compile_s: float | None = Field(None, description="Its first call (merged records).")
    units_per_round: int | None = Field(None, description="Round units it timed (merged records).")
    rounds: int | None = Field(None, description="Timed rounds it contributed (merged records).")
    threads: dict[str, Any] | None = Field(None, description="Thread pools the framework reported "
                                                             "(bench.measure.threads.read_threads).")
    machine: MachineShare | None = Field(None, description="What else the machine did while it timed the rounds "
                                                           "(merged records).")
    utilization_pct_mean: float | None = Field(None, description="NVML busy % over its rounds (merged records).")


class TimedRoundsMetrics(Metrics):
    """Fields of every suite timed in rounds (train, native): batch split, compile, calibration, rounds."""

    per_replica_batch: int | None = Field(None, description="global_batch / replicas.")
    global_batch: int | None = Field(None, description="Samples per step over all replicas.")
    replicas: int | None = Field(None, description="Replicas the case ran on.")
    compile_s: float | None = Field(None, description="The first call: tracing, compilation and warmup_steps steps.")
    warmup_steps: int | None = Field(None, description="Steps run inside compile_s.")
    calibration: list[CalibrationTrial] | None = Field(None, description="The calibration trials.")
    steps_per_round: int | None = Field(None, description="Calibrated so a round lasts at least min_round_s.")
    samples_per_round: int | None = Field(None, description="steps_per_round x global_batch.")
    round_s: list[float] | None = Field(None, description="Raw per-round durations (pytest-benchmark's timer).")
    round_host_cpu_s: list[float] | None = Field(None, description="Parallel to round_s: CPU seconds of the thread "
        "that drove each round (time.thread_time() read in it: the thread running fit, or the native loop's), "
        "i.e. the host's Python and dispatch work, not its waits for the device; absent in older files.")
    samples_per_second: Summary | None = Field(None, description="Statistics of samples_per_round / round_s.")
    step_time_s: Summary | None = Field(None, description="Statistics of round_s / steps_per_round.")
    final_loss: float | None = Field(None, description="Loss of the last round (non-finite fails the case).")
    timing_check: TimingCheck | None = Field(None, description="Harness timer against a monotonic clock.")
    gpu_metrics: GpuMetrics | None = Field(None, description="NVML over exactly the timed rounds.")
    optimizer: str | None = Field(None, description="The optimizer, e.g. Adam or LossScaleOptimizer(Adam).")
    input_pipeline: str | None = Field(None, description="How batches were fed, in words.")
    input_fed: FedInput | None = Field(None, description="Exactly what was fed.")
    round_unit: Literal["pass", "steps"] | None = Field(None, description="What a round unit is.")
    units_per_round: int | None = Field(None, description="Calibrated round units per round.")
    round_start_unix: list[float] | None = Field(None, description="time.time() at the start of each round, "
                                                                   "parallel to round_s.")
    round_pass: list[int] | None = Field(None, description="The process (pass) of each round, parallel to round_s "
                                                           "(merged records).")
    machine: MachineShare | None = Field(None, description="What else the machine did during the timed rounds "
                                                           "(one process's record in the case log).")
    process: ProcessInfo | None = Field(None, description="Which process measured this (one record per process in "
                                                          "the case log; merged into processes).")
    processes: list[ProcessInfo] | None = Field(None, description="Every process that measured the case, in pass "
                                                                  "order (the run document).")
    monitor_overhead: MonitorOverhead | None = Field(None, description="With [nvml] measure_overhead: the "
                                                                       "monitor's measured cost.")


class InjectedSlowdown(Model):
    """``[faults] slowdown``: how the case's steps were slowed (a test of the gate, never a measurement)."""

    fraction: float = Field(description="Each step slept this fraction of its measured duration.")
    method: str = Field(description="How, in words.")
    steps: int = Field(0, description="Steps slowed (warm-up and calibration included).")
    step_s: float = Field(0.0, description="Summed step durations before sleeping.")
    sleep_s: float = Field(0.0, description="Summed sleeps.")


class ClusterMemberInfo(Model):
    """One worker of a multi-worker case."""

    worker: int = Field(description="Task index (0: the chief).")
    host: str | None = Field(None, description="Its host.")
    pid: int | None = Field(None, description="Its process id.")
    devices: list[str] | None = Field(None, description="Its devices.")


class ClusterInfo(Model):
    """How a multi-worker case's cluster was formed."""

    source: str = Field(description="local, TF_CONFIG, KERAS_DISTRIBUTION or SLURM.")
    workers: int = Field(description="Processes in the cluster.")
    rendezvous_s: float | None = Field(None, description="Joining until every worker answered the rendezvous.")
    members: list[ClusterMemberInfo] | None = Field(None, description="Every worker.")


class WorkerRounds(Model):
    """One worker's own view of the timed rounds."""

    worker: int = Field(description="Task index.")
    host: str | None = Field(None, description="Its host.")
    pid: int | None = Field(None, description="Its process id.")
    devices: list[str] | None = Field(None, description="Its devices.")
    round_s: list[float] | None = Field(None, description="Its own round durations.")
    round_host_cpu_s: list[float] | None = Field(None, description="Its fit thread's CPU seconds per round.")
    samples_per_round: int | None = Field(None, description="Its share: global / workers.")
    samples_per_second: Summary | None = Field(None, description="Statistics of its share over its rounds.")
    timing_check: TimingCheck | None = Field(None, description="Its harness timer against its monotonic clock.")
    gpu_metrics: dict[str, Any] | None = Field(None, description="status, reason, reliable and aggregate of its "
                                                                 "own NVML window.")


class ClusterFailure(Model):
    """What the sweep saw when a cluster failed (ClusterWorkerDied, ClusterConnectTimeout, CaseTimeout)."""

    worker: int | None = Field(None, description="The worker that failed.")
    phase: str | None = Field(None, description="starting, joining or running.")
    exit: str | None = Field(None, description="e.g. SIGKILL, signal 9 or exit code 1.")
    cause: str | None = Field(None, description="The line from its log that says why, or null.")
    after_s: float | None = Field(None, description="Seconds from starting the case's processes.")
    detected_after_s: float | None = Field(None, description="From that worker's last progress event to the verdict.")
    log: str | None = Field(None, description="The worker's log file.")


class TrainMetrics(TimedRoundsMetrics):
    """A Keras ``fit`` case (``bench.measure.train``); ratios added when the run is finalised."""

    jit_compile_resolved: bool | None = Field(None, description="What model.jit_compile became (auto resolved).")
    steps_per_execution_resolved: int | None = Field(None, description="model.steps_per_execution read back.")
    warmup_executions: int | None = Field(None, description="Train-function calls counted in the warm-up fit.")
    final_accuracy: float | None = Field(None, description="Accuracy of the last round (a sanity check).")
    native_ratio: float | None = Field(None, description="Median samples/s / the same backend's native step "
                                                         "case at this batch and precision (one-GPU cases).")
    native_case_id: str | None = Field(None, description="The native case behind native_ratio.")
    native_ratio_ceiling: float | None = Field(None, description="The same against JAX's epoch_scan case.")
    native_ceiling_case_id: str | None = Field(None, description="The native case behind native_ratio_ceiling.")
    injected_slowdown: InjectedSlowdown | None = Field(None, description="Only with [faults] slowdown.")
    workers: int | None = Field(None, description="Processes in the cluster (workers > 1).")
    per_worker_batch: int | None = Field(None, description="global_batch / workers.")
    keras_version: str | None = Field(None, description="The Keras that trained (tf_keras' own for Keras 2); a "
                                                        "development build's contains 'dev'.")
    cluster: ClusterInfo | None = Field(None, description="How the cluster was formed.")
    per_worker: list[WorkerRounds] | None = Field(None, description="One entry per worker.")
    cluster_failure: ClusterFailure | None = Field(None, description="What the sweep saw when the cluster failed.")


class NativeMetrics(TimedRoundsMetrics):
    """A hand-written training loop in the backend's own ops (``bench.measure.native``)."""

    variant: str | None = Field(None, description="step or epoch_scan, as in params.")
    device: str | None = Field(None, description="The device it ran on.")
    implementation: str | None = Field(None, description="What was timed, in words.")


class CpuPredictTraining(Model):
    """The training behind a cpu_predict case (shared by the cases of one model family)."""

    family: str = Field(description="plain (naive, clone, saved_model), recompile or strategy.")
    reused: bool = Field(description="True when an earlier case of the family trained the model.")
    strategy: str | None = Field(description="The tf.distribute strategy trained under, if any.")
    strategy_note: str | None = Field(None, description="Why another strategy than asked was used.")
    seconds: float | None = Field(None, description="Training time.")
    steps: int | None = Field(None, description="Training steps.")
    final_loss: float | None = Field(None, description="Last training loss.")
    jit_compile_resolved: bool | None = Field(None, description="What model.jit_compile became.")
    variable_devices: list[str] | None = Field(None, description="Where the trained variables live.")


class CpuPredictMetrics(Metrics):
    """Predicting on the CPU after training on the GPU (``bench.measure.cpu_predict``)."""

    train_device: str | None = Field(None, description="Where the model was trained.")
    train_device_stand_in: bool | None = Field(None, description="True when a logical CPU stood in for the GPU.")
    train_device_is_predict_device: bool | None = Field(None, description="True when training had to run on the "
                                                                          "predict device itself (torch, no GPU).")
    tolerance: float | None = Field(None, description="Allowed max |diff| against the training device.")
    predict_samples: int | None = Field(None, description="Test images each predict call predicts.")
    train: CpuPredictTraining | None = Field(None, description="The training behind the case.")
    failed_in: str | None = Field(None, description="train, prepare or first_predict: where a failure happened.")
    prepare_s: float | None = Field(None, description="recompile / clone / save+load (0 for naive, strategy).")
    save_s: float | None = Field(None, description="saved_model: the save half of prepare_s.")
    load_s: float | None = Field(None, description="saved_model: the load half of prepare_s.")
    first_predict_s: float | None = Field(None, description="First predict under the CPU device (with tracing).")
    failed_after_s: float | None = Field(None, description="Seconds spent before the method failed.")
    steady_round_s: list[float] | None = Field(None, description="Raw steady-state predict durations.")
    steady_s: Summary | None = Field(None, description="Their statistics.")
    total_s: float | None = Field(None, description="prepare_s + first_predict_s + steady_s.median.")
    max_abs_diff: float | None = Field(None, description="Against predictions made on the training device.")
    argmax_agreement: float | None = Field(None, description="Share of equal class predictions.")
    predict_jit_compile: bool | None = Field(None, description="How the predicting model was compiled.")
    predict_dtype_policy: str | None = Field(None, description="The predicting model's dtype policy.")
    predict_device: str | None = Field(None, description="Device(s) the compute ran on, comma-separated.")
    predict_devices: list[str] | None = Field(None, description="Every device the compute ran on.")
    placement_source: str | None = Field(None, description="What proved predict_device: MatMul, xla_cluster, "
                                                           "output_arrays or output_tensors.")
    placement_proof: list[str] | None = Field(None, description="A few of the lines or devices behind it.")
    function_devices: list[str] | None = Field(None, description="Devices of the outer function calls (not proof).")
    variable_devices: list[str] | None = Field(None, description="Devices of the predicting model's variables.")
    variable_devices_before_predict: list[str] | None = Field(None, description="The same, before the CPU predict.")
    peak_rss_mib: float | None = Field(None, description="Peak resident memory of the worker so far, MiB.")


class ConvergeEpoch(Model):
    """One epoch of one seed: training time (evaluation excluded) and the scores after it."""

    epoch: int = Field(description="1-based.")
    train_s: float = Field(description="on_epoch_begin until the epoch's last update was read back.")
    cumulative_s: float = Field(description="Sum of train_s so far.")
    eval_s: float | None = Field(None, description="Seconds of the evaluation after the epoch.")
    train_loss: float | None = Field(None, description="The epoch's running mean (null if non-finite).")
    train_accuracy: float | None = Field(None, description="The epoch's running mean.")
    test_loss: float | None = Field(None, description="On the 10 000 test images.")
    test_accuracy: float | None = Field(None, description="On the 10 000 test images.")
    val_loss: float | None = Field(None, description="On the held-out training images, with a holdout.")
    val_accuracy: float | None = Field(None, description="On the held-out training images, with a holdout.")


class ConvergeSeed(Model):
    """One seeded run of a converge case."""

    seed: int = Field(description="[measure] seed + i.")
    converged: bool = Field(description="Reached target_accuracy within max_epochs.")
    diverged: bool = Field(False, description="The loss turned non-finite: the seed stopped, not converged.")
    epochs_run: int = Field(description="Epochs trained.")
    epochs_to_target: int | None = Field(None, description="First epoch at the target.")
    seconds_to_target: float | None = Field(None, description="Train seconds up to that epoch (compile and "
                                                              "evaluation excluded).")
    wall_to_target_s: float | None = Field(None, description="Train + evaluation seconds up to that epoch.")
    final_test_accuracy: float | None = Field(None, description="After the last epoch run.")
    final_test_loss: float | None = Field(None, description="After the last epoch run.")
    best_test_accuracy: float | None = Field(None, description="Best over the epochs run.")
    fit_setup_s: float | None = Field(None, description="The timed fit call until its first epoch began.")
    epochs: list[ConvergeEpoch] = Field(description="One per epoch, in order.")


class ConvergeMetrics(Metrics):
    """Time to a target test accuracy over seeded runs (``bench.measure.converge``)."""

    per_replica_batch: int | None = Field(None, description="global_batch / replicas.")
    global_batch: int | None = Field(None, description="Samples per step over all replicas.")
    replicas: int | None = Field(None, description="Replicas the case ran on.")
    learning_rate: float | None = Field(None, description="Adam's rate after lr_scaling.")
    learning_rate_resolved: float | None = Field(None, description="What the optimizer read back.")
    lr_scaling: str | None = Field(None, description="none, linear or sqrt, as in params.")
    reference_batch: int | None = Field(None, description="The batch at which every rule gives 1e-3.")
    target_accuracy: float | None = Field(None, description="Test accuracy a seed must reach.")
    max_epochs: int | None = Field(None, description="Epochs after which a seed did not converge.")
    stop_at_target: bool | None = Field(None, description="Stop a seed at the first epoch at the target.")
    holdout: int | None = Field(None, description="Last N training images held out (0: none).")
    train_samples: int | None = Field(None, description="Images trained on (60 000 - holdout).")
    test_samples: int | None = Field(None, description="Test images evaluated each epoch.")
    eval_batch: int | None = Field(None, description="Batch size of the evaluation.")
    input_pipeline: str | None = Field(None, description="What was fed to fit, in words.")
    compile_method: str | None = Field(None, description="How compile time was kept out of the epochs.")
    steps_per_execution: int | None = Field(None, description="[converge] steps_per_execution the model was "
                                                              "compiled with.")
    compile_s: float | None = Field(None, description="The case's warm-up, once (every batch shape traced).")
    jit_compile_resolved: bool | None = Field(None, description="What model.jit_compile became.")
    optimizer: str | None = Field(None, description="Adam, or LossScaleOptimizer(Adam) under mixed_float16.")
    seeds_planned: int | None = Field(None, description="[converge] seeds, resolved.")
    seeds_run: int | None = Field(None, description="Seeds that ran.")
    seeds_converged: int | None = Field(None, description="Seeds that reached the target.")
    seeds: list[ConvergeSeed] | None = Field(None, description="One per seed, in order.")
    seconds_to_target: list[float] | None = Field(None, description="Per converged seed, in seed order: the "
                                                                    "samples compare tests.")
    time_to_target_s: Summary | None = Field(None, description="Statistics over the converged seeds.")
    epochs_to_target: Summary | None = Field(None, description="Statistics over the converged seeds.")
    final_test_accuracy: Summary | None = Field(None, description="Statistics over every seed's last epoch.")
    epoch_train_s: Summary | None = Field(None, description="Statistics over every epoch's train_s.")
    reference_accuracy: float | None = Field(None, description="A published accuracy to show beside ours.")
    reference_label: str | None = Field(None, description="Where reference_accuracy comes from.")


class SuiteModels(NamedTuple):
    """What a suite adds to the case envelope."""

    params: type[Model]
    metrics: type[Metrics]
    status: Any = Status


# The suites a run can hold; one line per suite (see the module docstring).
SUITES: dict[str, SuiteModels] = {
    "train": SuiteModels(TrainParams, TrainMetrics),
    "native": SuiteModels(NativeParams, NativeMetrics),
    "cpu_predict": SuiteModels(CpuPredictParams, CpuPredictMetrics, CpuPredictStatus),
    "converge": SuiteModels(ConvergeParams, ConvergeMetrics, ConvergeStatus),
}


# --------------------------------------------------------------------------- the case record


class Flags(Model):
    """Doubtful data, flagged in the data (every flag is always written)."""

    simulated: bool = Field(False, description="Devices carved out of one device: not real scaling.")
    synthetic_data: bool = Field(False, description="Synthetic MNIST-shaped data: accuracy is meaningless.")
    unstable: bool = Field(False, description="CV of the rounds above [measure] cv_threshold.")
    stand_in_device: bool = Field(False, description="cpu_predict: a logical CPU stood in for the GPU.")
    gpu_metrics_unreliable: bool = Field(False, description="gpu_metrics.reliable is false.")
    injected_slowdown: bool = Field(False, description="[faults] slowdown slowed this case's steps: a test of the "
                                                       "regression gate, never a measurement.")
    local_cluster: bool = Field(False, description="workers > 1 all ran on this machine (the local launcher on "
                                                   "loopback): the runtime's code path, not a network.")
    machine_drift: bool = Field(False, description="The control workload moved between this case's processes more "
                                                   "than the cases' own noise: its absolute throughput is doubtful; "
                                                   "paired ratios stand (derived.machine_speed).")
    contention: bool = Field(False, description="Another process took a large share of the CPUs while this case "
                                                "was timed (metrics.processes[].machine): the machine changed.")
    retried_after_crash: bool = Field(False, description="A worker died by a signal while running this case (a "
                                                         "segfault in the framework); the case ran again, once, "
                                                         "in a fresh worker, and this is that measurement. The "
                                                         "dead worker's log stays in the run's logs folder.")


class CaseControl(Model):
    """The control workload timed in the case's worker right before and after it (``bench.measure.control``)."""

    status: Literal["ok", "failed"] = Field(description="failed: the control could not run (the case is unaffected).")
    workload: str = Field(description="What the control is, in words.")
    backend: str = Field(description="Backend whose own ops it is written in.")
    device: str = Field(description="The device it ran on (the case's first device).")
    reason: str | None = Field(None, description="Why it failed.")
    batch: int | None = Field(None, description="Samples per control step.")
    steps_per_round: int | None = Field(None, description="Calibrated once per worker to [control] min_round_s.")
    samples_per_round: int | None = Field(None, description="steps_per_round x batch.")
    round_s: list[float] | None = Field(None, description="Raw durations: [control] rounds before, as many after.")
    position: list[Literal["before", "after"]] | None = Field(None, description="Per round: before or after the case.")
    round_pass: list[int] | None = Field(None, description="Per round: the process (pass) it ran in (merged records).")
    samples_per_second: Summary | None = Field(None, description="Statistics over the rounds.")


class Devices(Model):
    """Where the case ran."""

    strategy: str | None = Field(description="Distribution strategy (or 'none (native)'), null if none.")
    devices: list[str] = Field(description="Device names the replicas ran on.")
    replicas: int = Field(description="Replica count.")
    kind: Literal["gpu", "cpu"] = Field(description="Kind of device the replicas ran on.")
    simulated: bool = Field(description="Logical devices carved out of one device.")


class CaseError(Model):
    """The exception that ended a case."""

    type: str = Field(description="Exception class name.")
    message: str = Field(description="Its key line (bench.measure.records.key_line).")


class CaseRecord(Model):
    """One case of any suite: the envelope every suite shares (``bench.measure.records``)."""

    suite: str = Field(description="The suite, one of SUITES.")
    case_id: str = Field(description="Stable id built from the params, e.g. train/tensorflow/gpus=2/batch=256/"
                                     "float32/jit=auto (bench.cases).")
    params: Model = Field(description="The axis values of the case.")
    status: str = Field(description="ok, skipped or failed; cpu_predict also wrong and not_on_cpu.")
    reason: str | None = Field(description="One line for anything but a plain ok.")
    error: CaseError | None = Field(description="The exception behind a failure, if any.")
    data_source: DataSource = Field(description="Repeated in every case so no row can be read without it.")
    flags: Flags = Field(description="Doubtful data, as flags.")
    devices: Devices | None = Field(description="Where the case ran; null when it ended before placement.")
    started_utc: Utc = Field(description="When the case started.")
    duration_s: float = Field(description="Wall time of the whole case, set-up included.")
    metrics: Metrics = Field(description="Suite-specific measurements.")
    control: CaseControl | None = Field(None, description="The control workload next to the case (absent when "
                                                          "[control] enabled = false and for skipped cases).")


def _record_model(suite: str, models: SuiteModels) -> type[CaseRecord]:
    name = "".join(part.title() for part in suite.split("_")) + "CaseRecord"
    return create_model(
        name,
        __base__=CaseRecord,
        __doc__=f"A {suite} case: the shared envelope with {suite}'s params and metrics.",
        suite=(Literal[suite], Field(description="The suite.")),
        params=(models.params, Field(description=models.params.__doc__)),
        status=(models.status, Field(description="Outcome of the case.")),
        metrics=(models.metrics, Field(default_factory=models.metrics, description=models.metrics.__doc__)),
    )


CASE_RECORDS: dict[str, type[CaseRecord]] = {suite: _record_model(suite, m) for suite, m in SUITES.items()}
AnyCaseRecord = Annotated[Union[tuple(CASE_RECORDS.values())], Field(discriminator="suite")]  # noqa: UP007
_CASE_ADAPTER: TypeAdapter[CaseRecord] = TypeAdapter(AnyCaseRecord)


# --------------------------------------------------------------------------- the run document


class Tool(Model):
    """The program that wrote the file."""

    name: str = Field(description="Always keras-gpu-bench.")
    version: str = Field(description="bench.__version__.")


class GpuInfo(Model):
    """A GPU as NVML lists it (``bench.monitor.inventory.gpu_inventory``)."""

    index: int = Field(description="NVML index.")
    name: str = Field(description="Product name.")
    uuid: str = Field(description="GPU UUID.")
    pci_bus_id: str = Field(description="PCI bus id.")
    memory_total_mib: int | None = Field(description="Device memory, MiB (null if NVML cannot say).")


class ProbeInfo(Model):
    """How the framework probes ran (``bench.environment.frameworks.collect``)."""

    timeout_s: float = Field(description="Deadline of each probe process.")
    wall_s: float = Field(description="All probes together (they run concurrently).")
    probed: list[str] = Field(description="Frameworks probed.")


class NvmlGpuFacts(Model):
    """One GPU as NVML describes it, for the doctor."""

    nvml_index: int = Field(description="NVML's index.")
    uuid: str | None = Field(None, description="GPU-... UUID.")
    name: str | None = Field(None, description="Model name.")
    compute_capability: str | None = Field(None, description='e.g. "9.0".')
    memory_total_mib: int | None = Field(None, description="Memory, MiB.")
    fp16_tensor_cores: bool | None = Field(None, description="Compute capability >= 7.0.")
    bf16_tensor_cores: bool | None = Field(None, description="Compute capability >= 8.0.")


class FrameworkGpu(Model):
    """One GPU as a framework reports it, matched to NVML."""

    ordinal: int | None = Field(None, description="The framework's device number.")
    name: str | None = Field(None, description="As the framework names it.")
    compute_capability: str | None = Field(None, description="As the framework reports it.")
    uuid: str | None = Field(None, description="torch gives one.")
    pci_bus_id: str | None = Field(None, description="TensorFlow gives one.")
    nvml_index: int | None = Field(None, description="The NVML GPU it is.")
    nvml_uuid: str | None = Field(None, description="That GPU's UUID.")
    matched_by: str | None = Field(None, description="uuid, pci_bus_id, pci_order, identical_gpus, "
                                                     "fastest_first_guess or unmatched.")
    ambiguous: bool | None = Field(None, description="True when the match is a guess.")
    monitor_nvml_index: int | None = Field(None, description="The GPU the NVML monitor would read for this ordinal.")
    match_error: str | None = Field(None, description="Why it could not be matched.")


class KerasFacts(Model):
    """Keras under one framework, and what jit_compile='auto' became there."""

    version: str | None = Field(None, description="Keras version.")
    backend: str | None = Field(None, description="The backend it ran on.")
    jit_compile_auto: bool | None = Field(None, description="For the reference model as the suite builds it.")
    jit_compile_auto_without_strategy: bool | None = Field(None, description="The same outside any strategy.")
    error: str | None = Field(None, description="Why it could not be read.")


class FrameworkFacts(Model):
    """What one framework saw (``bench.environment.probe``, run in a child process)."""

    status: Literal["ok", "not_installed", "not_probed", "failed", "timeout"] = Field(description="The probe's outcome.")
    version: str | None = Field(None, description="Installed version.")
    reason: str | None = Field(None, description="One line for anything but ok.")
    probe_s: float | None = Field(None, description="Seconds the probe process took.")
    build: dict[str, Any] | None = Field(None, description="What it was built with: cuda, cudnn, cuda_build, ...")
    runtime: dict[str, Any] | None = Field(None, description="JAX: the CUDA runtime and cuDNN it loaded.")
    gpu_packages: dict[str, str | None] | None = Field(None, description="pip packages carrying its CUDA libraries.")
    gpus: list[FrameworkGpu] | None = Field(None, description="The GPUs it sees.")
    gpu_error: str | None = Field(None, description="Why it sees no GPU, in its own words.")
    keras: KerasFacts | None = Field(None, description="Keras on this backend.")
    errors: list[str] | None = Field(None, description="Facts the probe could not read.")


class DoctorFinding(Model):
    level: Literal["problem", "warning", "note"] = Field(description="How much it matters.")
    text: str = Field(description="What was found.")
    fix: str | None = Field(None, description="What to do about it.")


class Verdict(Model):
    """The doctor's judgement (``bench.environment.doctor.judge``)."""

    runnable: bool = Field(description="Whether the config can run as intended here.")
    line: str = Field(description="One line: the problem and its fix, or why it runs.")
    findings: list[DoctorFinding] = Field(description="Everything found.")


class Frameworks(Model):
    """``environment.frameworks``: probed once per run for the backends its cases use."""

    probe: ProbeInfo = Field(description="How the probes ran.")
    gpus: list[NvmlGpuFacts] = Field(description="Per NVML GPU: capability, memory, tensor cores.")
    tensorflow: FrameworkFacts | None = Field(None, description="TensorFlow's facts.")
    jax: FrameworkFacts | None = Field(None, description="JAX's facts.")
    torch: FrameworkFacts | None = Field(None, description="torch's facts.")
    verdict: Verdict | None = Field(None, description="The doctor's verdict for this run.")


class Selection(Model):
    """How a run's cases were chosen (``bench run --set`` / ``-k``)."""

    overrides: list[str] = Field(description="The --set arguments as given.")
    k: str | None = Field(description="The -k expression, or null.")
    planned_cases: int = Field(description="Cases the config plans.")
    selected_cases: int = Field(description="Cases -k kept.")


class KerasEnvironment(Model):
    """One Python environment train cases ran in (``[environments.<name>]``, ``bench.environment.keras_envs``)."""

    name: str = Field(description="Its name in [train] environment; default = the Python the tool runs in.")
    label: str = Field(description="What it is, in words (from the config).")
    pythonpath: str | None = Field(description="As the config gives it (null for default).")
    pythonpath_resolved: str | None = Field(description="The absolute folder put first on the workers' "
                                                        "PYTHONPATH (null for default).")
    keras_version: str = Field(description="keras.__version__ imported there by the parent's probe.")
    development: bool = Field(description="True when that version is a development build (contains 'dev').")
    keras_path: str | None = Field(None, description="Where that keras package was imported from.")


class Environment(Model):
    """The machine fingerprint (``bench.environment.fingerprint``), gathered without importing a framework."""

    python: str = Field(description="Python version.")
    platform: str = Field(description="platform.platform().")
    machine: str = Field(description="CPU architecture.")
    cpu: str = Field(description="CPU model name.")
    cpu_count: int | None = Field(description="os.cpu_count().")
    hostname: str = Field(description="Host name.")
    packages: dict[str, str | None] = Field(description="Versions of the packages that matter (null: absent).")
    gpus: list[GpuInfo] = Field(description="GPUs from NVML; empty without one.")
    driver_version: str | None = Field(description="NVIDIA driver (null without NVML).")
    cuda_driver_version: str | None = Field(description="CUDA version the driver supports.")
    nvml: str | None = Field(description='"ok" or why NVML is unavailable.')
    env_vars: dict[str, str] = Field(description="Every TF_*, XLA_*, KERAS_*, CUDA_*, NVIDIA_*, OMP_*, OPENBLAS_*, "
                                                 "MKL_*, JAX_* variable.")
    git_commit: str | None = Field(description="Commit of the tool's source tree (or BENCH_GIT_COMMIT).")
    git_dirty: bool | None = Field(description="Uncommitted changes to tracked files (null: unknown).")
    config_sha256: str = Field(description="sha256 of the config TOML.")
    seed: int | None = Field(description="[measure] seed.")
    frameworks: Frameworks | None = Field(None, description="What each framework saw (absent before schema 2 "
                                                             "files that predate the doctor).")
    threads: dict[str, Any] | None = Field(None, description="[threads] as resolved for this run "
                                                             "(bench.config.resolve_threads): intra_op, inter_op "
                                                             "(0 = the framework's default), source.")
    keras_environments: list[KerasEnvironment] | None = Field(None, description="The [environments] the run's "
        "train cases used, resolved and probed by the parent before the sweep; absent when every case ran in "
        "the default one.")


class DataInfo(Model):
    """The training data, resolved once by the parent (``bench.measure.data.DataSpec``)."""

    source: DataSource = Field(description="mnist, npz or synthetic.")
    synthetic: bool = Field(description="True for synthetic data.")
    path: str | None = Field(description="The .npz read, if any.")
    sha256: str | None = Field(description="Its sha256.")
    train_samples: int = Field(description="Training images.")
    test_samples: int = Field(description="Test images.")
    note: str = Field(description="How the source was chosen, in words.")
    seed: int | None = Field(None, description="Seed of the synthetic data.")
    identified_by: str | None = Field(None, description="How MNIST was recognised: keras_file_sha256 (Keras' "
                                                        "download) or array_sha256 (the four arrays' content).")


class RankingRow(Model):
    """One CPU-prediction method of one backend, ranked by median total_s (``bench.analyze.derive.ranking``)."""

    backend: str | None = Field(description="Backend (null in runs from before backends).")
    method: str = Field(description="The method.")
    settings: int = Field(description="Cases of this method (precision x jit x batch).")
    ok: int = Field(description="Of them, finished ok.")
    statuses: dict[str, int] = Field(description="Count per status.")
    total_s_median: float | None = Field(description="Median total_s over the ok settings.")
    total_s_min: float | None = Field(description="Smallest total_s.")
    total_s_max: float | None = Field(description="Largest total_s.")
    steady_s_median: float | None = Field(description="Median of the steady-round medians.")
    steady_iqr_s: float | None = Field(description="Median steady-round IQR.")
    rank: int | None = Field(description="1 = fastest within the backend; null when never ok.")


class Derived(Model):
    """Tables computed from the cases when the run is finalised (``bench.analyze.derive``)."""

    cpu_predict_ranking: list[RankingRow] | None = Field(None, description="CPU-prediction methods ranked.")
    where_the_time_goes: list[dict[str, Any]] | None = Field(None, description="Per one-GPU backend, batch and "
        "precision: the best Keras configuration, its native ratio, NVML busy %, the bottleneck "
        "(bench.analyze.bottleneck; fields in docs/results.md).")
    best_configurations: list[dict[str, Any]] | None = Field(None, description="Per backend the fastest ok case.")
    mixed_precision_speedups: list[dict[str, Any]] | None = Field(None, description="Best mixed / best float32, "
                                                                                    "against the native loop's.")
    mixed_precision_summary: list[str] | None = Field(None, description="One line per backend and policy.")
    case_stats: list[dict[str, Any]] | None = Field(None, description="Per ok train/native case: its value over "
        "processes with a 95 % interval, between- and within-process CV (bench.analyze.paired).")
    comparisons: list[dict[str, Any]] | None = Field(None, description="Every derived comparison from process "
        "values paired by pass, with a 95 % interval and a verdict (bench.analyze.paired).")
    machine_speed: dict[str, Any] | None = Field(None, description="The control workload per pass: how the machine's "
        "speed moved during the run, and whether another job loaded it (bench.analyze.paired).")
    worker_scaling: list[dict[str, Any]] | None = Field(None, description="Per workers > 1 train case: weak and "
        "strong scaling against workers = 1 (bench.analyze.scaling; fields in docs/results.md).")
    version: int | None = Field(None, description="Version of the derivation rules that wrote this block "
        "(bench.analyze.run_tables.DERIVED_VERSION); a reader derives again when it differs or is absent.")
    comparisons: list[dict[str, Any]] | None = Field(None, description="Every derived comparison (best vs runner-up, "
        "each axis, Keras vs native): ratio, 95 % interval or none, verdict, sentence (fields in docs/results.md).")
    failures: list[dict[str, Any]] | None = Field(None, description="Per case not ok: known framework limitation "
        "(issue, link, sentence) or failure, skipped, ...; the reason without machine paths "
        "(bench.analyze.limitations).")
    failure_summary: dict[str, Any] | None = Field(None, description="Counts per kind, the known limitations hit "
                                                                     "and their cases, the unexplained failures.")
    category: dict[str, Any] | None = Field(None, description="What the run can tell: devices (real GPU, simulated "
        "on CPU, CPU), data (real MNIST, synthetic), a label, a sentence and a title.")
    summary: list[dict[str, Any]] | None = Field(None, description="Per train/native case: value, interval or noise, "
        "step time, achieved TFLOP/s and MFU against the datasheet peak, category, outcome "
        "(bench.analyze.summary).")
    model_flops: dict[str, Any] | None = Field(None, description="Training FLOPs per sample of the MLP from its layer "
                                                                 "shapes (bench.analyze.flops), per layer.")
    native_table: list[dict[str, Any]] | None = Field(None, description="Per one-GPU Keras case: the native step "
        "and epoch_scan at its batch and precision, ratios and NVML (bench.analyze.overhead).")
    monitor_overhead: list[dict[str, Any]] | None = Field(None, description="Per case with NVML: the monitor's "
        "measured cost against the rounds' CV (bench.analyze.overhead).")
    cpu_methods: list[dict[str, Any]] | None = Field(None, description="Per backend and CPU-prediction method: "
        "each phase's median and [min, max] over its ok settings (bench.analyze.findings).")
    findings: list[dict[str, Any]] | None = Field(None, description="Headline sentences: key, backend, measured, "
                                                                    "text, values (bench.analyze.findings).")
    convergence: dict[str, Any] | None = Field(None, description="Time to accuracy: per-case rows, trade-off "
        "sentences, published references, cases that did not train (bench.analyze.convergence).")
    overview: dict[str, Any] | None = Field(None, description="The first screen: title, category and one line per "
        "question (ready, scope, best, axes, time, cpu_predict, regression) and the drift line "
        "(bench.analyze.overview).")
    keras_environments: list[dict[str, Any]] | None = Field(None, description="Per one-GPU train cell measured in "
        "several [environments]: each Keras' host and wall time per step beside the native loop's "
        "(bench.analyze.host_cost; fields in docs/results.md).")


class RunHeader(Model):
    """What a run knows before its first case: the first line of the case log, the top of the document."""

    kind: Literal["keras-gpu-bench/run"] = Field(description="Always keras-gpu-bench/run.")
    schema_version: Literal[2] = Field(description="This schema's version; older files are upgraded on read.")
    run_id: str = Field(description="YYYYMMDDTHHMMSSZ-<config name>-<6 hex>.")
    created_utc: Utc = Field(description="When the run started.")
    tool: Tool = Field(description="The program that wrote the file.")
    config: dict[str, Any] = Field(description="The parsed config, every field (bench.config.BenchConfig.to_dict), "
                                               "with path and sha256 of the TOML; documented in bench/config.py.")
    selection: Selection | None = Field(None, description="How the cases were chosen (--set, -k); absent in files "
                                                          "written before they existed.")
    environment: Environment = Field(description="Machine fingerprint.")
    data: DataInfo = Field(description="The data source.")


class RunDocument(RunHeader):
    """One run: ``results/<run_id>.json`` (a baseline is one too)."""

    finished_utc: Utc | None = Field(description="When the document was written (null for an unfinished log).")
    complete: bool = Field(description="False when the sweep was interrupted: the finished cases are all here, "
                                       "the partial log is kept for --resume.")
    cases: list[AnyCaseRecord] = Field(description="Case records, in sweep order.")
    derived: Derived = Field(default_factory=Derived, description="Tables computed from the cases.")


# --------------------------------------------------------------------------- building and checking


def case_record(data: Mapping[str, Any]) -> CaseRecord:
    """A case record of its suite from plain data (raises ``pydantic.ValidationError``)."""
    return _CASE_ADAPTER.validate_python(data)


def undeclared_fields(model: BaseModel, path: str = "") -> Iterator[str]:
    """Dotted paths of fields no model declares (kept on read, refused on write)."""
    for name in model.model_extra or {}:
        yield f"{path}{name}"
    for name in type(model).model_fields:
        yield from _undeclared_in(getattr(model, name), f"{path}{name}")


def _undeclared_in(value: Any, path: str) -> Iterator[str]:
    if isinstance(value, BaseModel):
        yield from undeclared_fields(value, f"{path}.")
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _undeclared_in(item, f"{path}[{i}]")
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _undeclared_in(item, f"{path}.{key}")


def validation_message(error: Exception, limit: int = 3) -> str:
    """A pydantic ``ValidationError`` as one line: ``cases.3.duration_s: Input should be a valid number (got 'x')``."""
    errors = getattr(error, "errors", None)
    if errors is None:
        return str(error).splitlines()[0]
    found = errors(include_url=False)
    parts = []
    for item in found[:limit]:
        where = ".".join(str(p) for i, p in enumerate(item["loc"]) if not _is_union_tag(item["loc"], i)) or "document"
        got = repr(item.get("input"))
        got = got if len(got) <= 40 else got[:37] + "..."
        parts.append(f"{where}: {item['msg']}" + ("" if item["type"] == "missing" else f" (got {got})"))
    more = f" (and {len(found) - limit} more)" if len(found) > limit else ""
    return "; ".join(parts) + more


def _is_union_tag(loc: tuple[Any, ...], i: int) -> bool:
    # pydantic puts the chosen union member (the suite, e.g. "train") into the location, after the list index.
    return loc[i] in CASE_RECORDS and (i == 0 or isinstance(loc[i - 1], int))
