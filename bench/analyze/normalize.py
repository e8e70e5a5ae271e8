"""A case's values as the gate sees them: one per process, raw and relative to the control timed next to it.

Each case record of a run made with ``[control] enabled = true`` carries the control workload's round
durations from right before and right after the case, in the same worker process on the same device
(:mod:`bench.measure.control`). The control never changes, so its throughput says how fast that process
and the machine were at that moment; a case's throughput divided by it ("x control") is what the case
achieved *relative to the machine*. A machine uniformly 20 % slower today moves both by the same factor
and the ratio not at all.

Whether dividing helps is an empirical question per case and runner: on one session of the shared 2-core
box it cut a case's between-run spread from 21.7 % to 7.9 %, on another it *added* noise, because the
control and a Keras case react differently to the same thread-pool draw or burst of contention. So the gate
normalises a case only where that measurably lowers its spread (:func:`choose_normalization`, decided per
case from the data the method already has: the history, the two runs' processes, the pairs), and says so in
every row. :func:`normalized` is the one place a value is divided by the control.

What it cannot tell apart: anything that slows the control too. The control is the backend's own ops
(not Keras), so a Keras or suite change stays visible, but a backend upgrade that slows its kernels
also slows the control and is partly divided out. :func:`control_summary` therefore reports the
control's own change, and the CLI warns when it moved while the environments differ.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats

from bench.analyze.judge import DEFAULT_THRESHOLD, Estimate
from bench.analyze.regression import MIN_PROCESSES, history_estimate, process_estimate
from bench.analyze.values import geomean, run_value

NORMALIZE_MODES = ("auto", "control", "none")
# "Measurably lowers the spread": Pitman-Morgan's test of equal variances of paired values, one-sided.
# 0.10 because a wrong "no" only keeps the raw value (the gate stays calibrated either way: each method's
# test uses the spread of whichever values it judges).
NORMALIZE_P = 0.10
MACHINE_MOVED_P = 0.01


def control_samples(case: Mapping[str, Any] | None) -> list[float] | None:
    """The control's samples/s next to this case, or None when it has none that are usable."""
    control = (case or {}).get("control")
    if not isinstance(control, Mapping) or control.get("status") != "ok":
        return None
    per_round, rounds = control.get("samples_per_round"), control.get("round_s")
    if (isinstance(per_round, bool) or not isinstance(per_round, (int, float)) or not per_round > 0
            or not isinstance(rounds, list) or not rounds):
        return None
    if not all(isinstance(r, (int, float)) and not isinstance(r, bool) and 0 < r < float("inf") for r in rounds):
        return None
    return [float(per_round) / float(r) for r in rounds]


def _passes(values: Any, n: int) -> list[int] | None:
    if isinstance(values, list) and len(values) == n and all(isinstance(p, int) and not isinstance(p, bool)
                                                             for p in values):
        return values
    return None


def control_value(case: Mapping[str, Any] | None) -> float | None:
    """The machine's speed at this case, one number: the control's run value over all its processes."""
    values = control_by_pass(case)
    return geomean(list(values.values())) if values else None


def control_by_pass(case: Mapping[str, Any] | None) -> dict[int, float]:
    """The control's value in each process (pass) that measured the case; {} when it has none."""
    samples = control_samples(case)
    if not samples:
        return {}
    passes = _passes(((case or {}).get("control") or {}).get("round_pass"), len(samples)) or [0] * len(samples)
    return {p: run_value([s for s, q in zip(samples, passes, strict=True) if q == p]) for p in sorted(set(passes))}


def normalized(value: float, control: float, bigger_is_better: bool) -> float:
    """A value relative to the control: throughput / control throughput; seconds x control throughput.

    Either way a machine that runs everything k times slower leaves the result unchanged.
    """
    return value / control if bigger_is_better else value * control


