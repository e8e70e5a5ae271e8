"""Exports for CI tools: github-action-benchmark's custom JSON (from a run) and a Markdown summary (from a
comparison) for ``$GITHUB_STEP_SUMMARY``.

github-action-benchmark (benchmark-action/github-action-benchmark) reads, per action step, one JSON file
for one tool: ``customBiggerIsBetter`` or ``customSmallerIsBetter``, each a non-empty list of
``{"name", "unit", "value", "range"?, "extra"?}``; an empty list fails the action, so a run without such
a metric gets no file at all (and the workflow skips the step when the file is absent). ``range`` is a
string the action parses as ``± <number>`` (``extractRangeInfo``: ``(\\+-|±)\\s*(\\d.+)`` then ``Number()``),
so it is written without thousands separators and always with a decimal point.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from bench.analyze.stats import summarize
from bench.errors import UserError
from bench.report.compare_table import (
    cell,
    changed,
    fmt,
    fmt_p,
    method_line,
    row_p,
    sees_cell,
    suite_line,
    summary_text,
    verdict_cell,
    why,
)
from bench.store.baselines import injected_slowdown

GITHUB_TOOLS = {"bigger": "customBiggerIsBetter", "smaller": "customSmallerIsBetter"}
GITHUB_FILES = {"bigger": "github-benchmark-throughput.json", "smaller": "github-benchmark-seconds.json"}
WHAT = {"bigger": "training throughput (train or native cases that finished ok)",
        "smaller": "CPU-prediction seconds (cpu_predict methods that worked)"}


class InjectedSlowdown(UserError):
    """A run made with ``[faults] slowdown``: a test of the gate, never a measurement to publish."""


def github_range(half_iqr: float) -> str:
    """``± <number>`` that github-action-benchmark can parse back into a number."""
    return f"± {float(f'{half_iqr:.4g}')!r}"


def _per_round(case: Mapping[str, Any]) -> list[float] | None:
    metrics = case.get("metrics") or {}
    if case["suite"] in ("train", "native"):
        rounds, per_round = metrics.get("round_s"), metrics.get("samples_per_round")
        if isinstance(rounds, list) and rounds and isinstance(per_round, (int, float)) and per_round > 0 \
                and all(isinstance(r, (int, float)) and r > 0 for r in rounds):
            return [per_round / r for r in rounds]
        return None
    steady = metrics.get("steady_round_s")
    if isinstance(steady, list) and steady and all(isinstance(r, (int, float)) and r > 0 for r in steady):
        return [float(r) for r in steady]
    return None


def check_exportable(run: Mapping[str, Any], where: str) -> None:
    slowed = injected_slowdown(run)
    if slowed:
        raise InjectedSlowdown(f"{where} was made with an {slowed}: a test of the gate, not a measurement; not exported")


def github_benchmark_entries(run: Mapping[str, Any], kind: str,
                             comparison: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
    """Entries for one github-action-benchmark tool from a run document; the baseline is not needed.

    ``kind="bigger"``: one entry per train/native case, median samples/s over the rounds. ``kind="smaller"``:
    per cpu_predict method that worked (status ok), the median ``steady_round_s`` and ``total_s``. With a
    ``comparison`` document the verdict and change of each case go into ``extra``.
    """
    if kind not in GITHUB_TOOLS:
        raise ValueError(f"kind must be one of {sorted(GITHUB_TOOLS)}")
    rows = {r["case_id"]: r for r in (comparison or {}).get("rows") or []}
    entries = []
    for case in run.get("cases") or []:
        if case.get("status") != "ok" or (case["suite"] == "cpu_predict") != (kind == "smaller"):
            continue
        samples = _per_round(case)
        if samples is None:
            continue
        stats = summarize(samples)
        metric, unit = ("samples_per_second", "samples/s") if kind == "bigger" else ("steady_round_s", "s")
        extra = [f"rounds: {stats['n']}", f"cv: {stats['cv']:.1%}"]
        flags = sorted(k for k, v in (case.get("flags") or {}).items() if v)
        if flags:
            extra.append(f"flags: {', '.join(flags)}")
        row = rows.get(case["case_id"])
        if row is not None:
            extra.append(f"verdict: {row['verdict']}")
            if row.get("ratio") is not None:
                extra.append(f"change: {row['ratio'] - 1:+.1%}")
        entries.append({"name": f"{case['case_id']} {metric}", "unit": unit, "value": float(stats["median"]),
                        "range": github_range(stats["iqr"] / 2), "extra": "\n".join(extra)})
        total = (case.get("metrics") or {}).get("total_s")
        if kind == "smaller" and isinstance(total, (int, float)) and not isinstance(total, bool) and total > 0:
            entries.append({"name": f"{case['case_id']} total_s", "unit": "s", "value": float(total),
                            "extra": "prepare + first predict + median steady predict"})
    return entries


def write_github_benchmark(run: Mapping[str, Any], out_dir: Path, where: str,
                           comparison: Mapping[str, Any] | None = None,
                           paths: Mapping[str, Path | None] | None = None) -> list[str]:
    """Write the non-empty files (default names in ``out_dir``); one line per tool saying what happened."""
    from bench.store.results import ResultsError, write_json_atomic

    check_exportable(run, where)
    lines = []
    for kind, tool in GITHUB_TOOLS.items():
        target = (paths or {}).get(kind, out_dir / GITHUB_FILES[kind])
        if target is None:
            continue
        entries = github_benchmark_entries(run, kind, comparison)
        if not entries:
            stale = " (an older file there was left as it is)" if target.exists() else ""
            lines.append(f"{tool}: {where} has no {WHAT[kind]}; {target} not written{stale}")
            continue
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ResultsError(f"cannot create {target.parent}: {exc.strerror or exc}") from None
        write_json_atomic(target, entries)  # type: ignore[arg-type]  # the action wants a top-level list
        lines.append(f"{tool}: wrote {target} ({len(entries)} entries)")
    return lines


# --------------------------------------------------------------------------- Markdown


def _md(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def markdown_summary(document: Mapping[str, Any], only_changed: bool = True) -> str:
    """A Markdown section for ``$GITHUB_STEP_SUMMARY``: the verdict, then only the rows that changed."""
    # A quiet row that could not see its threshold is listed too: "passes" must not read as "nothing changed".
    rows = [r for r in document["rows"] if changed(r) or not only_changed or verdict_cell(r) != "no change"]
    summary = document["summary"]
    counts = summary_text(document) or "no cases"
    status = "fails the build" if summary["fails_build"] else "passes"
    base, cur = document["baseline"], document["current"]
    name = f" `{base['baseline_name']}`" if base.get("baseline_name") else ""
    method = (document.get("method") or {}).get("name", "rounds")
    against = (f"history{name} of {len(base.get('history') or [])} runs" if method in ("history", "changepoint")
               else f"`{base.get('run_id')}`{name}")
    lines = [f"### Benchmark gate {status} (exit {summary['exit_code']})", "",
             f"`{cur.get('run_id')}` against {against}: {counts}.", ""]
    suite = suite_line(document)
    if suite:
        lines += [_md(suite), ""]
    if rows:
        lines += ["| case | metric | baseline | current | change | p | verdict | sees (90 %) | why |",
                  "| --- | --- | ---: | ---: | ---: | ---: | --- | --- | --- |"]
        for r in rows:
            change = f"{r['ratio'] - 1:+.1%}" if r["ratio"] is not None else "-"
            verdict = f"**{r['verdict']}**" if r["fails_build"] else verdict_cell(r)
            lines.append(f"| `{_md(r['case_id'])}` | {r['metric'] or '-'} | {cell(r['baseline'])} | "
                         f"{cell(r['current'])} | {change} | {fmt_p(row_p(r))} | {verdict} | {sees_cell(r)} | "
                         f"{_md(why(r))} |")
        if only_changed and len(rows) < len(document["rows"]):
            lines += ["", f"{len(document['rows']) - len(rows)} case(s) with no change (and able to see their "
                          "threshold) are not listed."]
    else:
        lines.append(f"No case changed beyond the noise, and every case could see its threshold "
                     f"({len(document['rows'])} compared).")
    control = document.get("control") or {}
    lines += ["", f"<sub>{_md(method_line(document))}"
                  + (f"; control workload {control['ratio'] - 1:+.1%} against the baseline ({fmt(control['current'])} "
                     f"samples/s)" if control.get("ratio") is not None else "") + "</sub>", ""]
    return "\n".join(lines)
