"""Terminal output of a sweep: one progress line per finished case, then the run's first screen (the same
``derived.overview`` rows the HTML report shows) and a short table at the end."""

from __future__ import annotations

from collections import Counter
from typing import Any


def _fmt_duration(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 60}:{seconds % 60:02d}"


def case_headline(record: dict[str, Any]) -> str:
    """The one number that matters for a case, or its reason."""
    m = record.get("metrics") or {}
    if record["status"] != "ok":
        return (record.get("reason") or "")[:110]
    if record["suite"] in ("train", "native"):
        sps = m["samples_per_second"]
        line = f"{sps['median']:>12,.0f} samples/s  cv {100 * sps['cv']:.1f}%  compile {m['compile_s']:.1f}s"
        if m.get("native_ratio") is not None:
            line += f"  x{m['native_ratio']:.2f} of native"
        return line
    if record["suite"] == "converge":
        t, e = m["time_to_target_s"], m["epochs_to_target"]
        return (f"{t['median']:>8.2f}s to {m['target_accuracy']:g} (IQR {t['iqr']:.2f}s)  {e['median']:g} epochs  "
                f"{m['seeds_converged']}/{m['seeds_run']} seeds  compile {m['compile_s']:.1f}s")
    if "total_s" in m:
        diff = m.get("max_abs_diff")
        return f"total {m['total_s']:.3f}s  max|diff| {'n/a' if diff is None else format(diff, '.2g')}"
    return ""


def format_progress(record: dict[str, Any], done: int, total: int, elapsed_s: float) -> str:
    """One line per measurement: a case in one of its processes (``p2``: its second pass)."""
    eta = elapsed_s / done * (total - done) if done else 0.0
    width = len(str(total))
    process = (record.get("metrics") or {}).get("process")
    where = f"p{process['pass_index'] + 1} " if isinstance(process, dict) else ""
    return (f"[{done:>{width}}/{total}] {where}{record['status']:<10} {record['case_id']:<58} {case_headline(record)}"
            f"   (elapsed {_fmt_duration(elapsed_s)}, ETA {_fmt_duration(eta)})")


def _stat_headline(record: dict[str, Any], stat: dict[str, Any] | None) -> str:
    """A finished run's case: its value over processes with the 95 % interval (bench.analyze.paired)."""
    if stat is None or record["status"] != "ok":
        return case_headline(record)
    interval = (f"[{stat['ci_low']:,.0f}, {stat['ci_high']:,.0f}]" if stat.get("ci_low") is not None
                else "(one process: no interval)")
    between = stat.get("between_process_cv")
    noise = f"  between processes {100 * between:.1f}%" if between is not None else ""
    return (f"{stat['value']:>12,.0f} samples/s {interval} over {stat['processes']} process(es){noise}"
            f"  compile {record['metrics'].get('compile_s') or 0:.1f}s")


def format_overview(derived: dict[str, Any]) -> list[str]:
    """The report's first screen as text: the same ``derived.overview`` rows, one answer per question."""
    overview = derived.get("overview") or {}
    if not overview:
        return []
    lines = [f"  {overview.get('title')} [{overview.get('category')}]"]
    for line in overview.get("lines") or []:
        lines.append(f"  {line['question']:<40} {line['answer']}")
    lines.append(f"  {'Machine speed':<40} {overview.get('drift')}")
    return lines


def format_summary(run: dict[str, Any]) -> str:
    cases = run["cases"]
    derived = run.get("derived") or {}
    counts = Counter(c["status"] for c in cases)
    lines = ["", f"Summary of {run['run_id']} ({len(cases)} cases: "
             + ", ".join(f"{n} {s}" for s, n in sorted(counts.items())) + ")"]
    lines += format_overview(derived)
    data = run.get("data", {})
    if data.get("synthetic"):
        lines.append(f"  !! data: SYNTHETIC ({data.get('note')})")
    if any(c.get("flags", {}).get("simulated") for c in cases):
        lines.append("  !! devices: SIMULATED (logical devices carved out of one device; not real scaling)")
    unstable = [c["case_id"] for c in cases if c.get("flags", {}).get("unstable")]
    if unstable:
        lines.append(f"  !! {len(unstable)} case(s) with unstable rounds (CV above threshold)")
    derived = run.get("derived") or {}
    speed = derived.get("machine_speed")
    if speed:
        lines.append(f"  {'!!' if speed.get('moved') or speed.get('contention') else '  '} {speed['sentence']}")
    lines.append("")
    stats = {row["case_id"]: row for row in derived.get("case_stats") or []}
    known = {row["case_id"]: row for row in derived.get("failures") or [] if row.get("kind") == "known limitation"}
    for c in cases:
        if c["case_id"] in known:  # expected, not a broken setup: say which upstream issue
            row = known[c["case_id"]]
            lines.append(f"  {c['status']:<10} {c['case_id']:<58} known limitation {row.get('issue') or row.get('title')}"
                         f" ({row.get('url')})")
        else:
            lines.append(f"  {c['status']:<10} {c['case_id']:<58} {_stat_headline(c, stats.get(c['case_id']))}")
    best = derived.get("best_configurations") or []
    comparisons = [row for row in derived.get("comparisons") or [] if row.get("kind") != "best"]
    if best or comparisons:
        lines.append("\n  Comparisons (processes paired by pass; 95 % intervals; an interval holding 1 is no "
                     "measurable difference):")
        lines.extend(f"    {row['sentence']}" for row in best)
        lines.extend(f"    {row['sentence']}" for row in comparisons)
    ranking = (run.get("derived") or {}).get("cpu_predict_ranking")
    if ranking:
        lines.append("\n  CPU prediction after GPU training, methods ranked by total time (prepare + first + steady):")
        lines.extend("  " + line for line in format_ranking(ranking).splitlines())
    checks = [c["metrics"]["timing_check"]["rel_diff"] for c in cases
              if c["status"] == "ok" and c["suite"] in ("train", "native") and c["metrics"].get("timing_check", {}).get("rel_diff") is not None]
    if checks:
        lines.append(f"\n  timing check: pytest-benchmark's round sum vs an independent monotonic clock differ by "
                     f"at most {100 * max(checks):.2f}% over {len(checks)} cases")
    lines.append("")
    return "\n".join(lines)


def format_ranking(rows: list[dict[str, Any]]) -> str:
    """A plain-text table of :func:`ranking`'s rows."""
    def sec(value: float | None) -> str:
        return "-" if value is None else f"{value:.3f}"

    lines = [f"{'backend':<10} {'rank':>4}  {'method':<12} {'total_s median':>14} {'min..max over settings':>23} "
             f"{'steady IQR':>10}  statuses"]
    for r in rows:
        spread = "-" if r["total_s_min"] is None else f"{r['total_s_min']:.3f}..{r['total_s_max']:.3f}"
        statuses = ", ".join(f"{n} {s}" for s, n in sorted(r["statuses"].items()))
        lines.append(f"{r.get('backend') or '-':<10} {r['rank'] or '-':>4}  {r['method']:<12} "
                     f"{sec(r['total_s_median']):>14} {spread:>23} {sec(r['steady_iqr_s']):>10}  {statuses}")
    return "\n".join(lines)