@dataclass(frozen=True)
class CaseValues:
    """One case of one run as the gate sees it: one value per process (pass order), and the control's.

    A run from before processes were recorded (no ``metrics.round_pass``) is one process.
    """

    passes: tuple[int, ...]
    raw: tuple[float, ...]
    control: tuple[float | None, ...]

    @property
    def processes(self) -> int:
        return len(self.raw)

    @property
    def has_control(self) -> bool:
        return all(c is not None for c in self.control)

    def values(self, normalize: bool, bigger_is_better: bool) -> list[float]:
        if not normalize:
            return list(self.raw)
        return [normalized(v, c, bigger_is_better) for v, c in zip(self.raw, self.control, strict=True)
                if c is not None]

    def run_value(self, normalize: bool, bigger_is_better: bool) -> float:
        """The case's value in this run: the geometric mean of its process values (each process counts once)."""
        return geomean(self.values(normalize, bigger_is_better))


def case_values(case: Mapping[str, Any], samples: Sequence[float], bigger_is_better: bool = True) -> CaseValues:
    """``samples`` (the case's per-round primary metric, ``compare.case_samples``) folded into process values."""
    passes = _passes((case.get("metrics") or {}).get("round_pass"), len(samples)) or [0] * len(samples)
    groups = {p: [s for s, q in zip(samples, passes, strict=True) if q == p] for p in sorted(set(passes))}
    controls = control_by_pass(case)
    one_control = control_value(case) if len(controls) == 1 else None
    raw = tuple(run_value(g, bigger_is_better=bigger_is_better) for g in groups.values())
    # A control measured once for the whole case (older runs) stands for every process of it.
    control = tuple(controls.get(p, one_control) for p in groups)
    return CaseValues(tuple(groups), raw, control)


@dataclass(frozen=True)
class Normalization:
    """Whether a case is judged relative to the control, and the evidence for that choice."""

    used: bool
    mode: str
    # True when auto had both candidates and picked one by their spreads: picking the smaller of two estimated
    # spreads underestimates it, so the case's level is halved (Bonferroni over the two candidates).
    chosen: bool = False
    sd_raw: float | None = None  # spread of the log values the decision looked at, raw ...
    sd_control: float | None = None  # ... and divided by the control
    p: float | None = None  # Pitman-Morgan one-sided p-value for "dividing lowers the spread"
    why: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {"used": self.used, "mode": self.mode, "chosen": self.chosen, "sd_raw": self.sd_raw,
                "sd_control": self.sd_control, "p": self.p, "why": self.why}


def spread_test(raw: Sequence[Sequence[float]], divided: Sequence[Sequence[float]]) -> tuple[float, float, float | None]:
    """(sd raw, sd divided, p) over groups of paired log values, each group centred on its own mean.

    Pitman-Morgan: for paired u (raw) and v (divided), var(u) > var(v) exactly when u + v and u - v are
    positively correlated; t = r sqrt(df / (1 - r^2)) with df = n - groups - 1.
    """
    u = np.concatenate([np.asarray(g, float) - np.mean(g) for g in raw if len(g)])
    v = np.concatenate([np.asarray(g, float) - np.mean(g) for g in divided if len(g)])
    groups = sum(1 for g in raw if len(g))
    dof = len(u) - groups
    sd_u = math.sqrt(float(np.sum(u ** 2)) / dof) if dof > 0 else float("nan")
    sd_v = math.sqrt(float(np.sum(v ** 2)) / dof) if dof > 0 else float("nan")
    df = dof - 1
    s, d = u + v, u - v
    denominator = math.sqrt(float(np.sum(s ** 2)) * float(np.sum(d ** 2)))
    if df < 1 or not denominator > 0:
        return sd_u, sd_v, None
    r = float(np.sum(s * d)) / denominator
    if r >= 1.0:
        return sd_u, sd_v, 0.0
    t = r * math.sqrt(df / (1.0 - r * r))
    return sd_u, sd_v, float(stats.t.sf(t, df))


