"""Where a case is defined: every suite's case type, its id and the product of the config's axes.

Pure and framework-free: the sweep plans from these lists in the parent process and the worker
parameterises its pytest-benchmark module from the same lists (fixture ``<suite>_case``), so both sides
agree on ids by construction.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from bench.config import DEFAULT_ENVIRONMENT, BenchConfig, ConfigError, JitCompile

# The native loop's variants per backend (see bench.measure.native).
VARIANTS = {"tensorflow": ("step",), "jax": ("step", "epoch_scan"), "torch": ("step",)}
# What a multi-worker case ([train] workers > 1) can feed, per backend (bench.measure.multiworker says why).
WORKER_INPUTS = {"tensorflow": ("tf_data_prefetch",), "jax": ("tf_data_prefetch", "numpy")}
# Backends cpu_predict knows how to run on.
SUPPORTED_BACKENDS = ("tensorflow", "jax", "torch")
# Methods that change or replace the trained model get their own; the rest share one ("plain").
_FAMILY = {"recompile": "recompile", "strategy": "strategy"}


@dataclass(frozen=True)
class TrainCase:
    """One cell of the training sweep."""

    backend: str
    gpus: int
    global_batch: int
    precision: str
    jit_compile: JitCompile
    input: str = "device"
    steps_per_execution: int = 1
    workers: int = 1  # processes (bench.measure.multiworker); gpus replicas in each
    keras: str = "keras3"  # or "tf_keras" (Keras 2 on TensorFlow)
    environment: str = DEFAULT_ENVIRONMENT  # or an [environments.<name>] table (another Keras, say)

    @property
    def per_replica_batch(self) -> int:
        return self.global_batch // (self.gpus * self.workers)

    @property
    def per_worker_batch(self) -> int:
        return self.global_batch // self.workers

    @property
    def case_id(self) -> str:
        # input and spe are always named: ids from before these axes existed measured other input paths
        # (tf.data with prefetch on TensorFlow, a cycling PyDataset elsewhere) and must not match new ones.
        # workers, keras and environment are named only off their defaults: a one-process Keras 3 case in the
        # tool's own Python measures exactly what it measured before these axes existed, so its id (and every
        # baseline keyed on it) stays.
        return (
            f"train/{self.backend}/gpus={self.gpus}/batch={self.global_batch}/"
            f"{self.precision}/jit={jit_label(self.jit_compile)}/input={self.input}/spe={self.steps_per_execution}"
            + (f"/workers={self.workers}" if self.workers != 1 else "")
            + (f"/keras={self.keras}" if self.keras != "keras3" else "")
            + (f"/env={self.environment}" if self.environment != DEFAULT_ENVIRONMENT else "")
        )

    def params(self) -> dict[str, Any]:
        return {
            "backend": self.backend,
            "gpus": self.gpus,
            "global_batch": self.global_batch,
            "precision": self.precision,
            "jit_compile": self.jit_compile,
            "input": self.input,
            "steps_per_execution": self.steps_per_execution,
            "workers": self.workers,
            "keras": self.keras,
            "environment": self.environment,
        }


def jit_label(value: JitCompile) -> str:
    return "auto" if value == "auto" else str(bool(value)).lower()


def train_cases(config: BenchConfig) -> list[TrainCase]:
    """The product of the training axes in declaration order, without excluded cells, then the product of
    each ``[[train.add]]`` sweep; a case that two sweeps both produce is listed once, where it first came."""
    cases: dict[str, TrainCase] = {}
    for axes in (config.train, *config.train.add):
        for backend, gpus, batch, precision, jit, feed, spe, workers, keras, environment in itertools.product(
            axes.backend, axes.gpus, axes.global_batch, axes.precision, axes.jit_compile, axes.input,
            axes.steps_per_execution, axes.workers, axes.keras, axes.environment,
        ):
            case = TrainCase(backend, gpus, batch, precision, jit, feed, spe, workers, keras, environment)
            if not any(_matches(case.params(), rule) for rule in axes.exclude):
                cases.setdefault(case.case_id, case)
    return list(cases.values())


def _matches(params: Mapping[str, Any], rule: Mapping[str, Any]) -> bool:
    return all(_same(params[key], value) for key, value in rule.items())


def _same(a: Any, b: Any) -> bool:
    # bool is an int in Python: keep jit_compile=true from matching gpus=1.
    return type(a) is type(b) and a == b



@dataclass(frozen=True)
class NativeCase:
    """One native reference: a backend's hand-written loop at one batch and precision."""

    backend: str
    global_batch: int
    precision: str
    variant: str  # "step" or "epoch_scan"

    @property
    def case_id(self) -> str:
        return f"native/{self.backend}/batch={self.global_batch}/{self.precision}/{self.variant}"

    def params(self) -> dict[str, Any]:
        return {"backend": self.backend, "global_batch": self.global_batch, "precision": self.precision,
                "variant": self.variant}


def native_cases(config: BenchConfig) -> list[NativeCase]:
    """One case per (backend, global_batch, precision) that some train case has, times its variants.

    A cell every train case of which is excluded (``[train] exclude``) has nothing to be compared with,
    so it is left out too.
    """
    wanted = {(c.backend, c.global_batch, c.precision) for c in train_cases(config)}
    sweeps = (config.train, *config.train.add)

    def values(axis: str) -> list[Any]:  # every sweep's values, in first-seen order
        return list(dict.fromkeys(v for axes in sweeps for v in getattr(axes, axis)))

    return [
        NativeCase(backend, batch, precision, variant)
        for backend, batch, precision in itertools.product(values("backend"), values("global_batch"), values("precision"))
        if (backend, batch, precision) in wanted
        for variant in VARIANTS[backend]
    ]



