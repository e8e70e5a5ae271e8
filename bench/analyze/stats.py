"""Descriptive statistics derived from raw per-round samples.

Results store the raw samples; these numbers are recomputed from them by anyone who wants to check.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence

import numpy as np


def summarize(samples: Sequence[float]) -> dict[str, float | int | None]:
    """Median, quartiles (numpy's default linear interpolation), extremes, mean, stdev and CV."""
    values = [float(v) for v in samples]
    n = len(values)
    if n == 0:
        return {"n": 0, "median": None, "q1": None, "q3": None, "iqr": None, "min": None, "max": None,
                "mean": None, "stdev": None, "cv": None}
    q1, median, q3 = (float(q) for q in np.quantile(values, [0.25, 0.5, 0.75]))
    mean = statistics.fmean(values)
    stdev = statistics.stdev(values) if n > 1 else 0.0
    return {
        "n": n,
        "median": median,
        "q1": q1,
        "q3": q3,
        "iqr": q3 - q1,
        "min": min(values),
        "max": max(values),
        "mean": mean,
        "stdev": stdev,
        # CV of the samples, the usual "is this run stable" number (pyperf warns above ~10 %).
        "cv": stdev / mean if mean else math.inf,
    }