def choose_normalization(mode: str, raw: Sequence[Sequence[float]] | None,
                         divided: Sequence[Sequence[float]] | None, where: str,
                         machine_moved: str | None = None) -> Normalization:
    """The one decision: divide by the control or not. ``raw``/``divided`` are groups of paired log values
    (None: no control to divide by); ``where`` names them ("the 10 history runs"). ``machine_moved`` (two
    runs only): the control itself moved between the runs beyond its own noise, so the raw values carry the
    machine's change and the case is judged relative to the control (said so)."""
    if mode not in NORMALIZE_MODES:
        raise ValueError(f"normalize must be one of {NORMALIZE_MODES}")
    if mode == "none":
        return Normalization(False, mode, why="raw (--normalize none)")
    if raw is None or divided is None:
        return Normalization(False, mode, why="raw: no control samples on every side")
    sd_raw, sd_control, p = spread_test(raw, divided)
    if mode == "control":
        return Normalization(True, mode, False, sd_raw, sd_control, p, "divided by the control (--normalize control)")
    if machine_moved:
        return Normalization(True, mode, True, sd_raw, sd_control, p,
                             f"divided by the control: {machine_moved} (the level is halved for the choice)")
    if p is None:
        return Normalization(False, mode, False, sd_raw, sd_control, p, f"raw: too few values in {where} to tell "
                                                                         "whether dividing by the control helps")
    if p < NORMALIZE_P:
        return Normalization(True, mode, True, sd_raw, sd_control, p,
                             f"divided by the control: it lowers the spread over {where} from {sd_raw:.1%} to "
                             f"{sd_control:.1%} (p = {p:.2g}; the level is halved for the choice)")
    return Normalization(False, mode, True, sd_raw, sd_control, p,
                         f"raw: dividing by the control would not measurably lower the spread over {where} "
                         f"({sd_raw:.1%} raw, {sd_control:.1%} divided; the level is halved for the choice)")


def control_change(before: Sequence[float | None], after: Sequence[float | None]) -> Estimate | None:
    """Two runs: the control's change between their processes (None without two values a side)."""
    a, b = [float(c) for c in before if c is not None], [float(c) for c in after if c is not None]
    if len(a) < MIN_PROCESSES or len(b) < MIN_PROCESSES:
        return None
    return process_estimate(a, b)


def control_prediction(history: Sequence[float | None], current: float | None) -> Estimate | None:
    """A history: the current run's control against the history's (None unless every run has one)."""
    if current is None or len(history) < 3 or any(c is None for c in history):
        return None
    return history_estimate([float(c) for c in history if c is not None], current)


def machine_moved(change: Estimate | None, where: str) -> str | None:
    """The control moved beyond its own noise (two-sided 1 %) and by at least the threshold: the machine differed
    as a whole, which the case's own spread cannot show, and the control is the only witness of it."""
    if change is None:
        return None
    low, high = change.p(down=True), change.p(down=False)
    if low is None or high is None or 2 * min(low, high) >= MACHINE_MOVED_P or abs(change.ratio - 1) < DEFAULT_THRESHOLD:
        return None
    return (f"the control moved {change.ratio - 1:+.1%} {where} (p = {2 * min(low, high):.2g}), so the machine differed "
            "as a whole")


def run_control(run: Mapping[str, Any]) -> float | None:
    """The median over a run's cases of their control values (the machine's speed during the run)."""
    values = [v for v in (control_value(c) for c in run.get("cases") or []) if v is not None]
    return float(np.median(values)) if values else None


def control_summary(baselines: Sequence[Mapping[str, Any]], current: Mapping[str, Any]) -> dict[str, Any] | None:
    """The control's own change: current run against the baseline run(s); None when no run has a control."""
    base_values = [v for v in (run_control(r) for r in baselines) if v is not None]
    cur = run_control(current)
    if not base_values and cur is None:
        return None
    base = geomean(base_values) if base_values else None
    return {
        "unit": "samples/s",
        "baseline": base,
        "baseline_runs": len(base_values),
        "current": cur,
        "ratio": cur / base if cur is not None and base else None,
    }
