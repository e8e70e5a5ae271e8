"""Typed sweep configuration, read from ``configs/*.toml``.

A config declares *axes*; the cases are their product (minus ``exclude`` rules), never loops in code.
Every field is validated here so a mistake costs one clear line and exit code 2 before any
framework is imported, not a traceback twenty minutes into a sweep.
"""

from __future__ import annotations

import hashlib
import importlib.resources
import math
import os
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

from bench.errors import UserError

BACKENDS = ("tensorflow", "jax", "torch")
PRECISIONS = ("float32", "mixed_float16", "mixed_bfloat16")
SUITES = ("train", "cpu_predict", "native", "converge")
DATA_SOURCES = ("auto", "mnist", "npz", "synthetic")
CPU_PREDICT_METHODS = ("naive", "recompile", "strategy", "clone", "saved_model")
LR_SCALINGS = ("none", "linear", "sqrt")
# How batches reach fit (bench.measure.inputs); tf_data and tf_data_prefetch exist on TensorFlow only.
INPUTS = ("numpy", "numpy_uint8", "tf_data", "tf_data_prefetch", "device")
# Which Keras trains on TensorFlow: Keras 3 (``import keras``) or Keras 2 (``tf_keras``, what tf.keras is with
# TF_USE_LEGACY_KERAS=1). tf_keras exists for TensorFlow only; other backends skip it with the reason.
KERAS_FLAVOURS = ("keras3", "tf_keras")
# The Python environment a train case's worker runs in: "default" is the Python the tool runs in; any other
# name is an [environments.<name>] table whose pythonpath goes first on the worker's PYTHONPATH (e.g. a
# folder holding another Keras, installed with pip install --target).
DEFAULT_ENVIRONMENT = "default"
# How a multi-worker case's processes are started (bench.run.cluster): auto = the scheduler's cluster when
# the environment names one (TF_CONFIG, KERAS_DISTRIBUTION_*, a SLURM step of 2+ tasks), else the local
# launcher (N processes on loopback ports of this machine); local = always the local launcher.
LAUNCHERS = ("auto", "local")

# How the processes of a sweep follow each other (MeasureSettings.order).
ORDERS = ("interleaved", "sequential")

JitCompile = bool | str  # True, False or "auto"


class ConfigError(UserError):
    """A config file that cannot be used as written."""


def _doc(text: str, **kwargs: Any) -> Any:
    """A dataclass field carrying its help text: the reference of every config key (README "Configs")."""
    return field(metadata={"help": text}, **kwargs)


@dataclass(frozen=True)
class TrainAxes:
    """The training-throughput sweep: the product of these axes is the list of cases."""

    backend: tuple[str, ...] = _doc("Keras backends, each run in its own process.", default=("tensorflow",))
    gpus: tuple[int, ...] = _doc("Replica counts (GPUs, or simulated devices).", default=(1,))
    global_batch: tuple[int, ...] = _doc(
        "Global batch sizes; per-replica batch = global_batch / gpus.", default=(256,)
    )
    precision: tuple[str, ...] = _doc("Keras dtype policies.", default=("float32",))
    jit_compile: tuple[JitCompile, ...] = _doc('model.compile(jit_compile=...): false, true or "auto".', default=("auto",))
    input: tuple[str, ...] = _doc(
        "How batches reach fit: numpy (in-memory arrays), numpy_uint8 (uint8 arrays, Rescaling(1/255) in the "
        "model), tf_data (the reference tutorial's pipeline), tf_data_prefetch (shuffle, repeat, batch, "
        "prefetch), device (the training set on the accelerator once). See bench.measure.inputs.",
        default=("device",),
    )
    steps_per_execution: tuple[int, ...] = _doc(
        "model.compile(steps_per_execution=...): training steps per call of Keras' train function.", default=(1,)
    )
    workers: tuple[int, ...] = _doc(
        "Worker processes per case (each with `gpus` replicas): 1 = one process; N > 1 = TensorFlow's "
        "MultiWorkerMirroredStrategy or JAX's distributed runtime across N processes (bench.measure.multiworker); "
        "global batch = global_batch over all workers.", default=(1,)
    )
    keras: tuple[str, ...] = _doc(
        "Keras on TensorFlow: keras3 (import keras) or tf_keras (Keras 2, the legacy tf.keras); "
        "tf_keras on another backend is skipped with the reason.", default=("keras3",)
    )
    environment: tuple[str, ...] = _doc(
        "Python environments the cases run in: default (the Python the tool runs in) or the name of an "
        "[environments.<name>] table, whose pythonpath goes first on the worker's PYTHONPATH — e.g. another "
        "Keras beside this one. Each environment's cases run in their own worker processes.",
        default=(DEFAULT_ENVIRONMENT,),
    )
    exclude: tuple[Mapping[str, Any], ...] = _doc(
        "Partial cases to leave out, e.g. {precision = 'mixed_float16', jit_compile = true}.", default=()
    )
    add: tuple[TrainAxes, ...] = _doc(
        "Extra sweeps ([[train.add]] tables): each overrides some axes of [train] and adds the product of the "
        "result, e.g. every input value at one batch; [train] exclude applies to them too, plus their own.",
        default=(),
    )


