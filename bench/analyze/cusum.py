"""Change points in a series of runs: a robust one-sided CUSUM per case and for the suite, calibrated by simulation.

One run judged alone against a history cannot see a change smaller than about three times the between-run
spread; several runs after a change can (MongoDB's CI with E-divisive, Apache Otava). This is the simple
version: each case's log values, oldest first; the first ``reference`` runs give the level and spread
(outliers winsorised at 3 robust sd, which the calibration below simulates too); every later run is standardised against
them, ``z = (x - m) / (s * sqrt(1 + 1/R))``, clipped to +-3 so that one wild run moves the statistic by a
bounded amount, and accumulated in Page's CUSUM with allowance ``k``:

    S_0 = 0,  S_t = max(0, S_{t-1} - z_t - k)        (a slowdown of throughput; the mirror for seconds)

``k`` is half the shift the mode is tuned to (``target``, default 10 %) in the case's reference sd units,
kept within 0.5-1.5 and rounded to a quarter (:func:`allowance`): the textbook choice for a shift of known
size, and a larger ``k`` also lets less of the reference's own estimation error pile up in S.

An alarm is S reaching ``h``; the shift started at the run after the last S = 0 before it (Page's estimate
of the change point), and its size is the mean of the runs since then against the reference.

Calibration. With a reference of R runs the z's are not independent (they share the reference's mean and
sd), so textbook ARL tables do not hold. :func:`null_peaks` simulates the whole procedure on normal noise
(R reference runs then ``horizon`` monitored runs, 200,000 series, fixed seed, cached) and keeps the peak
of S over the horizon; ``h`` is the (1 - alpha) quantile of those peaks and a series' p-value is the share
of null peaks at least as high as its own. The false-alarm budget (default 5 % per suite over 20 runs) is
split over the cases and the suite series with Holm's step-down (:func:`bench.analyze.judge.case_levels`).
Clipping makes heavy-tailed noise (a run caught by another job) cost little: a single run adds at most 2.5
to S.

The suite series is the mean over the cases of each run's log value minus the case's reference mean: the
log of the geometric mean of every case's relative speed. A change that hits every case (a Keras or driver
upgrade) shows there with about 1/sqrt(K) of a case's noise.

:func:`mde_after` gives the smallest shift the CUSUM catches with 90 % probability within ``m`` runs at a
case's spread: ``delta = k + (h + z(0.9) * sqrt(m + m (m - 1) / (R + 1))) / m`` reference sd units (the
sum of m post-change z's, with the correlation the shared reference mean gives them); a shift that needs
more than 3 - k per run cannot be reached in m runs because of the clipping (None).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

TARGET = 0.10  # the shift (a 10 % slowdown) the allowance is tuned to
ALLOWANCES = (0.5, 1.5)  # k, in reference sd: at least 0.5, at most 1.5
CLIP = 3.0
DEFAULT_REFERENCE = 10
MIN_REFERENCE = 5
DEFAULT_HORIZON = 20
SIMULATIONS = 200_000
SEED = 20_231_123


def _winsorized(ref: np.ndarray, clip_mads: float = 3.0) -> np.ndarray:
    """Row-wise :func:`bench.analyze.judge.robust_logs` for arrays already on the log scale."""
    median = np.median(ref, axis=1, keepdims=True)
    robust_sd = 1.4826 * np.median(np.abs(ref - median), axis=1, keepdims=True)
    bound = np.where(robust_sd > 0, clip_mads * robust_sd, np.inf)
    return np.clip(ref, median - bound, median + bound)


def standardized(logs: np.ndarray, reference: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(z of the monitored runs, reference mean, scale) for each row of ``logs`` (series x runs)."""
    ref = _winsorized(logs[:, :reference]) if reference >= 3 else logs[:, :reference]
    mean = ref.mean(axis=1, keepdims=True)
    scale = ref.std(axis=1, ddof=1, keepdims=True) * math.sqrt(1.0 + 1.0 / reference)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(scale > 0, (logs[:, reference:] - mean) / scale, 0.0)
    return np.clip(z, -CLIP, CLIP), mean[:, 0], scale[:, 0]


def allowance(scale: float, target: float = TARGET) -> float:
    """k for a series whose z unit is ``scale`` (log): half the target shift, within 0.5-1.5, to a quarter."""
    if not scale > 0:
        return ALLOWANCES[1]
    half = -math.log1p(-target) / scale / 2.0
    return min(ALLOWANCES[1], max(ALLOWANCES[0], round(half * 4) / 4))


def cusum(z: np.ndarray, down: bool = True, allowance: float = ALLOWANCES[0]) -> np.ndarray:
    """Page's one-sided CUSUM along the last axis: S_t = max(0, S_{t-1} -/+ z_t - k)."""
    signed = -z if down else z
    out = np.zeros_like(signed)
    level = np.zeros(signed.shape[:-1])
    for t in range(signed.shape[-1]):
        level = np.maximum(0.0, level + signed[..., t] - allowance)
        out[..., t] = level
    return out


