"""One number format for every sentence and table: samples/s, ratios with their intervals, shares, seconds.

The same rules as ``bench.analyze.bottleneck.rate`` (which wrote the first sentences): three significant
digits with an M or k above 10 000 — "3.38 M", "53.1 k", "9,500" — so a table cell and a sentence
quoting it read the same.
"""

from __future__ import annotations

from typing import Any


def _num(value: Any) -> float | None:
    try:
        x = float(value)
    except (TypeError, ValueError):
        return None
    return x if x == x and abs(x) != float("inf") else None


def rate_value(value: Any) -> str:
    """samples/s without the unit: "3.38 M", "53.1 k", "9,500"; "—" for nothing."""
    x = _num(value)
    if x is None:
        return "—"
    if abs(x) >= 1e6:
        return f"{x / 1e6:.2f} M"
    if abs(x) >= 1e4:
        return f"{x / 1e3:.1f} k"
    return f"{x:,.0f}"


def rate(value: Any) -> str:
    return f"{rate_value(value)} samples/s"


def rate_interval(value: Any, low: Any, high: Any) -> str:
    """"3.38 M samples/s [3.31 M, 3.45 M]" or, without an interval, the value alone."""
    if _num(low) is None or _num(high) is None:
        return rate(value)
    return f"{rate(value)} [{rate_value(low)}, {rate_value(high)}]"


def times(value: Any) -> str:
    x = _num(value)
    return "—" if x is None else f"{x:.3g}×" if x < 10 else f"{x:,.0f}×"


def ratio_interval(row: dict[str, Any] | Any, key: str = "ratio", low: str = "ci_low", high: str = "ci_high") -> str:
    """"1.31× [1.22, 1.40]", or "1.31× (one process: no interval)"."""
    value = row.get(key)
    if _num(value) is None:
        return "n/a"
    if _num(row.get(low)) is None or _num(row.get(high)) is None:
        return f"{value:.2f}× (one process: no interval)"
    return f"{value:.2f}× [{row[low]:.2f}, {row[high]:.2f}]"


def share(fraction: Any) -> str:
    """A share as a percentage, two significant digits below 10 %: 0.173 -> "17 %", 0.0082 -> "0.82 %"."""
    x = _num(fraction)
    if x is None:
        return "—"
    value = 100 * x
    return f"{value:.0f} %" if abs(value) >= 10 else f"{value:.2g} %"


def seconds(value: Any) -> str:
    x = _num(value)
    if x is None:
        return "—"
    return f"{x * 1000:.0f} ms" if x < 1 else f"{x:.2f} s"


def tflops(value: Any) -> str:
    x = _num(value)
    return "—" if x is None else f"{x:.3g} TFLOP/s"