@dataclass(frozen=True)
class MeasureSettings:
    """How each case is timed."""

    warmup_steps: int = _doc("Steps in the first (compile) call, timed and reported as compile time.", default=20)
    rounds: int = _doc("Timed rounds per case in each of its processes (at least 2; the spread that counts is the "
                       "one between processes, so trade rounds for processes).", default=5)
    min_round_s: float = _doc("Each round is calibrated to last at least this long.", default=2.0)
    max_steps_per_round: int = _doc("Upper bound on calibrated steps per round.", default=100_000)
    case_timeout_s: float = _doc("A case running longer is failed and the sweep goes on.", default=900.0)
    cv_threshold: float = _doc("Rounds whose coefficient of variation exceeds this are flagged unstable.", default=0.05)
    seed: int = _doc("Seed for data shuffling, weights and synthetic data.", default=0)
    processes: int = _doc(
        "Fresh worker processes that measure each train and native case (pyperf's worker processes): a case's "
        "uncertainty is the spread between its processes, and comparisons pair the cases' processes by pass. "
        "cpu_predict, converge and multi-worker cases run once.", default=3)
    order: str = _doc(
        "interleaved: pass 1 runs every layout's cases in order, pass 2 in reverse, ... (ABCD DCBA ABCD), so no case "
        "always runs first or last and the cases of one pass are adjacent in time; sequential: each layout's "
        "processes back to back, cases always in config order (processes = 1 is the one-process order of "
        "earlier versions).", default="interleaved")


@dataclass(frozen=True)
class ThreadSettings:
    """Framework thread pools: the main cause of process-to-process differences on small CPU machines."""

    intra_op: int | str = _doc(
        'Threads one op may use (TensorFlow intra-op pool, torch.set_num_threads; JAX has no such setting and keeps XLA\'s pool): an integer '
        '(0 = the framework\'s default) or "auto" = 1 on a machine with no GPU, the framework\'s default with one.',
        default="auto")
    inter_op: int | str = _doc(
        'Ops run at once (TensorFlow inter-op pool, torch.set_num_interop_threads): an integer (0 = the framework\'s '
        'default) or "auto", as intra_op.', default="auto")


@dataclass(frozen=True)
class DataSettings:
    """Where MNIST comes from."""

    source: str = _doc(
        "auto (npz path if given, else Keras cache/download, else synthetic), mnist, npz or synthetic.",
        default="auto",
    )
    path: str | None = _doc("An mnist.npz with x_train, y_train, x_test, y_test.", default=None)
    download_timeout_s: float = _doc("Bound on the MNIST download before falling back.", default=20.0)


@dataclass(frozen=True)
class DeviceSettings:
    """How replica counts map to devices."""

    simulate: bool = _doc(
        "Carve logical devices when a case asks for more GPUs than are visible (results flagged simulated).",
        default=False,
    )
    logical_gpu_memory_mib: int = _doc(
        "Memory of each logical GPU carved out of GPU 0 when simulating on a GPU host (TensorFlow needs a limit).",
        default=4096,
    )


@dataclass(frozen=True)
class NvmlSettings:
    """GPU utilisation sampling around the timed rounds."""

    enabled: bool = _doc("Sample NVML while rounds are timed.", default=True)
    poll_interval_s: float = _doc("Polling period when the driver's sample buffer is unavailable.", default=0.1)
    min_window_s: float = _doc("Windows shorter than this are flagged unreliable.", default=2.0)
    min_samples: int = _doc("Windows with fewer samples are flagged unreliable.", default=10)
    measure_overhead: bool = _doc(
        "Also time as many unmonitored rounds per case and record the monitor's cost (monitor_overhead).",
        default=False,
    )


@dataclass(frozen=True)
class CpuPredictSettings:
    """Predicting on the CPU after training on the GPU (keras-team/keras#20308)."""

    precision: tuple[str, ...] = _doc("Training dtype policies.", default=("float32",))
    train_jit_compile: tuple[JitCompile, ...] = _doc("jit_compile used for training.", default=(True,))
    predict_batch: tuple[int, ...] = _doc("Batch sizes for predict on the CPU.", default=(1024,))
    methods: tuple[str, ...] = _doc("Ways to predict on the CPU.", default=CPU_PREDICT_METHODS)
    train_steps: int = _doc("Training steps before predicting.", default=50)
    train_batch: int = _doc("Batch size for that training.", default=256)
    rounds: int = _doc("Timed steady-state predict calls per method.", default=5)
    predict_samples: int = _doc("How many test images are predicted per call (0 = the whole test set).", default=0)


