"""The one judge: every comparison method turns a case into an :class:`Estimate`, and :class:`GateCheck` decides.

pytest-benchmark's habit (``RegressionCheck.fails`` returns a reason or None), with what a shared runner
needs on top:

* **One rule.** A case regressed when its change reaches the threshold in the bad direction *and* the
  method's one-sided p-value is below the level this case was given. Rounds (Yuen's test), processes of
  two runs (pooled t), a run against a history (Student-t prediction interval), interleaved pairs (paired
  t) and the change-point mode (a calibrated CUSUM) differ only in how they estimate the change and its
  uncertainty, i.e. in the :class:`Estimate` they build.
* **A false-alarm budget per suite run, not per case.** Judging ~130 cases at alpha = 0.01 each false-alarms
  in most runs of a noisy runner. :func:`case_levels` splits the budget (default 5 % per suite run) over the
  cases judged with Holm's step-down, and never gives one case more than its cap (default 1 %), so a small
  suite still holds 1 % per case and a large one 5 % per run.
* **Say what it cannot see.** :meth:`GateCheck.bound` is the change at which the case starts failing (the
  50 %-detection point); :meth:`GateCheck.mde` the slowdown it catches with 90 % probability (its minimum
  detectable effect). A threshold below the MDE is labelled "blind below X %", so a green row on a noisy
  runner is never read as "no change".

The MDE of a t-based test with standard error ``se`` and ``df`` degrees of freedom is
``(t(1 - level, df) + t(power, df)) * se`` on the log scale (the usual power approximation: the estimate is
centred on the true change with that spread; the exact noncentral-t power differs by well under a point at
these sizes). Everything works on logs of throughput (or seconds), so effects are ratios.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
from scipy import stats

DEFAULT_THRESHOLD = 0.05
POWER = 0.9
# The false-alarm budget: per suite run (every case judged together), and the most one case may take.
FAMILY_ALPHA = 0.05
CASE_ALPHA_CAP = 0.01


@dataclass(frozen=True)
class Estimate:
    """What one method measured for one case.

    ``log_change`` is log(current / baseline) of the judged metric; ``se`` the standard error the method's
    test uses for it (for a prediction from a history it includes the new run's own spread), ``df`` its
    t reference's degrees of freedom (None: normal). A method with its own calibrated p-values (the CUSUM)
    passes them in ``p_low`` / ``p_high`` (the probability of a change at least this far down / up under
    no change). ``se`` None means the spread is unknown: the case cannot be judged.
    """

    log_change: float
    se: float | None
    df: float | None
    evidence: str  # "5 rounds each", "10 history runs", "8 interleaved pairs", ...
    p_low: float | None = None
    p_high: float | None = None

    @property
    def ratio(self) -> float:
        return math.exp(self.log_change)

    def _t(self, q: float) -> float:
        return float(stats.t.ppf(q, self.df) if self.df else stats.norm.ppf(q))

    def p(self, down: bool) -> float | None:
        """One-sided p-value for a change downwards (``down``) or upwards; None when it cannot be tested."""
        given = self.p_low if down else self.p_high
        if given is not None:
            return given
        if self.se is None or not self.se > 0 or not math.isfinite(self.log_change):
            return None
        z = self.log_change / self.se
        cdf = stats.t.cdf if self.df else stats.norm.cdf
        args = (self.df,) if self.df else ()
        return float(cdf(z, *args)) if down else float(cdf(-z, *args))


@dataclass(frozen=True)
class GateCheck:
    """The one regression check: ``fails(estimate)`` returns the reason of a regression, or None.

    ``level`` is the one-sided significance level this case gets (after the family split, see
    :func:`case_levels`); ``improvement()`` is the same check in the other direction.
    """

    threshold: float = DEFAULT_THRESHOLD
    level: float = CASE_ALPHA_CAP
    bigger_is_better: bool = True
    power: float = POWER

    def _down(self) -> bool:
        return self.bigger_is_better  # worse = down for throughput, up for seconds

    def p_worse(self, estimate: Estimate) -> float | None:
        return estimate.p(self._down())

    def worse_by(self, estimate: Estimate) -> float:
        """How much worse, as a positive fraction of the baseline (negative: better)."""
        change = estimate.ratio - 1.0
        return -change if self.bigger_is_better else change

    def fails(self, estimate: Estimate) -> str | None:
        p = self.p_worse(estimate)
        if p is None or p >= self.level or self.worse_by(estimate) < self.threshold:
            return None
        return (f"{estimate.ratio - 1:+.1%} over {estimate.evidence} (beyond the threshold {self.threshold:.0%}; "
                f"p = {p:.2g} < {self.level:.2g})")

    def improvement(self) -> GateCheck:
        return replace(self, bigger_is_better=not self.bigger_is_better)

    def _bad(self, log_distance: float) -> float:
        """A distance on the log scale, as the fractional change in the bad direction (-0.12 for throughput)."""
        return math.exp(-log_distance) - 1.0 if self.bigger_is_better else math.exp(log_distance) - 1.0

    def bound(self, estimate: Estimate) -> float | None:
        """The change at which this case starts failing (a fraction in the bad direction); None: unknown.

        It also has to reach the threshold, so the bound is never closer than that.
        """
        if estimate.se is None or estimate.p_low is not None or estimate.p_high is not None:
            return None
        critical = estimate._t(1.0 - self.level) * estimate.se
        at_threshold = -math.log1p(-self.threshold) if self.bigger_is_better else math.log1p(self.threshold)
        return self._bad(max(critical, at_threshold))

    def mde(self, estimate: Estimate) -> float | None:
        """The smallest change in the bad direction this check catches with ``power`` probability."""
        if estimate.se is None or estimate.p_low is not None or estimate.p_high is not None:
            return None
        return mde(estimate.se, estimate.df, self.level, self.power, self.bigger_is_better)


def mde(se: float, df: float | None, level: float, power: float = POWER, bigger_is_better: bool = True) -> float:
    """``(t(1 - level) + t(power)) * se`` as a fractional change in the bad direction (-0.24: 24 % slower)."""
    t = (lambda q: float(stats.t.ppf(q, df))) if df else (lambda q: float(stats.norm.ppf(q)))
    distance = (t(1.0 - level) + t(power)) * se
    return math.exp(-distance) - 1.0 if bigger_is_better else math.exp(distance) - 1.0


def family_alpha(cases: int, alpha: float = FAMILY_ALPHA, cap: float = CASE_ALPHA_CAP) -> float:
    """The budget actually split over ``cases``: at most ``alpha`` per run and at most ``cap`` per case."""
    return min(alpha, cap * max(1, cases))


def case_levels(p_values: Sequence[float | None], alpha: float = FAMILY_ALPHA,
                cap: float = CASE_ALPHA_CAP) -> list[float]:
    """Holm's step-down over the cases judged: the level each case's p-value is compared with.

    The smallest p gets ``budget / K``, the next ``budget / (K - 1)``, ... until one fails its level; every
    case from there on keeps that failing level (it cannot pass it, its p being at least as large), which
    is exactly Holm's procedure written as per-case levels. Cases without a p-value (untestable) do not
    count in K.
    """
    tested = [(p, i) for i, p in enumerate(p_values) if p is not None]
    k = len(tested)
    budget = family_alpha(k, alpha, cap)
    levels = [budget / max(1, k)] * len(p_values)
    stopped: float | None = None
    for rank, (p, i) in enumerate(sorted(tested)):
        # Capped, too: cases of one run share its moment (its control, its load), so once one is flagged the
        # next often is as well, and Holm's growing levels would let a small suite's cases each take 2-4 %.
        level = min(cap, budget / (k - rank))
        if stopped is None and p >= level:
            stopped = level
        levels[i] = stopped if stopped is not None else level
    return levels


def bonferroni_level(cases: int, alpha: float = FAMILY_ALPHA, cap: float = CASE_ALPHA_CAP) -> float:
    """The level of the case Holm treats most strictly: what the MDE is quoted at (it holds for every case)."""
    return family_alpha(cases, alpha, cap) / max(1, cases)


def pairs_needed(pair_sd: float, effect: float = 0.10, level: float = CASE_ALPHA_CAP, power: float = POWER,
                 most: int = 1000) -> int | None:
    """Interleaved pairs a paired t-test needs to catch a slowdown of ``effect`` with ``power`` probability.

    ``pair_sd`` is the standard deviation of the pairs' log ratios; None when even ``most`` pairs would not do.
    """
    if not pair_sd > 0:
        return 2
    target = -math.log1p(-effect)
    for n in range(2, most + 1):
        if (stats.t.ppf(1 - level, n - 1) + stats.t.ppf(power, n - 1)) * pair_sd / math.sqrt(n) <= target:
            return n
    return None


def robust_logs(values: Sequence[float], clip_mads: float = 4.0) -> np.ndarray:
    """Log values with gross outliers pulled in to ``clip_mads`` robust standard deviations of the median.

    One run caught by another job's whole-run burst would otherwise dominate a ten-run history's standard
    deviation (and blind the gate) or its mean. Winsorising at 4 robust sd (1.4826 x MAD) bounds what one such
    run can do and leaves normal data nearly alone: with ten normal runs the prediction test at 1 % then
    false-alarms 1.09 % of the time (1.28 % when clipping at 3 robust sd, whose ten-run MAD is often small).
    """
    logs = np.log(np.asarray(values, dtype=float))
    if logs.size < 3:
        return logs
    median = float(np.median(logs))
    robust_sd = 1.4826 * float(np.median(np.abs(logs - median)))
    if not robust_sd > 0:
        return logs
    return np.clip(logs, median - clip_mads * robust_sd, median + clip_mads * robust_sd)
