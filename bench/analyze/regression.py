"""Metrics, and the estimates each comparison method gives the one judge (:mod:`bench.analyze.judge`).

A slowdown must be both **large enough to matter** and **unlikely to be noise** before the build goes red;
:class:`bench.analyze.judge.GateCheck` decides that for every method. What differs between methods is the
evidence: which values are compared and what their spread is. This module builds that evidence as an
:class:`~bench.analyze.judge.Estimate`:

* :func:`rounds_estimate`: the per-round samples of two runs (the round-level test, a quick look on a quiet
  dedicated machine; :class:`RegressionCheck` is that question asked of the judge);
* :func:`process_estimate`, :func:`history_estimate`, :func:`paired_estimate`: between processes, runs and
  interleaved pairs (below).

Method, and why
---------------
Each case has few rounds (``rounds = 5`` by default), the noise is not normal (timings are skewed to the
slow side), and a shared machine adds *hiccups*: single rounds 10-50 % slower because something else ran.
So the comparison works on the logarithm of the samples (a ratio becomes a difference and the skew
mostly goes away) and uses 20 %-trimmed statistics, which drop the best and worst round of five:

* effect: ``ratio = exp(trimmed_mean(log current) - trimmed_mean(log baseline))``, the ratio of the
  trimmed geometric means (current / baseline; below 1 is slower for throughput, faster for seconds);
* significance: Yuen's trimmed-mean t-test, one-sided, on the same log samples
  (``scipy.stats.ttest_ind(..., trim=0.2, alternative=...)``); pooled winsorized variance when both sides
  have the same number of rounds, Welch's correction otherwise.

Why not a rank test: a one-sided Mann-Whitney U test with 5 rounds each has a smallest achievable
p-value of 1/C(10, 5) = 1/252 = 0.004, so it can reach alpha = 0.05, but a single hiccup in the
*baseline* (one round below every current round) lifts p to at least 19/252 = 0.075: one bad round in
ten hides any slowdown. Trimming drops that round instead. Why not a bootstrap: with 5 rounds the
resampled medians take only 5 values, and the interval is too coarse to mean much.

Measured through this code with ``tests/factories.py`` noise (log-normal, 3 % CV, 5 rounds a side;
4000 comparisons per line), share of comparisons flagged as a regression:

=============================  =========  ===================  ==========================
noise                          A/A        10 % slower          Mann-Whitney U, 10 % slower
=============================  =========  ===================  ==========================
no hiccups                     0.45 %     99.1 %               99.6 %
5 % of rounds 10-50 % slower   0.70 %     94.7 %               82 %
one 30 % hiccup in baseline    0.08 %     93.5 %               0.1 %
one 30 % hiccup in current     2.4 %      99.1 %               99.9 %
=============================  =========  ===================  ==========================

(Mann-Whitney U with the same 5 % effect rule, simulated on the same noise.) The rates are per case: a
sweep of K cases on such a noisy machine false-alarms in roughly K x 0.5-1 % of runs, so on noisy hosts
use more rounds (10 rounds: under 0.05 % per case) or a larger ``--threshold``. On a quiet GPU (round CV
under 1 %) a 5 % change is five standard deviations of a round and false alarms all but vanish.

A test needs at least two rounds on each side; with fewer the check says nothing (no p-value).

Between runs
------------
The table above is about noise *within* a run. Rounds of one run share the machine's state; between two
runs on a shared CI box that state moved throughput by 6-45 % on half the cases while the rounds stayed
within 1-5 %, so the round-level test, confident about the wrong noise, flagged them all. The other
estimates therefore take **one value per process or per run** (:mod:`bench.analyze.values`) and the
spread between them:

* :func:`process_estimate`: two runs, each case measured in several fresh processes: pooled two-sample t
  over the process values (the spread between processes includes the thread-pool draw of each process and
  the machine's drift over the run; it does not include what differs between two runs as a whole).
* :func:`history_estimate`: a new run against ``k`` earlier runs (the baseline history). On log values
  (outliers winsorised, :func:`bench.analyze.judge.robust_logs`) with mean ``m`` and sd ``s``, the new value
  ``c`` is judged against the Student-t *prediction interval* of one more run: se = ``s * sqrt(1 + 1/k)``,
  ``k - 1`` degrees of freedom (a short history widens the interval by itself; Bencher's ``t_test``
  threshold works the same way). At least ``MIN_HISTORY_RUNS`` runs are required.
* :func:`paired_estimate`: an interleaved A/B session, one value per side per pair; paired t on the
  per-pair log ratios. Pairing cancels whatever drifts slower than a pair.

Every estimate is judged by the one check, :class:`bench.analyze.judge.GateCheck`.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from bench.analyze.judge import (
    CASE_ALPHA_CAP,
    DEFAULT_THRESHOLD,
    FAMILY_ALPHA,
    Estimate,
    GateCheck,
    robust_logs,
)
from bench.analyze.values import TRIM
from bench.analyze.values import logs as _logs

# The false-alarm budget (bench.analyze.judge): 5 % per suite run, split over the cases with Holm's
# step-down, at most 1 % per case for the between-run methods. The round-level test keeps its old 5 % per
# case (a quick look on a quiet machine; its noise model is wrong on a shared one anyway).
DEFAULT_ALPHA = FAMILY_ALPHA
ROUNDS_CASE_ALPHA = 0.05
MIN_ROUNDS = 2
# Five runs give four degrees of freedom: t(0.99, 4) = 3.75, so a history must be tight to flag anything;
# fewer would make the interval mostly guesswork.
MIN_HISTORY_RUNS = 5
DEFAULT_HISTORY_WINDOW = 10
MIN_PAIRS = 2
MIN_PROCESSES = 2  # per side, for the two-run test over process values

# cpu_predict statuses that mean "the method did not do its job" (skipped means it was not run).
NOT_WORKING = ("failed", "wrong", "not_on_cpu")


@dataclass(frozen=True)
class Metric:
    """A measured quantity and which way is good."""

    name: str
    unit: str
    bigger_is_better: bool
    per_round: bool = True  # False: one value per case, reported but never tested


METRICS: dict[str, Metric] = {
    "samples_per_second": Metric("samples_per_second", "samples/s", True),
    "steady_round_s": Metric("steady_round_s", "s", False),
    "total_s": Metric("total_s", "s", False, per_round=False),
    "compile_s": Metric("compile_s", "s", False, per_round=False),
    # converge: train seconds to the target test accuracy, one sample per converged seed.
    "seconds_to_target": Metric("seconds_to_target", "s", False),
}


# --------------------------------------------------------------------------- estimates, one per method


def _trimmed(values: np.ndarray) -> tuple[float, float, int, int]:
    """20 %-trimmed mean, winsorised variance, n and the number of values kept (Yuen 1974)."""
    x = np.sort(values)
    n = len(x)
    g = int(math.floor(TRIM * n))
    kept = n - 2 * g
    winsorised = x.copy()
    if g:
        winsorised[:g], winsorised[n - g:] = x[g], x[n - g - 1]
    return float(np.mean(x[g:n - g])), float(np.var(winsorised, ddof=1)), n, kept


def rounds_estimate(baseline: Sequence[float], current: Sequence[float]) -> Estimate:
    """Rounds of two runs: difference of 20 %-trimmed log means, Yuen's standard error.

    Pooled winsorised variance when both sides have the same number of rounds (more degrees of freedom,
    so more power at n = 5), Welch's correction otherwise; exactly ``scipy.stats.ttest_ind(trim=0.2)``.
    """
    m1, v1, n1, h1 = _trimmed(_logs(baseline))
    m2, v2, n2, h2 = _trimmed(_logs(current))
    evidence = f"{n2} vs {n1} rounds"
    if n1 < MIN_ROUNDS or n2 < MIN_ROUNDS or h1 < 2 or h2 < 2:
        return Estimate(m2 - m1, None, None, evidence)
    if n1 == n2:
        pooled = ((n1 - 1) * v1 + (n2 - 1) * v2) / (h1 + h2 - 2)
        se, df = math.sqrt(pooled * (1 / h1 + 1 / h2)), float(h1 + h2 - 2)
    else:
        d1, d2 = (n1 - 1) * v1 / (h1 * (h1 - 1)), (n2 - 1) * v2 / (h2 * (h2 - 1))
        se = math.sqrt(d1 + d2)
        df = (d1 + d2) ** 2 / (d1 ** 2 / (h1 - 1) + d2 ** 2 / (h2 - 1)) if d1 + d2 > 0 else float(h1 + h2 - 2)
    return Estimate(m2 - m1, se if se > 0 else None, df, evidence)


def process_estimate(baseline: Sequence[float], current: Sequence[float]) -> Estimate:
    """Two runs, one value per process on each side: pooled two-sample t on the log process values."""
    a, b = _logs(baseline), _logs(current)
    evidence = f"{len(b)} vs {len(a)} processes"
    change = float(b.mean() - a.mean())
    if len(a) < MIN_PROCESSES or len(b) < MIN_PROCESSES:
        return Estimate(change, None, None, evidence)
    df = len(a) + len(b) - 2
    pooled = (float(np.sum((a - a.mean()) ** 2)) + float(np.sum((b - b.mean()) ** 2))) / df
    se = math.sqrt(pooled * (1 / len(a) + 1 / len(b)))
    return Estimate(change, se if se > 0 else None, float(df), evidence)


def history_estimate(history: Sequence[float], current: float) -> Estimate:
    """One run against ``k`` earlier runs: the Student-t prediction of one more run (see the module docstring)."""
    logs = robust_logs(history)
    k = len(logs)
    if k < 2:
        raise ValueError("a history needs at least two runs")
    m, s = float(np.mean(logs)), float(np.std(logs, ddof=1))
    se = s * math.sqrt(1.0 + 1.0 / k)
    return Estimate(float(_logs([current])[0]) - m, se if se > 0 else None, float(k - 1), f"{k} history runs")


def history_spread(history: Sequence[float]) -> float:
    """The between-run standard deviation of a history's log values (outliers winsorised)."""
    return float(np.std(robust_logs(history), ddof=1))