@dataclass(frozen=True)
class ConvergeSettings:
    """Time to accuracy: train from a fixed seed until the test accuracy reaches a target, over several seeds."""

    backend: tuple[str, ...] = _doc("Keras backends, each run in its own process.", default=("tensorflow",))
    gpus: tuple[int, ...] = _doc("Replica counts, placed as the train suite places them.", default=(1,))
    global_batch: tuple[int, ...] = _doc("Global batch sizes; per-replica batch = global_batch / gpus.",
                                         default=(256,))
    precision: tuple[str, ...] = _doc("Keras dtype policies.", default=("float32",))
    jit_compile: tuple[JitCompile, ...] = _doc('model.compile(jit_compile=...): false, true or "auto".',
                                               default=("auto",))
    lr_scaling: tuple[str, ...] = _doc(
        "Adam's learning rate against reference_batch: none (1e-3 at every batch), linear (x B/ref), sqrt (x sqrt(B/ref)).",
        default=("none",),
    )
    exclude: tuple[Mapping[str, Any], ...] = _doc("Partial cases to leave out, as in [train].", default=())
    reference_batch: int = _doc("The global batch at which every lr_scaling gives Adam's 1e-3.", default=256)
    target_accuracy: float = _doc("Test accuracy (10 000 test images) a seed must reach to converge.", default=0.97)
    max_epochs: int = _doc("A seed that has not reached the target after this many epochs did not converge.",
                           default=30)
    seeds: int | str = _doc('Seeded runs per case ([measure] seed, seed+1, ...); "auto": 5 on GPUs, 3 on CPUs.',
                            default="auto")
    stop_at_target: bool = _doc("Stop a seed at the first epoch that reaches the target (false: run max_epochs).",
                                default=True)
    holdout: int = _doc("The last N training images are held out (validation_split-style) and evaluated every "
                        "epoch as validation; 0 = train on all 60 000.", default=0)
    reference_accuracy: float | None = _doc("A published test accuracy shown beside this one (e.g. a tutorial's).",
                                            default=None)
    reference_label: str = _doc("Where reference_accuracy comes from.", default="")
    steps_per_execution: int = _doc("model.compile(steps_per_execution=...) for every converge case (1: what a "
                                    "plain fit runs, as the tutorial does).", default=1)


@dataclass(frozen=True)
class ControlSettings:
    """A fixed control workload timed next to every case, so comparisons can divide out machine speed."""

    enabled: bool = _doc("Time the control (bench.measure.control) before and after every case.", default=True)
    rounds: int = _doc("Control rounds before and after each case (2 x rounds samples per case).", default=3)
    min_round_s: float = _doc("Each control round is calibrated, once per worker, to last at least this long.",
                              default=0.1)


@dataclass(frozen=True)
class FaultSettings:
    """Fault injection for testing the regression gate; a run with any of these set can never be promoted."""

    slowdown: float = _doc(
        "Slow every training step of the matching cases by this fraction (0.1 = 10 %) with a sleep sized "
        "from the measured step time; 0 = off. Recorded per case (flags.injected_slowdown).", default=0.0)
    slowdown_cases: str = _doc("fnmatch pattern of the case ids to slow down.", default="train/*")


@dataclass(frozen=True)
class ClusterSettings:
    """Multi-worker cases (``[train] workers`` > 1): how the cluster is formed and how long it may take."""

    launcher: str = _doc(
        "auto: the scheduler's cluster when TF_CONFIG, KERAS_DISTRIBUTION_* or a SLURM step of 2+ tasks is in "
        "the environment, else start the workers on this machine on loopback ports; local: always start them here.",
        default="auto",
    )
    connect_timeout_s: float = _doc(
        "Bound on forming the cluster (every worker started, reachable and agreeing on the config); past it the "
        "case fails naming the workers that did not join, instead of hanging.", default=120.0
    )
    peer_timeout_s: float = _doc(
        "Bound on a silent or dead peer once the cluster runs: TensorFlow's collective timeout and "
        "coordination-service heartbeat, JAX's heartbeat timeout; the local launcher notices a dead worker "
        "process at once.", default=60.0
    )
    port_base: int = _doc(
        "First port of a SLURM step's TensorFlow workers on each node (SlurmClusterResolver(port_base=...)).",
        default=8888,
    )
    host: str = _doc("Address the local launcher's workers listen on.", default="127.0.0.1")


