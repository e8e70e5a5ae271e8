"""Descriptive statistics derived from raw per-round samples.

Results store the raw samples; these numbers are recomputed from them by anyone who wants to check.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence


def summarize(samples: Sequence[float]) -> dict[str, float | int | None]:
    """Median, quartiles (inclusive method, as pandas/numpy 'linear'), extremes, mean, stdev and CV."""
    values = [float(v) for v in samples]
    n = len(values)
    if n == 0:
        return {"n": 0, "median": None, "q1": None, "q3": None, "iqr": None, "min": None, "max": None,
                "mean": None, "stdev": None, "cv": None}
    ordered = sorted(values)
    q1, q3 = _quantile(ordered, 0.25), _quantile(ordered, 0.75)
    mean = statistics.fmean(values)
    stdev = statistics.stdev(values) if n > 1 else 0.0
    return {
        "n": n,
        "median": _quantile(ordered, 0.5),
        "q1": q1,
        "q3": q3,
        "iqr": q3 - q1,
        "min": ordered[0],
        "max": ordered[-1],
        "mean": mean,
        "stdev": stdev,
        # CV of the samples, the usual "is this run stable" number (pyperf warns above ~10 %).
        "cv": stdev / mean if mean else math.inf,
    }


def _quantile(ordered: Sequence[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default)."""
    if len(ordered) == 1:
        return ordered[0]
    pos = (len(ordered) - 1) * q
    lo = math.floor(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)