def paired_estimate(a: Sequence[float], b: Sequence[float]) -> Estimate:
    """Interleaved pairs (side a, side b): mean of the per-pair log ratios b / a, paired t."""
    if len(a) != len(b):
        raise ValueError("both sides need one value per pair")
    d = _logs(b) - _logs(a)
    n = len(d)
    evidence = f"{n} interleaved pairs"
    if n < MIN_PAIRS:
        return Estimate(float(d.mean()) if n else 0.0, None, None, evidence)
    se = float(np.std(d, ddof=1)) / math.sqrt(n)
    return Estimate(float(d.mean()), se if se > 0 else None, float(n - 1), evidence)


# --------------------------------------------------------------------------- the round-level checks


def trimmed_ratio(baseline: Sequence[float], current: Sequence[float]) -> float:
    """current / baseline as the ratio of 20 %-trimmed geometric means."""
    return rounds_estimate(baseline, current).ratio


def p_worse(baseline: Sequence[float], current: Sequence[float], bigger_is_better: bool) -> float | None:
    """One-sided Yuen p-value for "current is worse than baseline"; None when it cannot be tested."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return rounds_estimate(baseline, current).p(down=bigger_is_better)


@dataclass(frozen=True)
class MinimumEffectCheck:
    """Fails when the metric moved at least ``threshold`` in the bad direction."""

    threshold: float = DEFAULT_THRESHOLD
    bigger_is_better: bool = True

    def fails(self, baseline: Sequence[float], current: Sequence[float]) -> str | None:
        change = trimmed_ratio(baseline, current) - 1.0
        worse_by = -change if self.bigger_is_better else change
        if worse_by >= self.threshold:
            return f"{change:+.1%} (threshold {self.threshold:.0%})"
        return None


@dataclass(frozen=True)
class SignificanceCheck:
    """Fails when the one-sided Yuen test says "worse" at level ``alpha``."""

    alpha: float = ROUNDS_CASE_ALPHA
    bigger_is_better: bool = True

    def fails(self, baseline: Sequence[float], current: Sequence[float]) -> str | None:
        p = p_worse(baseline, current, self.bigger_is_better)
        if p is not None and p < self.alpha:
            return f"p = {p:.3g} < {self.alpha:g}"
        return None


@dataclass(frozen=True)
class RegressionCheck:
    """The round-level question asked of the one judge: the rounds' estimate, :class:`GateCheck` decides."""

    threshold: float = DEFAULT_THRESHOLD
    alpha: float = ROUNDS_CASE_ALPHA
    bigger_is_better: bool = True

    def gate(self) -> GateCheck:
        return GateCheck(self.threshold, self.alpha, self.bigger_is_better)

    def fails(self, baseline: Sequence[float], current: Sequence[float]) -> str | None:
        return self.gate().fails(rounds_estimate(baseline, current))

    def improvement(self) -> RegressionCheck:
        """The same check in the other direction: fails when the metric got significantly better."""
        return replace(self, bigger_is_better=not self.bigger_is_better)


@dataclass(frozen=True)
class StatusCheck:
    """cpu_predict: fails when a method that worked (status ok) no longer does.

    The status is the result of that suite (did predicting on the CPU work, give the same predictions,
    run on the CPU at all), so a method going from ok to failed, wrong or not_on_cpu is a regression.
    """

    def fails(self, baseline: Mapping[str, Any], current: Mapping[str, Any]) -> str | None:
        if baseline.get("status") == "ok" and current.get("status") in NOT_WORKING:
            method = (current.get("params") or {}).get("method", "method")
            why = f": {current['reason']}" if current.get("reason") else ""
            return f"{method} stopped working: ok -> {current['status']}{why}"
        return None


__all__ = ["CASE_ALPHA_CAP", "DEFAULT_ALPHA", "DEFAULT_THRESHOLD", "METRICS", "MIN_HISTORY_RUNS", "NOT_WORKING",
           "Metric", "RegressionCheck", "StatusCheck", "history_estimate", "paired_estimate", "process_estimate",
           "rounds_estimate"]