@dataclass(frozen=True)
class EnvironmentSettings:
    """``[environments.<name>]``: a folder put first on a worker's PYTHONPATH, e.g. another Keras."""

    pythonpath: str = _doc("The folder (absolute, or relative to the directory `bench run` runs in) put first on "
                           "the worker's PYTHONPATH, e.g. one made by pip install --target DIR keras-nightly.",
                           default="")
    label: str = _doc("What it is, in words, e.g. 'keras-nightly 3.16.0.dev2026102704, development build'.",
                      default="")


@dataclass(frozen=True)
class BenchConfig:
    """One sweep definition."""

    name: str
    description: str = ""
    suites: tuple[str, ...] = ("train",)
    train: TrainAxes = TrainAxes()
    measure: MeasureSettings = MeasureSettings()
    data: DataSettings = DataSettings()
    devices: DeviceSettings = DeviceSettings()
    nvml: NvmlSettings = NvmlSettings()
    cpu_predict: CpuPredictSettings = CpuPredictSettings()
    converge: ConvergeSettings = ConvergeSettings()
    control: ControlSettings = ControlSettings()
    threads: ThreadSettings = ThreadSettings()
    faults: FaultSettings = FaultSettings()
    cluster: ClusterSettings = ClusterSettings()
    environments: Mapping[str, EnvironmentSettings] = field(default_factory=dict)
    path: str = ""
    sha256: str = ""

    def to_dict(self) -> dict[str, Any]:
        return _to_plain(self)


# --------------------------------------------------------------------------- loading


def shipped_config(name: str) -> Path | None:
    """A sweep shipped with the tool (``quick.toml``), or None.

    Installed, ``configs/`` is the package ``bench.configs`` (pyproject ``package-dir``), found through
    importlib.resources; run from a source tree (``PYTHONPATH=.``) there is no such package and the
    repository's ``configs/`` is used.
    """
    try:
        path = Path(os.fspath(importlib.resources.files("bench.configs").joinpath(name)))
    except (ModuleNotFoundError, TypeError):  # source tree; TypeError: installed somewhere that is not a folder
        path = Path(__file__).resolve().parents[1] / "configs" / name
    return path if path.is_file() else None


def default_config(name: str) -> Path:
    """The sweep a command uses without ``--config``: ``configs/NAME`` where the command runs, else the shipped one."""
    local = Path("configs") / name  # a configs/ folder where the command runs wins over the shipped one
    found = local if local.is_file() else shipped_config(name)
    if found is None:
        raise ConfigError(f"no --config given and configs/{name} not found; pass --config PATH")
    return found


