"""Regression checks: small objects whose ``fails(baseline, current)`` returns a reason or None.

The habit is pytest-benchmark's ``PercentageRegressionCheck.fails``; what we add is that a slowdown
must be both **large enough to matter** and **unlikely to be noise** before the build goes red:

* :class:`MinimumEffectCheck`: the estimated change is at least the threshold (default 5 %) in the bad
  direction;
* :class:`SignificanceCheck`: a one-sided test over the per-round samples says the current run is worse
  at level ``alpha`` (default 0.05);
* :class:`RegressionCheck` fails only when both fail; with the direction flipped it finds improvements.

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
within 1-5 %, so the round-level test, confident about the wrong noise, flagged them all. The checks
below take **one value per run** (the trimmed geometric mean of its rounds, :func:`run_value`) and judge
it against the spread of other runs, as pyperf does with values from many worker processes and Bencher
and Chromium's perf bots do with a window of earlier results:

* :class:`HistoryCheck`: a new run against ``k`` earlier runs of the same case (the baseline history).
  On log values ``h``, mean ``m``, standard deviation ``s``, the new value ``c`` is a regression when it
  lies outside the one-sided ``1 - alpha`` *prediction interval* of one more run,
  ``m -/+ t(1 - alpha, k - 1) * s * sqrt(1 + 1/k)`` (Student's t: with few runs the interval widens by
  itself instead of trusting a lucky small ``s``; Bencher's ``t_test`` threshold works the same way),
  and the change ``exp(c - m) - 1`` also reaches the threshold. ``p_worse`` is the predictive p-value
  ``P(T(k-1) < (c - m) / (s * sqrt(1 + 1/k)))``. At least ``MIN_HISTORY_RUNS`` runs are required.
* :class:`PairedCheck`: an interleaved A/B session, ``n`` runs per side taken in pairs one right after
  the other; one-sided paired t-test on the per-pair log ratios (``scipy.stats.ttest_rel``), and the
  mean ratio reaching the threshold. Pairing cancels whatever drifts slower than a pair.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
from scipy import stats

from bench.analyze.values import TRIM
from bench.analyze.values import logs as _logs

DEFAULT_THRESHOLD = 0.05
DEFAULT_ALPHA = 0.05
MIN_ROUNDS = 2
# Between-run tests. Five runs give four degrees of freedom: t(0.99, 4) = 3.75, so a history must be
# tight to flag anything; fewer would make the interval mostly guesswork. alpha is per case: a sweep of
# K cases false-alarms in about K x alpha of runs when the runs really vary as the history says.
MIN_HISTORY_RUNS = 5
DEFAULT_HISTORY_WINDOW = 10
DEFAULT_HISTORY_ALPHA = 0.01
MIN_PAIRS = 2

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


def trimmed_ratio(baseline: Sequence[float], current: Sequence[float]) -> float:
    """current / baseline as the ratio of 20 %-trimmed geometric means."""
    diff = stats.trim_mean(_logs(current), TRIM) - stats.trim_mean(_logs(baseline), TRIM)
    return float(math.exp(diff))


def p_worse(baseline: Sequence[float], current: Sequence[float], bigger_is_better: bool) -> float | None:
    """One-sided Yuen-Welch p-value for "current is worse than baseline"; None when it cannot be tested."""
    if len(baseline) < MIN_ROUNDS or len(current) < MIN_ROUNDS:
        return None
    alternative = "less" if bigger_is_better else "greater"
    # With equal round counts the pooled test is robust to unequal spread (and has more degrees of
    # freedom, so more power at n = 5); with unequal counts only Welch's correction is safe.
    equal_var = len(baseline) == len(current)
    with warnings.catch_warnings():
        # Identical rounds have no spread: scipy warns and returns nan, which we report as "no p-value".
        warnings.simplefilter("ignore", RuntimeWarning)
        result = stats.ttest_ind(_logs(current), _logs(baseline), equal_var=equal_var, trim=TRIM,
                                 alternative=alternative)
    p = float(result.pvalue)
    return p if math.isfinite(p) else None


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
    """Fails when the one-sided Yuen-Welch test says "worse" at level ``alpha``."""

    alpha: float = DEFAULT_ALPHA
    bigger_is_better: bool = True

    def fails(self, baseline: Sequence[float], current: Sequence[float]) -> str | None:
        p = p_worse(baseline, current, self.bigger_is_better)
        if p is not None and p < self.alpha:
            return f"p = {p:.3g} < {self.alpha:g}"
        return None


@dataclass(frozen=True)
class RegressionCheck:
    """Fails when the change is both at least ``threshold`` and significant at ``alpha``."""

    threshold: float = DEFAULT_THRESHOLD
    alpha: float = DEFAULT_ALPHA
    bigger_is_better: bool = True

    def checks(self) -> tuple[MinimumEffectCheck, SignificanceCheck]:
        return (MinimumEffectCheck(self.threshold, self.bigger_is_better),
                SignificanceCheck(self.alpha, self.bigger_is_better))

    def fails(self, baseline: Sequence[float], current: Sequence[float]) -> str | None:
        reasons = [check.fails(baseline, current) for check in self.checks()]
        if all(reasons):
            return "; ".join(r for r in reasons if r)
        return None

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


# --------------------------------------------------------------------------- between runs


@dataclass(frozen=True)
class HistoryResult:
    """A run's value against the prediction interval of its history (all ratios are current / history)."""

    runs: int
    ratio: float  # exp(c - m): current / geometric mean of the history
    sd_log: float  # between-run standard deviation of the history's log values
    bound_ratio: float  # where the one-sided interval ends in the bad direction, as a ratio to m
    p_worse: float | None
    p_better: float | None

    def as_dict(self) -> dict[str, Any]:
        return {"runs": self.runs, "sd_log": self.sd_log, "bound_ratio": self.bound_ratio}


