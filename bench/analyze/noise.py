"""When are two cases' numbers the same within their rounds' noise? Read from the stored per-round samples.

The rule: two cases are **tied** when the interquartile ranges of their per-round values overlap
(``max(q1_a, q1_b) <= min(q3_a, q3_b)``). Each case's IQR is recomputed here from its raw rounds
(``samples_per_round / round_s`` for throughput, ``steady_round_s`` for a steady predict call; numpy's
linear quantiles, as ``bench.analyze.stats``), falling back to the stored ``q1``/``q3`` for a file without
rounds. Overlapping IQRs is the weaker of the two usual rules (the other: a difference below the larger
CV), chosen because it needs no distribution and reads straight off the error bars the charts draw: when
half of one case's rounds fall among the middle half of the other's, neither "wins". It is a within-run
judgement: rounds share the machine's state of the moment, so a difference outside the IQRs is still no
proof that another run would order the two the same way.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

RULE = "their rounds' interquartile ranges overlap"


def _numbers(values: Any) -> np.ndarray:
    if not isinstance(values, (list, tuple, np.ndarray)):
        return np.array([], dtype=float)
    array = pd.to_numeric(pd.Series(list(values), dtype=object), errors="coerce").to_numpy(float)
    return array[np.isfinite(array)]


def round_values(row: Mapping[str, Any], metric: str = "samples_per_second") -> np.ndarray:
    """The per-round values behind ``metric``'s median: samples/s per round, or seconds per steady call."""
    if metric == "samples_per_second":
        rounds = _numbers(row.get("round_s"))
        samples = pd.to_numeric(pd.Series([row.get("samples_per_round")]), errors="coerce").iloc[0]
        if len(rounds) and pd.notna(samples) and (rounds > 0).all():
            return float(samples) / rounds
        return np.array([], dtype=float)
    if metric == "steady_s":
        return _numbers(row.get("steady_round_s"))
    return np.array([], dtype=float)


def iqr(row: Mapping[str, Any], metric: str = "samples_per_second") -> tuple[float, float] | None:
    """(q1, q3) of the case's rounds; the stored quartiles when the rounds are not in the file."""
    values = round_values(row, metric)
    if len(values):
        q1, q3 = np.percentile(values, [25, 75])
        return float(q1), float(q3)
    q1 = pd.to_numeric(pd.Series([row.get(f"{metric}.q1")]), errors="coerce").iloc[0]
    q3 = pd.to_numeric(pd.Series([row.get(f"{metric}.q3")]), errors="coerce").iloc[0]
    return (float(q1), float(q3)) if pd.notna(q1) and pd.notna(q3) else None


def tied(a: Mapping[str, Any], b: Mapping[str, Any], metric: str = "samples_per_second") -> bool | None:
    """True when ``a`` and ``b`` are within their rounds' noise (IQRs overlap); None when either has none."""
    first, second = iqr(a, metric), iqr(b, metric)
    if first is None or second is None:
        return None
    return max(first[0], second[0]) <= min(first[1], second[1])
