"""The terminal table of a comparison document (``python -m bench compare`` / ``ab``).

One line per case, long reasons wrapped under the "why" column instead of cut off, ``only_changed``
to leave out the ``no change`` rows (the counts still cover every case). Each row says what it can see
(the "sees" column: the slowdown caught with 90 % probability; with a history also within 8 more runs of
the change-point mode, and the A/B pairs a 10 % slowdown needs), and a quiet row whose threshold is below
that is labelled "blind below X %", so green is never read as "no change". Reads the document only.
"""

from __future__ import annotations

import shutil
import textwrap
from collections.abc import Mapping
from typing import Any

from bench.analyze.compare import describe_differences

HEADER = ("case", "metric", "baseline", "current", "change", "p", "verdict", "sees (90 %)", "why")
LEFT = {0, 1, 6, 7}  # left-aligned columns; numbers are right-aligned
MIN_WHY_WIDTH = 30


def environment_lines(document: Mapping[str, Any]) -> list[str]:
    """Warning/note lines for stderr about fingerprint differences."""
    env = document["environment"]
    lines = []
    forced = [d for d in env["differs"] if d["field"] not in env["allowed"]]
    allowed = [d for d in env["differs"] if d["field"] in env["allowed"]]
    if forced:
        lines.append(f"warning: comparing despite environment differences (--force): {describe_differences(forced)}")
    if allowed:
        lines.append(f"note: expected environment differences: {describe_differences(allowed)}")
    control = document.get("control") or {}
    if allowed and control.get("ratio") is not None and abs(control["ratio"] - 1) >= 0.05 \
            and (document.get("method") or {}).get("normalize") == "control":
        lines.append(f"note: the control workload moved {control['ratio'] - 1:+.1%} while the environments differ; "
                     "part of that may be the upgrade itself, which normalising divides out "
                     "(check with --normalize none)")
    return lines


def fmt(value: float | None) -> str:
    if value is None:
        return "-"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.4g}"


def cell(row_side: Mapping[str, Any] | None) -> str:
    if row_side is None:
        return "-"
    if row_side.get("median") is None:
        return row_side["status"]
    spread = row_side["iqr"] / 2 / row_side["median"] if row_side["median"] else 0.0
    runs = f" ({row_side['runs']} runs)" if row_side.get("runs") else ""
    return f"{fmt(row_side['median'])} ±{spread:.1%}{runs}"


def fmt_p(p: float | None) -> str:
    if p is None:
        return "-"
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def row_p(row: Mapping[str, Any]) -> float | None:
    """The p-value in the direction the change went."""
    if row["ratio"] is None:
        return None
    worse = (row["ratio"] < 1) == bool(row["bigger_is_better"])
    return row["p_worse"] if worse else row["p_better"]


def why(row: Mapping[str, Any]) -> str:
    parts = ([row["reason"]] if row["reason"] else []) + list(row["notes"])
    return "; ".join(parts)


def changed(row: Mapping[str, Any]) -> bool:
    return row["verdict"] != "no change"


def verdict_cell(row: Mapping[str, Any]) -> str:
    """The verdict, with "blind below X %" when the row stayed quiet below what it can see."""
    detect = row.get("detect") or {}
    if row["verdict"] == "no change" and detect.get("judged") is False:
        return "not judged"
    blind = detect.get("blind_below")
    if row["verdict"] == "no change" and blind is not None:
        return f"no change, blind below {blind:.0%}"
    return str(row["verdict"])


def sees_cell(row: Mapping[str, Any]) -> str:
    """What this row can see, at 90 % probability: one run (or this session), 8 more runs, A/B pairs for 10 %."""
    detect = row.get("detect") or {}
    if not detect or detect.get("judged") is False:
        return "-"
    parts = []
    if detect.get("mde") is not None:
        at = f" at {detect['pairs']} pairs" if detect.get("spread_of") == "pairs" and detect.get("pairs") else ""
        parts.append(f"{abs(detect['mde']):.0%}{at}")
    after = (detect.get("after_runs") or {}).get("8", "absent")
    if after != "absent":
        parts.append(f"8 runs {abs(after):.0%}" if after is not None else "8 runs -")
    if detect.get("ab_pairs_10pct") and detect.get("spread_of") != "pairs":
        parts.append(f"A/B {detect['ab_pairs_10pct']} pairs")
    return ", ".join(parts) or "-"


