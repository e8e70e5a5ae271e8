"""Throughput relative to the control workload timed next to each case (``case["control"]``).

Each case record of a run made with ``[control] enabled = true`` carries the control workload's round
durations from right before and right after the case, in the same worker on the same device
(:mod:`bench.measure.control`). The control never changes, so its throughput says how fast the machine
was at that moment; a case's throughput divided by it ("x control") is what the case achieved *relative
to the machine*. A machine uniformly 20 % slower today moves both by the same factor and the ratio not
at all; a slowdown of the case alone moves only the case.

What it cannot tell apart: anything that slows the control too. The control is the backend's own ops
(not Keras), so a Keras or suite change stays visible, but a backend upgrade that slows its kernels
also slows the control and is partly divided out. :func:`control_summary` therefore reports the
control's own change, and the CLI warns when it moved while the environments differ.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from bench.analyze.values import geomean, run_value

NORMALIZE_MODES = ("control", "none")


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


def control_value(case: Mapping[str, Any] | None) -> float | None:
    """One number for the machine's speed at this case: the trimmed geometric mean of the control's samples/s.

    Trimmed like the cases' rounds (``regression.TRIM``): one control round caught by another job's burst
    does not decide the case's normalisation.
    """
    samples = control_samples(case)
    if not samples:
        return None
    return run_value(samples)


def normalized(samples: Sequence[float], control: float, bigger_is_better: bool) -> list[float]:
    """Samples relative to the control: throughput / control throughput; seconds x control throughput.

    Either way a machine that runs everything k times slower leaves the result unchanged.
    """
    return [s / control for s in samples] if bigger_is_better else [s * control for s in samples]


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
