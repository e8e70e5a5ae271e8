"""One number per process and one per run: how a case's timed rounds become the values comparisons use.

A process's rounds share that process's draw (its thread pools, its allocator, the machine's state of the
moment), so comparisons and the regression gate never treat rounds as independent samples: each process
contributes one value (:func:`process_value`), and its uncertainty is the spread between processes
(bench.analyze.paired). Where a history or an A/B compares whole runs, each run contributes one value
(:func:`run_value`).

The rules. A process: the median of its rounds — with the 3-5 rounds a process times, one round caught by
another job's burst (single rounds 10-50 % slower on shared runners) does not move it, where a 20 %-trimmed
mean of 3 rounds trims nothing; and a case measured in one process reads the same median it always stored.
A run: the 20 %-trimmed geometric mean of its rounds — logs, because throughput ratios are what is compared
and timings are skewed to the slow side.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy import stats

TRIM = 0.2  # proportion cut from each end: 1 of 5 rounds, 2 of 10


def logs(samples: Sequence[float]) -> np.ndarray:
    """Natural logs of positive finite samples; anything else is a ValueError."""
    values = np.asarray(samples, dtype=float)
    if values.ndim != 1 or not np.all(np.isfinite(values)) or np.any(values <= 0):
        raise ValueError("samples must be positive finite numbers")
    return np.log(values)


def process_value(samples: Sequence[float]) -> float:
    """One value for one process's rounds of a case (samples/s or seconds, whatever the rounds hold)."""
    return float(np.median(np.exp(logs(samples))))


def run_value(samples: Sequence[float]) -> float:
    """One value for one run of a case, from its rounds (the regression gate's unit of evidence)."""
    return float(math.exp(stats.trim_mean(logs(samples), TRIM)))


def geomean(values: Sequence[float]) -> float:
    """The plain geometric mean (of process or run values: each counts once)."""
    return float(math.exp(np.mean(logs(values))))