def render_table(document: Mapping[str, Any], only_changed: bool = False, width: int | None = None) -> str:
    """A short aligned table: one line per case (reasons wrapped), then the method and the counts."""
    width = width or shutil.get_terminal_size((120, 24)).columns
    rows = [r for r in document["rows"] if changed(r) or not only_changed]
    cells = [HEADER] + [(r["case_id"], r["metric"] or "-", cell(r["baseline"]), cell(r["current"]),
                         f"{r['ratio'] - 1:+.1%}" if r["ratio"] is not None else "-", fmt_p(row_p(r)),
                         verdict_cell(r), sees_cell(r), why(r)) for r in rows]
    widths = [max(len(line[i]) for line in cells) for i in range(len(HEADER) - 1)]
    indent = sum(widths) + 2 * len(widths)
    # Too narrow a terminal for the why column: reasons go on their own lines, indented.
    why_width, why_indent = (width - indent, indent) if width - indent >= MIN_WHY_WIDTH else (width - 4, 4)
    out = []
    for number, line in enumerate(cells):
        head = "  ".join(line[i].ljust(widths[i]) if i in LEFT else line[i].rjust(widths[i])
                         for i in range(len(widths)))
        wrapped = textwrap.wrap(line[-1], max(MIN_WHY_WIDTH, why_width), break_on_hyphens=False) or [""]
        if why_indent == indent or number == 0:
            out.append(f"{head}  {wrapped[0]}".rstrip())
            out += [" " * why_indent + more for more in wrapped[1:]]
        else:
            out.append(head.rstrip())
            out += [" " * why_indent + more for more in wrapped if more]
    if only_changed and not rows:
        out.append(f"(no case changed; {len(document['rows'])} compared)")
    elif only_changed:
        out.append(f"({len(document['rows']) - len(rows)} unchanged case(s) not shown: --only-changed)")
    summary = summary_text(document)
    suite = suite_line(document)
    lines = [*reference_lines(document), *out, *(textwrap.wrap(suite, width, subsequent_indent="  ") if suite else []),
             *textwrap.wrap(method_line(document), width, subsequent_indent="  ")]
    control = control_line(document)
    if control:
        lines += textwrap.wrap(control, width, subsequent_indent="  ")
    lines.append(f"{summary or 'no cases'} -> exit {document['summary']['exit_code']}")
    return "\n".join(lines)


def summary_text(document: Mapping[str, Any]) -> str:
    """"1 regression, 3 no change (2 blind below their threshold, 1 not judged)"."""
    summary = document["summary"]
    text = ", ".join(f"{n} {v}{'s' if n > 1 and v in ('regression', 'improvement') else ''}"
                     for v, n in summary["counts"].items() if n)
    extra = [f"{summary['blind']} blind below their threshold" if summary.get("blind") else "",
             f"{summary['not_judged']} not judged" if summary.get("not_judged") else ""]
    extra = [e for e in extra if e]
    return f"{text} ({', '.join(extra)})" if text and extra else text


def suite_line(document: Mapping[str, Any]) -> str | None:
    """The change-point mode's suite series, one line."""
    suite = document.get("suite")
    if not suite:
        return None
    worse = (suite.get("changepoint") or {}).get("worse") or {}
    after = ((suite.get("detect") or {}).get("after_runs") or {}).get("8")
    sees = f"; sees {abs(after):.0%} within 8 runs" if after is not None else ""
    shift = f" {worse['shift']:+.1%} since run {worse['start']['run_id']}" if worse.get("start") else ""
    return (f"{suite['case_id']}: {suite['verdict']}{shift} (CUSUM {worse.get('peak', 0):.1f} of "
            f"{worse.get('threshold', 0):.1f}){sees}" + (f" - {suite['reason']}" if suite.get("reason") else ""))