@dataclass(frozen=True)
class CpuPredictCase:
    """One cell of the cpu_predict sweep."""

    backend: str
    precision: str
    train_jit_compile: JitCompile
    predict_batch: int
    method: str

    @property
    def case_id(self) -> str:
        return (f"cpu_predict/{self.backend}/{self.precision}/train_jit={jit_label(self.train_jit_compile)}/"
                f"batch={self.predict_batch}/{self.method}")

    @property
    def family(self) -> str:
        return _FAMILY.get(self.method, "plain")

    def params(self) -> dict[str, Any]:
        return {"backend": self.backend, "precision": self.precision, "train_jit_compile": self.train_jit_compile,
                "predict_batch": self.predict_batch, "method": self.method}


def cpu_predict_cases(config: BenchConfig) -> list[CpuPredictCase]:
    """backend x precision x train_jit_compile x predict_batch x method, in declaration order.

    Every backend of ``[train] backend``; methods that do not exist on a backend (``strategy`` off
    TensorFlow) stay in the sweep and are recorded as skipped with the reason.
    """
    cp = config.cpu_predict
    backends = [b for b in config.train.backend if b in SUPPORTED_BACKENDS]
    axes = (backends, cp.precision, cp.train_jit_compile, cp.predict_batch, cp.methods)
    return [CpuPredictCase(*cell) for cell in itertools.product(*axes)]




@dataclass(frozen=True)
class ConvergeCase:
    """One cell of the time-to-accuracy sweep (every seed of it is one run of the case)."""

    backend: str
    gpus: int
    global_batch: int
    precision: str
    jit_compile: JitCompile
    lr_scaling: str  # "none", "linear" or "sqrt"

    @property
    def per_replica_batch(self) -> int:
        return self.global_batch // self.gpus

    @property
    def case_id(self) -> str:
        return (f"converge/{self.backend}/gpus={self.gpus}/batch={self.global_batch}/{self.precision}/"
                f"jit={jit_label(self.jit_compile)}/lr={self.lr_scaling}")

    def params(self) -> dict[str, Any]:
        return {"backend": self.backend, "gpus": self.gpus, "global_batch": self.global_batch,
                "precision": self.precision, "jit_compile": self.jit_compile, "lr_scaling": self.lr_scaling}

    def learning_rate(self, base: float, reference_batch: int) -> float:
        """Adam's learning rate for this batch: ``base`` at ``reference_batch``, scaled by the rule."""
        ratio = self.global_batch / reference_batch
        if self.lr_scaling == "linear":
            return base * ratio
        if self.lr_scaling == "sqrt":
            return base * math.sqrt(ratio)
        return base


def converge_cases(config: BenchConfig) -> list[ConvergeCase]:
    """The product of the ``[converge]`` axes in declaration order, without excluded cells."""
    axes = config.converge
    cases = []
    for cell in itertools.product(axes.backend, axes.gpus, axes.global_batch, axes.precision, axes.jit_compile,
                                  axes.lr_scaling):
        case = ConvergeCase(*cell)
        if not any(_matches(case.params(), rule) for rule in axes.exclude):
            cases.append(case)
    return cases


def suite_cases(suite: str, config: BenchConfig) -> list[Any]:
    """The cases of one suite from the config's axes; each has ``case_id``, ``backend`` and ``params()``."""
    if suite == "train":
        return train_cases(config)
    if suite == "cpu_predict":
        return cpu_predict_cases(config)
    if suite == "native":
        return native_cases(config)
    if suite == "converge":
        return converge_cases(config)
    raise ValueError(f"unknown suite {suite!r}")


def check_cases(config: BenchConfig) -> BenchConfig:
    """The config, once the cases its axes make are known to be runnable; else :class:`ConfigError`, one line.

    Every global batch divides over its replicas (and workers), and no suite's exclude rules leave it empty.
    Checked where a sweep is loaded (``bench.config_overrides.load_config_with_overrides``), not while parsing:
    the product of the axes is the cases' business.
    """
    where = config.path or "<config>"
    if "train" in config.suites:
        cases = train_cases(config)
        if not cases:
            raise ConfigError(f"{where}: [train] every case is excluded; loosen 'exclude'")
        for case in cases:
            if case.global_batch % case.gpus:
                raise ConfigError(
                    f"{where}: [train] global_batch {case.global_batch} is not divisible by gpus = {case.gpus}; "
                    "use a multiple of every replica count or exclude the pair")
            if case.global_batch % (case.gpus * case.workers):
                raise ConfigError(
                    f"{where}: [train] global_batch {case.global_batch} is not divisible by workers x gpus = "
                    f"{case.workers} x {case.gpus}; use a multiple of every replica count or exclude the pair")
    if "converge" in config.suites:
        converge = converge_cases(config)
        if not converge:
            raise ConfigError(f"{where}: [converge] every case is excluded; loosen 'exclude'")
        for case in converge:
            if case.global_batch % case.gpus:
                raise ConfigError(f"{where}: [converge] global_batch {case.global_batch} is not divisible by gpus = "
                                  f"{case.gpus}; use a multiple of every replica count or exclude the pair")
    return config