def load_config(path: str | Path) -> BenchConfig:
    """Read and validate a TOML sweep definition; raises :class:`ConfigError` with one line."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path} (see configs/ for examples)")
    raw_bytes = path.read_bytes()
    try:
        raw = tomllib.loads(raw_bytes.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    return parse_config(raw, source=str(path), sha256=hashlib.sha256(raw_bytes).hexdigest())


def parse_config(raw: Mapping[str, Any], source: str = "<config>", sha256: str = "") -> BenchConfig:
    where = source
    _check_keys(raw, {f.name for f in fields(BenchConfig)} - {"path", "sha256"}, where)
    name = raw.get("name", Path(source).stem)
    if not isinstance(name, str) or not name.strip():
        raise ConfigError(f"{where}: 'name' must be a non-empty string")
    description = raw.get("description", "")
    if not isinstance(description, str):
        raise ConfigError(f"{where}: 'description' must be a string")
    suites = _str_axis(raw.get("suites", ["train"]), "suites", SUITES, where)

    train = _parse_train(_table(raw, "train", where), where)
    if "steps_per_execution" in _table(raw, "measure", where):
        raise ConfigError(f"{where}: [measure] steps_per_execution is now an axis: write "
                          "[train] steps_per_execution = [1, 8, 32]")
    measure = _parse_simple(MeasureSettings, _table(raw, "measure", where), where, "measure")
    data = _parse_simple(DataSettings, _table(raw, "data", where), where, "data")
    devices = _parse_simple(DeviceSettings, _table(raw, "devices", where), where, "devices")
    nvml = _parse_simple(NvmlSettings, _table(raw, "nvml", where), where, "nvml")
    cpu_predict = _parse_cpu_predict(_table(raw, "cpu_predict", where), where)
    converge = _parse_converge(_table(raw, "converge", where), where)
    control = _parse_simple(ControlSettings, _table(raw, "control", where), where, "control")
    threads = _parse_threads(_table(raw, "threads", where), where)
    faults = _parse_simple(FaultSettings, _table(raw, "faults", where), where, "faults")
    if not faults.slowdown < 10:
        raise ConfigError(f"{where}: [faults] slowdown is a fraction of the step time (0.1 = 10 %), got {faults.slowdown}")
    cluster = _parse_simple(ClusterSettings, _table(raw, "cluster", where), where, "cluster")
    if cluster.launcher not in LAUNCHERS:
        raise ConfigError(f"{where}: [cluster] launcher: unknown value {cluster.launcher!r}; choose from "
                          f"{', '.join(LAUNCHERS)}")
    if cluster.port_base > 65535:
        raise ConfigError(f"{where}: [cluster] port_base must be a TCP port (1-65535), got {cluster.port_base}")

    environments = _parse_environments(_table(raw, "environments", where), where)
    for axes in (train, *train.add):
        for env in axes.environment:
            if env != DEFAULT_ENVIRONMENT and env not in environments:
                defined = ", ".join([DEFAULT_ENVIRONMENT, *environments])
                raise ConfigError(f"{where}: [train] environment: unknown environment {env!r}; define "
                                  f"[environments.{env}] with pythonpath = \"DIR\", or choose from {defined}")

    if data.source not in DATA_SOURCES:
        raise ConfigError(f"{where}: [data] source: unknown value {data.source!r}; choose from {', '.join(DATA_SOURCES)}")
    if data.source == "npz" and not data.path:
        raise ConfigError(f"{where}: [data] source = 'npz' needs path = '.../mnist.npz'")
    if nvml.poll_interval_s > 0.1:
        raise ConfigError(f"{where}: [nvml] poll_interval_s must be at most 0.1 s (NVML updates utilisation "
                          f"every 1/6-1 s; slower polling misses samples), got {nvml.poll_interval_s}")
    if measure.order not in ORDERS:
        raise ConfigError(f"{where}: [measure] order: unknown value {measure.order!r}; choose from {', '.join(ORDERS)}")
    if measure.rounds < 2:
        raise ConfigError(f"{where}: [measure] rounds must be at least 2 to give a spread, got {measure.rounds}")

    config = BenchConfig(
        name=name,
        description=description,
        suites=suites,
        train=train,
        measure=measure,
        data=data,
        devices=devices,
        nvml=nvml,
        cpu_predict=cpu_predict,
        converge=converge,
        control=control,
        threads=threads,
        faults=faults,
        cluster=cluster,
        environments=environments,
        path=source,
        sha256=sha256,
    )
    if "converge" in suites and data.source == "synthetic":
        raise ConfigError(f"{where}: the converge suite refuses [data] source = 'synthetic' (accuracy on it means "
                          "nothing); use 'auto', 'mnist' or a path to mnist.npz")
    # The cases these axes make (divisibility, exclusions) are checked with the cases: bench.cases.check_cases.
    return config


def _table(raw: Mapping[str, Any], key: str, where: str) -> Mapping[str, Any]:
    value = raw.get(key, {})
    if not isinstance(value, Mapping):
        raise ConfigError(f"{where}: '{key}' must be a table ([{key}])")
    return value


def _check_keys(raw: Mapping[str, Any], allowed: set[str], where: str, section: str = "") -> None:
    unknown = sorted(set(raw) - allowed)
    if unknown:
        prefix = f"[{section}] " if section else ""
        raise ConfigError(
            f"{where}: {prefix}unknown key {unknown[0]!r}; allowed: {', '.join(sorted(allowed))}"
        )


_AXES = ("backend", "gpus", "global_batch", "precision", "jit_compile", "input", "steps_per_execution", "workers",
         "keras", "environment")
# An environment's name goes into case ids and log file names.
_ENVIRONMENT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def _parse_train(raw: Mapping[str, Any], where: str) -> TrainAxes:
    core = _parse_axes(raw, where, "train", allow_add=True)
    added = raw.get("add", [])
    if not isinstance(added, list) or not all(isinstance(table, Mapping) for table in added):
        raise ConfigError(f"{where}: [train] add must be a list of tables ([[train.add]]), each overriding some axes")
    extra = []
    for i, table in enumerate(added):
        label = f"train.add[{i}]"
        # "add = []" inside a table is what to_dict() writes; nesting further is refused.
        _check_keys({k: v for k, v in table.items() if not (k == "add" and v in ([], ()))}, {*_AXES, "exclude"},
                    where, label)
        merged: dict[str, Any] = {axis: table.get(axis, _plain_axis(getattr(core, axis))) for axis in _AXES}
        # Unique rules, first seen first: a config rebuilt from to_dict() already holds the core's rules.
        rules: dict[str, Mapping[str, Any]] = {}
        for rule in [*core.exclude, *_rules(table.get("exclude", []), where, label)]:
            rules.setdefault(repr(sorted(rule.items())), rule)
        merged["exclude"] = list(rules.values())
        extra.append(_parse_axes(merged, where, label, allow_add=False))
    return replace(core, add=tuple(extra))


def _plain_axis(values: tuple[Any, ...]) -> list[Any]:
    return list(values)


def _rules(exclude: Any, where: str, label: str) -> list[Mapping[str, Any]]:
    if not isinstance(exclude, list) or not all(isinstance(rule, Mapping) for rule in exclude):
        raise ConfigError(f"{where}: [{label}] exclude must be a list of tables, e.g. [{{precision = 'mixed_float16'}}]")
    for rule in exclude:
        _check_keys(rule, set(_AXES), where, f"{label}.exclude")
    return list(exclude)


def _parse_axes(raw: Mapping[str, Any], where: str, label: str, allow_add: bool) -> TrainAxes:
    allowed = {f.name for f in fields(TrainAxes)} - (set() if allow_add else {"add"})
    _check_keys(raw, allowed, where, label)
    defaults = TrainAxes()
    exclude = _rules(raw.get("exclude", []), where, label)
    return TrainAxes(
        backend=_str_axis(raw.get("backend", list(defaults.backend)), f"{label}.backend", BACKENDS, where),
        gpus=_int_axis(raw.get("gpus", list(defaults.gpus)), f"{label}.gpus", where),
        global_batch=_int_axis(raw.get("global_batch", list(defaults.global_batch)), f"{label}.global_batch", where),
        precision=_str_axis(raw.get("precision", list(defaults.precision)), f"{label}.precision", PRECISIONS, where),
        jit_compile=_jit_axis(raw.get("jit_compile", list(defaults.jit_compile)), f"{label}.jit_compile", where),
        input=_str_axis(raw.get("input", list(defaults.input)), f"{label}.input", INPUTS, where),
        steps_per_execution=_int_axis(raw.get("steps_per_execution", list(defaults.steps_per_execution)),
                                      f"{label}.steps_per_execution", where),
        workers=_int_axis(raw.get("workers", list(defaults.workers)), f"{label}.workers", where),
        keras=_str_axis(raw.get("keras", list(defaults.keras)), f"{label}.keras", KERAS_FLAVOURS, where),
        environment=_name_axis(raw.get("environment", list(defaults.environment)), f"{label}.environment", where),
        exclude=tuple(
            {k: (_jit_value(v, f"{label}.exclude.jit_compile", where) if k == "jit_compile" else v) for k, v in rule.items()}
            for rule in exclude
        ),
    )


def _parse_threads(raw: Mapping[str, Any], where: str) -> ThreadSettings:
    _check_keys(raw, {f.name for f in fields(ThreadSettings)}, where, "threads")
    values = {}
    for key in ("intra_op", "inter_op"):
        value = raw.get(key, "auto")
        if value != "auto" and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
            raise ConfigError(f'{where}: [threads] {key} must be "auto" or an integer >= 0 (0 = the framework\'s '
                              f"default), got {value!r}")
        values[key] = value
    return ThreadSettings(**values)


def resolve_threads(settings: ThreadSettings, gpus_visible: bool) -> dict[str, Any]:
    """The thread counts workers apply ("auto" resolved) and why: recorded in every run (environment.threads).

    "auto" is 1 and 1 on a machine with no GPU: measured on the project's 2-core CI box, TensorFlow's default
    pools made processes of one case differ by up to 1.7x, one intra-op and one inter-op thread brought them
    within 2-8 % at about the same throughput (README "Noise at its source"). With a GPU the host threads feed
    the device (tf.data, dispatch), so the framework keeps its default (0).
    """
    resolved: dict[str, Any] = {}
    for key in ("intra_op", "inter_op"):
        value = getattr(settings, key)
        resolved[key] = (0 if gpus_visible else 1) if value == "auto" else int(value)
    auto = [key for key in ("intra_op", "inter_op") if getattr(settings, key) == "auto"]
    resolved["source"] = ("config" if not auto else
                          f"auto ({'a GPU is visible: framework default' if gpus_visible else 'no GPU: 1 thread'})")
    return resolved
def _name_axis(value: Any, label: str, where: str) -> tuple[str, ...]:
    items = _list(value, label, where)
    for item in items:
        if not isinstance(item, str) or not _ENVIRONMENT_NAME.match(item):
            raise ConfigError(f"{where}: {label} values are environment names (letters, digits, _ . -), got {item!r}")
    return tuple(items)


def _parse_environments(raw: Mapping[str, Any], where: str) -> dict[str, EnvironmentSettings]:
    """``[environments.<name>]`` tables; whether each folder exists and imports Keras is checked by ``bench run``
    before the sweep (bench.environment.keras_envs), not here: a results file read on another machine keeps
    its config."""
    found: dict[str, EnvironmentSettings] = {}
    for name, table in raw.items():
        label = f"environments.{name}"
        if not _ENVIRONMENT_NAME.match(name) or name == DEFAULT_ENVIRONMENT:
            raise ConfigError(f"{where}: [{label}]: an environment name is letters, digits, _ . - and not "
                              f"{DEFAULT_ENVIRONMENT!r} (the tool's own Python)")
        if not isinstance(table, Mapping):
            raise ConfigError(f"{where}: [{label}] must be a table with pythonpath = \"DIR\"")
        settings = _parse_simple(EnvironmentSettings, table, where, label)
        if not settings.pythonpath.strip():
            raise ConfigError(f"{where}: [{label}] needs pythonpath = \"DIR\" (the folder put first on the "
                              "worker's PYTHONPATH)")
        found[name] = settings
    return found


def _parse_cpu_predict(raw: Mapping[str, Any], where: str) -> CpuPredictSettings:
    _check_keys(raw, {f.name for f in fields(CpuPredictSettings)}, where, "cpu_predict")
    d = CpuPredictSettings()
    scalars = _parse_simple(
        CpuPredictSettings,
        {k: v for k, v in raw.items() if k in {"train_steps", "train_batch", "rounds", "predict_samples"}},
        where,
        "cpu_predict",
    )
    if scalars.predict_samples < 0:
        raise ConfigError(f"{where}: [cpu_predict] predict_samples must be >= 0 (0 = whole test set)")
    return CpuPredictSettings(
        precision=_str_axis(raw.get("precision", list(d.precision)), "cpu_predict.precision", PRECISIONS, where),
        train_jit_compile=_jit_axis(
            raw.get("train_jit_compile", list(d.train_jit_compile)), "cpu_predict.train_jit_compile", where
        ),
        predict_batch=_int_axis(raw.get("predict_batch", list(d.predict_batch)), "cpu_predict.predict_batch", where),
        methods=_str_axis(raw.get("methods", list(d.methods)), "cpu_predict.methods", CPU_PREDICT_METHODS, where),
        train_steps=scalars.train_steps,
        train_batch=scalars.train_batch,
        rounds=scalars.rounds,
        predict_samples=scalars.predict_samples,
    )


def _parse_converge(raw: Mapping[str, Any], where: str) -> ConvergeSettings:
    _check_keys(raw, {f.name for f in fields(ConvergeSettings)}, where, "converge")
    d = ConvergeSettings()
    simple = {"reference_batch", "target_accuracy", "max_epochs", "stop_at_target", "holdout", "reference_label",
              "steps_per_execution"}
    scalars = _parse_simple(ConvergeSettings, {k: v for k, v in raw.items() if k in simple}, where, "converge")
    if not 0.0 < scalars.target_accuracy <= 1.0:
        raise ConfigError(f"{where}: [converge] target_accuracy is a test accuracy in (0, 1], "
                          f"got {scalars.target_accuracy}")
    if scalars.holdout >= 60_000:
        raise ConfigError(f"{where}: [converge] holdout {scalars.holdout} leaves no MNIST training images "
                          "(there are 60 000)")
    seeds = raw.get("seeds", d.seeds)
    if seeds != "auto" and (isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 1):
        raise ConfigError(f'{where}: [converge] seeds must be a positive integer or "auto", got {seeds!r}')
    reference = raw.get("reference_accuracy", d.reference_accuracy)
    if reference is not None and (isinstance(reference, bool) or not isinstance(reference, (int, float))
                                  or not 0.0 < reference <= 1.0):
        raise ConfigError(f"{where}: [converge] reference_accuracy is a test accuracy in (0, 1], got {reference!r}")
    exclude = raw.get("exclude", [])
    if not isinstance(exclude, list) or not all(isinstance(rule, Mapping) for rule in exclude):
        raise ConfigError(f"{where}: [converge] exclude must be a list of tables, e.g. [{{global_batch = 256}}]")
    for rule in exclude:
        _check_keys(rule, {"backend", "gpus", "global_batch", "precision", "jit_compile", "lr_scaling"}, where,
                    "converge.exclude")
    return ConvergeSettings(
        backend=_str_axis(raw.get("backend", list(d.backend)), "converge.backend", BACKENDS, where),
        gpus=_int_axis(raw.get("gpus", list(d.gpus)), "converge.gpus", where),
        global_batch=_int_axis(raw.get("global_batch", list(d.global_batch)), "converge.global_batch", where),
        precision=_str_axis(raw.get("precision", list(d.precision)), "converge.precision", PRECISIONS, where),
        jit_compile=_jit_axis(raw.get("jit_compile", list(d.jit_compile)), "converge.jit_compile", where),
        lr_scaling=_str_axis(raw.get("lr_scaling", list(d.lr_scaling)), "converge.lr_scaling", LR_SCALINGS, where),
        exclude=tuple(
            {k: (_jit_value(v, "converge.exclude.jit_compile", where) if k == "jit_compile" else v)
             for k, v in rule.items()}
            for rule in exclude
        ),
        reference_batch=scalars.reference_batch,
        target_accuracy=scalars.target_accuracy,
        max_epochs=scalars.max_epochs,
        seeds=seeds,
        stop_at_target=scalars.stop_at_target,
        holdout=scalars.holdout,
        reference_accuracy=None if reference is None else float(reference),
        reference_label=scalars.reference_label,
        steps_per_execution=scalars.steps_per_execution,
    )


# Scalars that may legitimately be zero.
_NON_NEGATIVE = {"seed", "predict_samples", "holdout", "slowdown"}


def _parse_simple(cls: type, raw: Mapping[str, Any], where: str, section: str) -> Any:
    """Scalar-only sections: check each value against the default's type."""
    _check_keys(raw, {f.name for f in fields(cls)}, where, section)
    values = {}
    for f in fields(cls):
        if f.name not in raw or (raw[f.name] is None and getattr(cls(), f.name) is None):
            continue
        value = raw[f.name]
        default = getattr(cls(), f.name)
        label = f"[{section}] {f.name}"
        if isinstance(default, bool):
            if not isinstance(value, bool):
                raise ConfigError(f"{where}: {label} must be true or false, got {value!r}")
        elif isinstance(default, int):
            if isinstance(value, bool) or not isinstance(value, int):
                raise ConfigError(f"{where}: {label} must be an integer, got {value!r}")
            if value < 0 or (value == 0 and f.name not in _NON_NEGATIVE):
                raise ConfigError(f"{where}: {label} must be positive, got {value}")
        elif isinstance(default, float):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ConfigError(f"{where}: {label} must be a number, got {value!r}")
            if value < 0 or (value == 0 and f.name not in _NON_NEGATIVE):
                raise ConfigError(f"{where}: {label} must be positive, got {value}")
            value = float(value)
        elif f.name == "path" or isinstance(default, str):
            if not isinstance(value, str):
                raise ConfigError(f"{where}: {label} must be a string, got {value!r}")
        values[f.name] = value
    return cls(**values)


