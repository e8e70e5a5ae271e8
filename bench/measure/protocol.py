"""One timed-rounds protocol for every throughput suite (train, native): calibrate, warm up, time, cross-check.

A suite supplies a :class:`RoundSource` — how to run ``units`` of work once (calibration) and how to run
rounds of a fixed number of units — and gets back a frozen :class:`TimedRounds`. What a *unit* is belongs to
the suite: a training step, or a whole pass over the training set for inputs that are iterated afresh
each epoch (see :mod:`bench.measure.inputs`). The protocol, in order:

1. **Calibration** (:func:`calibrate`, pyperf's calibrate-loops idea): units per round so one round lasts at
   least ``min_round_s``; every trial is kept (``calibration``). Only in a case's first process: later
   processes get the same ``units`` (``RoundSettings.units``, as pyperf passes ``--loops`` to its workers), so
   every round of a case is the same work.
2. **Warm-up**: one untimed round at the calibrated length (compiles for that length, fills iterators).
3. **Unmonitored rounds, first half**: only when the monitor's own cost is measured
   (``measure_overhead`` and a monitor that samples something); as many as the timed rounds, half before
   and half after them, so slow drift (clocks, temperature) does not masquerade as overhead.
4. **Timed rounds** through pytest-benchmark's ``benchmark.pedantic`` (its own timer, ``time.perf_counter``),
   with the GPU monitor and the machine monitor (other processes' CPU share, steal:
   :mod:`bench.monitor.machine`) entered around exactly these rounds, an independent wall clock read just
   inside them, as a cross-check of the harness' sum (``timing_check``), and each round's wall-clock start
   (``round_start_unix``) so rounds of different processes can be laid out in time.
5. **Unmonitored rounds, second half.**

A round callable may return the CPU seconds its host thread spent in the round (``time.thread_time()`` read
in the thread that drives the work: the thread running ``fit``, or the native loop's timing thread); the
protocol keeps those of the timed rounds, parallel to ``round_s`` (``round_host_cpu_s``). Thread CPU time
counts only what that one thread executed — Python, the dispatch of compiled steps, Keras' per-step bookkeeping —
not the time it waited for the device, so beside the wall time it says who set the pace.

Every clock is injected, so the protocol is tested with a fake clock and a fake benchmark, no framework.
A round must end only when the device has finished its work (the suites read a loss back as a Python
float), otherwise no clock here means anything.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any, Protocol

from bench.analyze.stats import summarize
from bench.monitor.machine import MachineMonitor
from bench.monitor.select import UnavailableMonitor

Clock = Callable[[], float]


class NonFiniteLoss(ArithmeticError):
    """A round's loss was NaN or infinite: the case fails (its key line says so), the sweep goes on."""


class RoundSource(Protocol):
    """What a suite provides: one calibration trial, and a context in which rounds run."""

    def trial(self, units: int) -> float:
        """Seconds that ``units`` units of work take, per-call set-up excluded."""

    def rounds(self, units: int, count: int) -> AbstractContextManager[Callable[[], float | None]]:
        """A context yielding a callable that runs one round of ``units`` units and returns its host thread's
        CPU seconds (or None when it cannot tell); it will be called ``count`` times (warm-up, unmonitored and
        timed rounds together)."""


@dataclass(frozen=True)
class RoundSettings:
    """How many rounds and how long; ``units`` are whatever the suite's source counts."""

    rounds: int
    min_round_s: float
    start_units: int
    max_units: int
    multiple: int = 1  # units per round are rounded up to a multiple of this (steps_per_execution)
    measure_overhead: bool = False
    units: int | None = None  # calibrated in an earlier process of the case: use it, calibrate nothing


@dataclass(frozen=True)
class TimedRounds:
    """The raw outcome of the protocol; statistics are derived from it, never stored instead of it."""

    units_per_round: int
    round_s: tuple[float, ...]  # pytest-benchmark's per-round durations, timed rounds only
    wall_s: float  # independent clock around the timed rounds
    off_round_s: tuple[float, ...]  # unmonitored rounds (empty unless the monitor's cost was measured)
    gpu_metrics: Mapping[str, Any]  # the monitor's result over exactly the timed rounds
    calibration: tuple[Mapping[str, Any], ...] = field(default=())
    round_start_unix: tuple[float, ...] = field(default=())  # wall-clock start of each timed round
    machine: Mapping[str, Any] = field(default_factory=dict)  # bench.monitor.machine over the timed rounds
    # CPU seconds of the thread driving each timed round (parallel to round_s); empty when the source
    # could not tell for every round.
    round_host_cpu_s: tuple[float, ...] = field(default=())

    @property
    def timing_check(self) -> dict[str, float | None]:
        harness = sum(self.round_s)
        return {"harness_s": harness, "wall_s": self.wall_s,
                "rel_diff": abs(self.wall_s - harness) / self.wall_s if self.wall_s else None}