def history_test(history: Sequence[float], current: float, bigger_is_better: bool,
                 alpha: float = DEFAULT_HISTORY_ALPHA) -> HistoryResult:
    """Where ``current`` (one run's value) falls in the spread of ``history`` (one value per earlier run)."""
    logs = _logs(history)
    c = float(_logs([current])[0])
    k = len(logs)
    if k < 2:
        raise ValueError("a history needs at least two runs")
    m, s = float(np.mean(logs)), float(np.std(logs, ddof=1))
    scale = s * math.sqrt(1.0 + 1.0 / k)
    t = float(stats.t.ppf(1.0 - alpha, k - 1))
    bound = m - t * scale if bigger_is_better else m + t * scale
    if scale > 0:
        z = (c - m) / scale
        p_low, p_high = float(stats.t.cdf(z, k - 1)), float(stats.t.sf(z, k - 1))
    else:  # identical history values: no spread to judge against
        p_low = p_high = None  # type: ignore[assignment]
    p_worse, p_better = (p_low, p_high) if bigger_is_better else (p_high, p_low)
    return HistoryResult(k, math.exp(c - m), s, math.exp(bound - m), p_worse, p_better)


@dataclass(frozen=True)
class HistoryCheck:
    """Fails when one run's value lies beyond its history's prediction interval and the change reaches
    ``threshold``."""

    threshold: float = DEFAULT_THRESHOLD
    alpha: float = DEFAULT_HISTORY_ALPHA
    bigger_is_better: bool = True

    def fails(self, history: Sequence[float], current: float) -> str | None:
        result = history_test(history, current, self.bigger_is_better, self.alpha)
        change = result.ratio - 1.0
        worse_by = -change if self.bigger_is_better else change
        if worse_by < self.threshold or result.p_worse is None or result.p_worse >= self.alpha:
            return None
        return (f"{change:+.1%} vs the mean of {result.runs} runs (beyond both the threshold "
                f"{self.threshold:.0%} and the {1 - self.alpha:.0%} prediction bound "
                f"{result.bound_ratio - 1:+.1%}; between-run sd {result.sd_log:.1%})")

    def improvement(self) -> HistoryCheck:
        return replace(self, bigger_is_better=not self.bigger_is_better)


def paired_ratio(a: Sequence[float], b: Sequence[float]) -> float:
    """b / a as the geometric mean of the per-pair ratios."""
    return float(math.exp(np.mean(_logs(b) - _logs(a))))


def p_paired_worse(a: Sequence[float], b: Sequence[float], bigger_is_better: bool) -> float | None:
    """One-sided paired t-test on log values: is side b worse than side a? None when untestable."""
    if len(a) != len(b) or len(a) < MIN_PAIRS:
        return None
    alternative = "less" if bigger_is_better else "greater"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        result = stats.ttest_rel(_logs(b), _logs(a), alternative=alternative)
    p = float(result.pvalue)
    return p if math.isfinite(p) else None


@dataclass(frozen=True)
class PairedCheck:
    """Fails when side b is worse than side a by at least ``threshold`` and the paired test agrees."""

    threshold: float = DEFAULT_THRESHOLD
    alpha: float = DEFAULT_ALPHA
    bigger_is_better: bool = True

    def fails(self, a: Sequence[float], b: Sequence[float]) -> str | None:
        change = paired_ratio(a, b) - 1.0
        worse_by = -change if self.bigger_is_better else change
        p = p_paired_worse(a, b, self.bigger_is_better)
        if worse_by >= self.threshold and p is not None and p < self.alpha:
            return f"{change:+.1%} over {len(a)} interleaved pairs (threshold {self.threshold:.0%}); p = {p:.3g} < {self.alpha:g}"
        return None

    def improvement(self) -> PairedCheck:
        return replace(self, bigger_is_better=not self.bigger_is_better)