@lru_cache(maxsize=64)
def null_peaks(reference: int, horizon: int, allowance: float) -> np.ndarray:
    """Sorted peaks of S over ``horizon`` monitored runs, for series of pure normal noise (see the docstring)."""
    rng = np.random.default_rng(SEED + 1000 * reference + horizon)
    peaks = []
    for _ in range(SIMULATIONS // 20_000):
        logs = rng.standard_normal((20_000, reference + horizon))
        z, _, _ = standardized(logs, reference)
        peaks.append(cusum(z, allowance=allowance).max(axis=1))  # the null is symmetric: one direction serves both
    return np.sort(np.concatenate(peaks))


def threshold(reference: int, horizon: int, alpha: float, allowance: float) -> float:
    """h: the (1 - alpha) quantile of the null peaks (a false alarm within ``horizon`` runs with probability alpha)."""
    return float(np.quantile(null_peaks(reference, horizon, allowance), 1.0 - alpha))


def p_value(reference: int, horizon: int, peak: float, allowance: float) -> float:
    """The share of null series whose peak reaches ``peak`` (at least one simulated series' worth)."""
    peaks = null_peaks(reference, horizon, allowance)
    above = len(peaks) - int(np.searchsorted(peaks, peak - 1e-12, side="left"))
    return max(above, 1) / len(peaks)


@dataclass(frozen=True)
class Series:
    """The CUSUM of one series (a case, or the suite) in one direction."""

    statistic: tuple[float, ...]  # S for each monitored run
    peak: float
    p: float  # calibrated p-value of the peak
    start: int | None  # index (into the whole series) where the current or alarmed run-up began
    end: int  # index of the run where S peaked (the alarm run when it alarms)
    log_shift: float  # mean of the runs start..end against the reference mean (log)
    scale: float  # the reference's sd * sqrt(1 + 1/R): the unit of z
    allowance: float  # k


def analyse(logs: Sequence[float], reference: int, horizon: int, down: bool, target: float = TARGET) -> Series:
    """The CUSUM of one series of log values (oldest first) in one direction."""
    x = np.asarray(logs, dtype=float)[None, :]
    z, mean, scale = standardized(x, reference)
    k = allowance(float(scale[0]), target)
    s = cusum(z, down, k)[0]
    if s.size == 0:
        return Series((), 0.0, 1.0, None, reference - 1, 0.0, float(scale[0]), k)
    peak_at = int(np.argmax(s))
    peak = float(s[peak_at])
    zeros = np.flatnonzero(s[:peak_at + 1] == 0.0)
    start_rel = int(zeros[-1]) + 1 if zeros.size else 0
    if peak == 0.0:
        start_rel = peak_at = len(s) - 1
    start, end = reference + start_rel, reference + peak_at
    shift = float(np.mean(x[0, start:end + 1]) - mean[0])
    return Series(tuple(float(v) for v in s), peak, p_value(reference, horizon, peak, k) if peak > 0 else 1.0,
                  start if peak > 0 else None, end, shift, float(scale[0]), k)


def first_alarm(series: Series, reference: int, h: float) -> int | None:
    """Index (into the whole series) of the first monitored run where S reached ``h``."""
    for i, s in enumerate(series.statistic):
        if s >= h:
            return reference + i
    return None


def mde_after(spread: float, reference: int, runs: int, horizon: int, alpha: float, power: float = 0.9,
              target: float = TARGET) -> float | None:
    """The slowdown (a negative fraction) caught with ``power`` probability within ``runs`` runs; None: unreachable.

    ``spread`` is the case's between-run sd (log), ``alpha`` the level its series is judged at.
    """
    if not spread > 0:
        return 0.0
    k = allowance(spread * math.sqrt(1.0 + 1.0 / reference), target)
    delta = _shift_needed(reference, runs, horizon, round(alpha, 6), k, power)
    return None if delta is None else math.exp(-delta * spread) - 1.0


@lru_cache(maxsize=256)
def _shift_needed(reference: int, runs: int, horizon: int, alpha: float, k: float, power: float) -> float | None:
    """The shift, in true sd units, that the CUSUM catches within ``runs`` runs with ``power`` probability.

    Simulated with the very procedure (a reference of R normal runs, standardised, clipped, k, h) on common
    random numbers, so the detection rate grows with the shift and a bisection finds it.
    """
    rng = np.random.default_rng(SEED + 7 * reference + runs)
    base = rng.standard_normal((20_000, reference + runs))
    h = threshold(reference, horizon, alpha, k)

    def rate(delta: float) -> float:
        shifted = base.copy()
        shifted[:, reference:] -= delta
        z, _, _ = standardized(shifted, reference)
        return float(np.mean(cusum(z, True, k).max(axis=1) >= h))

    low, high = 0.0, 3.0 * CLIP
    if rate(high) < power:
        return None
    for _ in range(16):
        middle = (low + high) / 2
        low, high = (low, middle) if rate(middle) >= power else (middle, high)
    return high