def calibrate(run_units: Callable[[int], float], start_units: int, min_round_s: float, max_units: int,
              multiple: int = 1) -> tuple[int, list[dict[str, float]]]:
    """Units per round so a round lasts at least ``min_round_s``; returns it and the trials.

    Grows geometrically until a trial lasts a fifth of the target (short trials say little about the
    per-unit cost), then scales linearly with 10 % headroom. Every count is a multiple of ``multiple``
    (Keras runs whole executions of ``steps_per_execution`` steps) and at most ``max_units`` rounded up
    to that multiple.
    """
    multiple = max(1, multiple)
    ceiling = round_up(max(1, max_units), multiple)
    units = min(ceiling, round_up(max(1, start_units), multiple))
    trials: list[dict[str, float]] = []
    while True:
        seconds = run_units(units)
        trials.append({"units": units, "seconds": seconds})
        if seconds >= 0.2 * min_round_s or units >= ceiling:
            break
        growth = 10.0 if seconds <= 0 else min(10.0, max(2.0, 0.3 * min_round_s / seconds))
        units = min(ceiling, round_up(int(math.ceil(units * growth)), multiple))
    per_unit = seconds / units
    target = int(math.ceil(1.1 * min_round_s / per_unit)) if per_unit > 0 else ceiling
    return min(ceiling, round_up(max(1, target), multiple)), trials


def round_up(value: int, multiple: int) -> int:
    """The smallest multiple of ``multiple`` at least ``value``."""
    return -(-value // multiple) * multiple


def measure_rounds(source: RoundSource, settings: RoundSettings, benchmark: Any, monitor: Any,
                   clock: Clock = time.perf_counter, wall_clock: Clock = time.monotonic,
                   unix_clock: Clock = time.time, machine: Any = None) -> TimedRounds:
    """Run the whole protocol (module docstring) and return its raw outcome.

    ``benchmark`` is pytest-benchmark's fixture (or anything with its ``pedantic`` and ``stats`` surface);
    ``monitor`` a context manager with ``result()`` (:func:`bench.monitor.select.monitor_for`); ``machine``
    likewise (default :class:`bench.monitor.machine.MachineMonitor`).
    """
    if settings.units:
        units, trials = round_up(max(1, settings.units), max(1, settings.multiple)), []
    else:
        units, trials = calibrate(source.trial, settings.start_units, settings.min_round_s, settings.max_units,
                                  settings.multiple)
    machine = MachineMonitor() if machine is None else machine
    # The cost of a monitor that samples nothing is nothing; timing it would record noise as overhead.
    off_rounds = settings.rounds if settings.measure_overhead and not isinstance(monitor, UnavailableMonitor) else 0
    off_before = off_rounds // 2
    off_round_s: list[float] = []
    host_cpu_s: list[float | None] = []
    with source.rounds(units, 1 + settings.rounds + off_rounds) as one_round:

        def unmonitored(n: int) -> None:
            for _ in range(n):
                t0 = clock()
                one_round()
                off_round_s.append(clock() - t0)

        starts: list[float] = []

        def timed_round() -> None:
            # One clock read and one call more inside the timed region: well under a microsecond a round.
            starts.append(unix_clock())
            host_cpu_s.append(one_round())

        one_round()  # warm-up at the calibrated length, untimed
        unmonitored(off_before)
        with monitor, machine:
            wall0 = wall_clock()
            benchmark.pedantic(timed_round, rounds=settings.rounds, iterations=1, warmup_rounds=0)
            wall_s = wall_clock() - wall0
        unmonitored(off_rounds - off_before)
    round_s = tuple(float(x) for x in benchmark.stats.stats.data)
    host = tuple(float(x) for x in host_cpu_s if x is not None)
    return TimedRounds(units, round_s, wall_s, tuple(off_round_s), monitor.result(), tuple(trials),
                       tuple(starts), machine.result(), host if len(host) == len(round_s) else ())


def throughput_metrics(result: TimedRounds, samples_per_unit: int, steps_per_unit: int,
                       cv_threshold: float) -> tuple[dict[str, Any], dict[str, bool]]:
    """The metrics every throughput suite records from its rounds, and the flags they imply.

    A step unit is one step of ``global_batch`` samples; a pass unit is one epoch: every sample fed in it
    and its steps. Calibration trials keep their units and gain the steps they stand for.
    """
    steps = result.units_per_round * steps_per_unit
    samples = result.units_per_round * samples_per_unit
    metrics: dict[str, Any] = {
        "steps_per_round": steps,
        "samples_per_round": samples,
        "round_s": list(result.round_s),
        "samples_per_second": summarize([samples / s for s in result.round_s]),
        "step_time_s": summarize([s / steps for s in result.round_s]),
        "timing_check": result.timing_check,
        "round_start_unix": list(result.round_start_unix),
        "gpu_metrics": dict(result.gpu_metrics),
        "calibration": [{**t, "steps": t["units"] * steps_per_unit} for t in result.calibration],
    }
    if result.machine:
        metrics["machine"] = dict(result.machine)
    if result.round_host_cpu_s:
        metrics["round_host_cpu_s"] = list(result.round_host_cpu_s)
    if result.off_round_s:
        on = metrics["samples_per_second"]["median"]
        off = summarize([samples / s for s in result.off_round_s])
        metrics["monitor_overhead"] = {
            "off_round_s": list(result.off_round_s),
            "off_samples_per_second": off,
            # Positive = the monitored rounds were slower. Compare with the CV: below it, it is noise.
            "overhead_pct": 100.0 * (off["median"] - on) / off["median"],
        }
    cv = metrics["samples_per_second"]["cv"]
    flags = {
        "unstable": bool(cv is not None and cv > cv_threshold),
        # reliable is None when there was nothing to sample (CPU replicas): not a doubtful measurement.
        "gpu_metrics_unreliable": metrics["gpu_metrics"].get("reliable") is False,
    }
    return metrics, flags