def reference_lines(document: Mapping[str, Any]) -> list[str]:
    base, cur = document["baseline"], document["current"]
    name = f" [{base['baseline_name']}]" if base.get("baseline_name") else ""

    def incomplete(ref: Mapping[str, Any]) -> str:
        return " - incomplete run" if ref.get("complete") is False else ""

    method = (document.get("method") or {}).get("name", "rounds")
    if method == "history":
        runs = len(base.get("history") or [])
        first = f"baseline: history{name} of {runs} runs ({base['path'] or '-'}), newest {base['run_id']}"
    elif method == "changepoint":
        runs = len(base.get("history") or [])
        reference = document["method"].get("reference_runs")
        first = (f"series:   {runs} runs of{name or ' the history'} ({base['path'] or '-'}): {reference} reference runs "
                 f"to {base['run_id']}, then {runs - (reference or 0)} monitored")
    elif method == "interleaved":
        first = f"side a:   {base['run_id']} and the rest of side a ({document['method'].get('pairs')} pairs)"
    else:
        first = f"baseline: {base['run_id']}{name} ({base['path'] or '-'}){incomplete(base)}"
    label = "side b:  " if method == "interleaved" else "current: "
    return [first, f"{label} {cur['run_id']} ({cur['path'] or '-'}){incomplete(cur)}"]


def method_line(document: Mapping[str, Any]) -> str:
    method = document["method"]
    name = method.get("name", "rounds")
    normalized = any(r.get("normalized") for r in document["rows"])
    norm = " normalised by the control workload," if normalized else ""
    thresholds = _thresholds(method)
    budget = (f"false-alarm budget {method['alpha']:g} per comparison split over the cases (Holm), at most "
              f"{method.get('case_alpha', method['alpha']):g} per case")
    if name == "history":
        return (f"between-run test: each run is one value (geometric mean of its processes); baseline = median ± half "
                f"IQR of the history's run values; change ={norm} current / history mean; regression = change beyond "
                f"{thresholds} and outside the history's prediction interval at the case's level ({budget}; at "
                f"least {method.get('min_runs')} runs); sees = the slowdown caught with 90 % probability by one run, "
                "by the change-point mode within 8 runs, and the A/B pairs a 10 % slowdown needs")
    if name == "runs":
        return (f"two runs: each process is one value; change ={norm} ratio of the runs' geometric means; regression "
                f"= change beyond {thresholds} and one-sided p below the case's level over the processes ({budget}); "
                "sees = the slowdown caught with 90 % probability, and the A/B pairs a 10 % slowdown needs")
    if name == "changepoint":
        return (f"change-point mode: CUSUM over {method.get('history_runs')} runs ({method.get('reference_runs')} "
                f"reference), change ={norm} mean since the shift began / reference mean; regression = the CUSUM "
                f"crossed its threshold and the change is beyond {thresholds} (budget {method['alpha']:g} per "
                f"{method.get('horizon')} runs, split over the cases and the suite with Holm); sees = the slowdown "
                "caught with 90 % probability within 8 runs")
    if name == "interleaved":
        minutes = f", {method['minutes']:.1f} min" if method.get("minutes") is not None else ""
        return (f"interleaved A/B ({method.get('pairs')} pairs{minutes}; looks at "
                f"{', '.join(map(str, method.get('looks') or [])) or '-'} pairs): each side's value per pair from its "
                f"own process; change ={norm} geometric mean of b / a over the pairs; regression = change beyond "
                f"{thresholds} and paired one-sided p below the case's level ({budget}, and split over the looks)")
    return (f"medians ± half the interquartile range of the rounds; change ={norm} ratio of trimmed geometric means; "
            f"regression = change beyond {thresholds} and one-sided p below the case's level over the rounds "
            f"({budget}; the rounds of one run share its machine state: this test ignores between-run drift)")


def control_line(document: Mapping[str, Any]) -> str | None:
    control = document.get("control") or {}
    if control.get("ratio") is None:
        return None
    faster = "faster" if control["ratio"] > 1 else "slower"
    return (f"control workload: {fmt(control['current'])} samples/s now vs {fmt(control['baseline'])} in the baseline "
            f"({control['ratio'] - 1:+.1%}: the machine ran {abs(control['ratio'] - 1):.1%} {faster})")


def _thresholds(method: Mapping[str, Any]) -> str:
    values = set(method["thresholds"].values())
    if len(values) == 1:
        return f"{values.pop():.0%}"
    return ", ".join(f"{k} {v:.0%}" for k, v in method["thresholds"].items())