def _list(value: Any, label: str, where: str) -> list[Any]:
    if not isinstance(value, list):
        value = [value]
    if not value:
        raise ConfigError(f"{where}: [{label.split('.')[0]}] {label.split('.')[-1]} is empty; give at least one value")
    if len(set(map(repr, value))) != len(value):
        raise ConfigError(f"{where}: {label} lists a value twice: {value}")
    return value


def _str_axis(value: Any, label: str, allowed: tuple[str, ...], where: str) -> tuple[str, ...]:
    items = _list(value, label, where)
    for item in items:
        if item not in allowed:
            raise ConfigError(f"{where}: {label}: unknown value {item!r}; choose from {', '.join(allowed)}")
    return tuple(items)


def _int_axis(value: Any, label: str, where: str) -> tuple[int, ...]:
    items = _list(value, label, where)
    for item in items:
        if isinstance(item, bool) or not isinstance(item, int):
            raise ConfigError(f"{where}: {label} values must be integers, got {item!r}")
        if item <= 0:
            raise ConfigError(f"{where}: {label} values must be positive, got {item}")
    return tuple(items)


def _jit_value(item: Any, label: str, where: str) -> JitCompile:
    if isinstance(item, bool) or item == "auto":
        return item
    raise ConfigError(f'{where}: {label}: unknown value {item!r}; choose from false, true, "auto"')


def _jit_axis(value: Any, label: str, where: str) -> tuple[JitCompile, ...]:
    return tuple(_jit_value(item, label, where) for item in _list(value, label, where))


def _to_plain(obj: Any) -> Any:
    if hasattr(obj, "__dataclass_fields__"):
        return {f.name: _to_plain(getattr(obj, f.name)) for f in fields(obj)}
    if isinstance(obj, (tuple, list)):
        return [_to_plain(x) for x in obj]
    if isinstance(obj, Mapping):
        return {k: _to_plain(v) for k, v in obj.items()}
    return obj


def config_from_dict(raw: Mapping[str, Any]) -> BenchConfig:
    """Rebuild a config from :meth:`BenchConfig.to_dict` (worker processes receive it this way)."""
    raw = dict(raw)
    source = raw.pop("path", "<config>")
    sha = raw.pop("sha256", "")
    return parse_config(raw, source=source, sha256=sha)
