"""The rates of ``scripts/gate_benchmark.py analyze``: comparisons resampled from measured runs, through the real code.

Reads the collection's manifest and run documents, and answers, each with a 95 % interval, what the gate
promises (see gate_benchmark.py's docstring): false alarms and detection of one run against a history, the
change-point mode's false alarms over 20 nights and its latency after a persistent 10 % slowdown, and the
adaptive A/B's detection, false alarms, pairs and minutes. Then the spread of each case's run value: raw,
relative to the control, and under the two per-process statistics (best half of the rounds, 20 %-trimmed).
"""

from __future__ import annotations

import copy
import math
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

SLOWDOWN = 0.10
WINDOW = 10  # history runs per single-run comparison (compare's --window)
REFERENCE, NIGHTS = 10, 20  # change-point: reference runs, monitored nights
LOOKS = (8, 16, 24)

# The previous session's figures (README "Regression tracking", quiet box, 29 runs; and the 4-repeat A/B).
OLD = {
    "history_fa_case": "0/48 (0%)",
    "history_fa_run": "0/12 (0%)",
    "history_detect_case": "1/48 (2%)",
    "history_detect_all": "0/12 (0%)",
    "spread_raw": "16-26 %",
    "spread_control": "6-13 %",
    "ab": "4 repeats: 1 of 2 cases flagged",
}


def wilson(hits: int, total: int, n_eff: int | None = None) -> tuple[float, float]:
    """Wilson's 95 % interval of hits / total, with ``n_eff`` independent units behind it (default: total)."""
    if not total:
        return (float("nan"), float("nan"))
    n = n_eff or total
    p, z = hits / total, 1.959964
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def rate(hits: int, total: int, n_eff: int | None = None) -> str:
    if not total:
        return "-"
    low, high = wilson(hits, total, n_eff)
    return f"{hits}/{total} ({hits / total:.1%}; 95 % {low:.1%}-{high:.1%})"


def quantile_ci(values: Sequence[float], q: float, rng: np.random.Generator, boots: int = 2000) -> str:
    """A quantile with its bootstrap 95 % interval (percentile method)."""
    if not values:
        return "-"
    data = np.asarray(values, float)
    point = float(np.quantile(data, q, method="inverted_cdf"))
    draws = np.quantile(rng.choice(data, (boots, len(data))), q, axis=1, method="inverted_cdf")
    return f"{point:.0f} (95 % {np.quantile(draws, 0.025):.0f}-{np.quantile(draws, 0.975):.0f})"


# --------------------------------------------------------------------------- the runs


def load(entries: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    from bench.store.results import load_run

    runs = [dict(e, doc=load_run(e["run"])) for e in entries if e.get("kind") in ("normal", "slow")]
    return sorted(runs, key=lambda r: r["index"])


def slowed(doc: Mapping[str, Any], factor: float = 1 - SLOWDOWN) -> dict[str, Any]:
    """The run with every ok train/native case ``factor`` times as fast (rounds longer), the control untouched."""
    out = copy.deepcopy(dict(doc))
    out["run_id"] = f"{doc.get('run_id')}-x{factor:g}"
    for case in out["cases"]:
        if case["suite"] in ("train", "native") and case["status"] == "ok":
            case["metrics"]["round_s"] = [r / factor for r in case["metrics"]["round_s"]]
    return out


def one_case(doc: Mapping[str, Any], case_id: str) -> dict[str, Any]:
    """The run as an A/B unit's run: only this case."""
    return dict(doc, cases=[c for c in doc["cases"] if c["case_id"] == case_id])


def case_ids(runs: Sequence[Mapping[str, Any]]) -> list[str]:
    return [c["case_id"] for c in runs[0]["doc"]["cases"] if c["suite"] in ("train", "native")]


# --------------------------------------------------------------------------- single run against a history


def single_run(normal: Sequence[dict[str, Any]], slow: Sequence[dict[str, Any]], comparisons: int,
               rng: np.random.Generator) -> dict[str, Any]:
    from bench.analyze.compare import CompareSettings
    from bench.analyze.history import compare_history

    settings = CompareSettings(normalize="auto")
    window = min(WINDOW, len(normal) - 1)

    def judge(current: Mapping[str, Any], exclude: int | None) -> tuple[list[str], int, list[dict[str, Any]]]:
        pool = [i for i in range(len(normal)) if i != exclude]
        chosen = sorted(rng.choice(pool, window, replace=False))
        document = compare_history([normal[i]["doc"] for i in chosen], current, settings, min(5, window))
        rows = [r for r in document["rows"] if r["suite"] in ("train", "native")]
        return [r["case_id"] for r in rows if r["verdict"] == "regression"], len(rows), rows

    out: dict[str, Any] = {"window": window}
    for name, make in (("aa", lambda j: normal[j]["doc"]), ("synthetic", lambda j: slowed(normal[j]["doc"]))):
        flagged_cases = flagged_runs = all_flagged = cases = 0
        judged: set[int] = set()
        loaded = {True: [0, 0], False: [0, 0]}
        blind: list[float] = []
        for _ in range(comparisons):
            j = int(rng.integers(len(normal)))
            judged.add(j)
            flagged, n, rows = judge(make(j), j)
            flagged_cases += len(flagged)
            flagged_runs += bool(flagged)
            all_flagged += len(flagged) == n
            cases += n
            loaded[bool(normal[j]["loaded"])][0] += bool(flagged) if name == "aa" else len(flagged) == n
            loaded[bool(normal[j]["loaded"])][1] += 1
            blind += [abs(r["detect"]["mde"]) for r in rows if (r.get("detect") or {}).get("mde") is not None]
        out[name] = {"cases": (flagged_cases, cases, len(judged)), "runs": (flagged_runs, comparisons, len(judged)),
                     "all": (all_flagged, comparisons, len(judged)), "loaded": loaded,
                     "mde_median": float(np.median(blind)) if blind else None}
    if slow:
        flagged_cases = cases = all_flagged = 0
        for _ in range(comparisons):
            s = int(rng.integers(len(slow)))
            flagged, n, _ = judge(slow[s]["doc"], None)
            flagged_cases, cases, all_flagged = flagged_cases + len(flagged), cases + n, all_flagged + (len(flagged) == n)
        out["measured"] = {"cases": (flagged_cases, cases, len(slow)), "all": (all_flagged, comparisons, len(slow))}
    return out


# --------------------------------------------------------------------------- change points over nights


def change_points(normal: Sequence[dict[str, Any]], slow: Sequence[dict[str, Any]], series: int,
                  rng: np.random.Generator) -> dict[str, Any]:
    from bench.analyze.changepoint import compare_series
    from bench.analyze.compare import CompareSettings

    settings = CompareSettings(normalize="auto")
    # At most half the unchanged runs: the nights must be drawn from enough other runs (with 9 runs and a
    # reference of 8, every night would be the same run, a persistent "shift" of whatever it happened to read).
    reference = min(REFERENCE, max(5, len(normal) // 2))
    slow_pool = [s["doc"] for s in slow] if len(slow) >= 5 else None

    def night(i: int, turned: bool) -> dict[str, Any]:
        doc = normal[i]["doc"]
        if not turned:
            return doc
        return slow_pool[int(rng.integers(len(slow_pool)))] if slow_pool else slowed(doc)

    def first_alarm(document: Mapping[str, Any]) -> tuple[int | None, dict[str, int | None]]:
        per_case: dict[str, int | None] = {}
        for row in [*document["rows"], document.get("suite") or {}]:
            alarm = ((row.get("changepoint") or {}).get("worse") or {}).get("alarm")
            per_case[row.get("case_id", "?")] = alarm["index"] if alarm and row.get("verdict") == "regression" else None
        alarms = [a for a in per_case.values() if a is not None]
        return (min(alarms) if alarms else None), per_case

    false_alarms = 0
    latencies: list[int] = []
    latencies_suite: list[int] = []
    early = missed = 0
    for _ in range(series):
        ref = list(rng.choice(len(normal), reference, replace=False))
        rest = [i for i in range(len(normal)) if i not in ref]
        nights = list(rng.choice(rest, NIGHTS, replace=len(rest) < NIGHTS))
        document = compare_series([normal[i]["doc"] for i in ref] + [night(i, False) for i in nights], settings,
                                  reference, NIGHTS)
        false_alarms += first_alarm(document)[0] is not None
        change = int(rng.integers(1, NIGHTS // 2 + 1))  # the first slowed night, 1-based
        docs = [normal[i]["doc"] for i in ref] + [night(i, n + 1 >= change) for n, i in enumerate(nights)]
        first, per_case = first_alarm(compare_series(docs, settings, reference, NIGHTS))
        change_index = reference + change - 1
        if first is not None and first < change_index:
            early += 1
        case_alarms = [a for c, a in per_case.items() if not c.startswith("suite")]
        if any(a is None for a in case_alarms):
            missed += sum(a is None for a in case_alarms)
        latencies += [a - change_index + 1 for a in case_alarms if a is not None and a >= change_index]
        suite = next((a for c, a in per_case.items() if c.startswith("suite")), None)
        if suite is not None and suite >= change_index:
            latencies_suite.append(suite - change_index + 1)
    cases = len(case_ids(normal))
    return {"reference": reference, "false_alarms": (false_alarms, series, len(normal)), "latencies": latencies,
            "latencies_suite": latencies_suite, "early": (early, series, len(normal)),
            "detected": (len(latencies), series * cases, len(normal)), "missed": missed,
            "source": "measured slowed runs" if slow_pool else "unchanged runs made 10 % slower"}


# --------------------------------------------------------------------------- adaptive A/B from measured pairs


def ab_pairs(runs: Sequence[dict[str, Any]]) -> tuple[list[tuple[dict, dict, float]], list[tuple[dict, dict, float]]]:
    """Adjacent measured pairs: (unchanged, slowed) whatever their order, and (unchanged, unchanged)."""
    by_pair: dict[int, list[dict[str, Any]]] = {}
    for run in runs:
        by_pair.setdefault(run["pair"], []).append(run)
    slow_pairs, same_pairs = [], []
    for members in by_pair.values():
        if len(members) != 2:
            continue
        kinds = sorted(m["kind"] for m in members)
        seconds = sum(m["wall_s"] for m in members)
        if kinds == ["normal", "slow"]:
            a = next(m for m in members if m["kind"] == "normal")
            b = next(m for m in members if m["kind"] == "slow")
            slow_pairs.append((a["doc"], b["doc"], seconds))
        elif kinds == ["normal", "normal"]:
            same_pairs.append((members[0]["doc"], members[1]["doc"], seconds))
    return slow_pairs, same_pairs


def ab_sessions(pairs: Sequence[tuple[dict, dict, float]], ids: Sequence[str], unit_s: Mapping[str, float],
                sessions: int, rng: np.random.Generator, swap: bool = False) -> dict[str, Any]:
    """Sessions drawn from measured pairs (each kept whole), 8 / 16 / 24 pairs per case while unclear.

    ``swap`` (unchanged pairs): which run of a pair is side a is drawn at random, as a session alternates the
    order; otherwise the first run of every unchanged pair would be side a, and whatever the position in a pair
    does (or the few pairs' chance mean) would read as a difference between the sides.
    """
    from bench.analyze.ab import compare_pairs, progress
    from bench.analyze.compare import CompareSettings

    settings = CompareSettings()
    flagged_cases = flagged_sessions = 0
    used: list[int] = []
    minutes: list[float] = []
    for _ in range(sessions):
        draws = {c: [pairs[int(i)] if not (swap and rng.random() < 0.5) else (pairs[int(i)][1], pairs[int(i)][0],
                                                                                  pairs[int(i)][2])
                     for i in rng.integers(len(pairs), size=LOOKS[-1])] for c in ids}
        taken = dict.fromkeys(ids, 0)
        active = set(ids)
        for look in LOOKS:
            for c in active:
                taken[c] = look
            session = [(one_case(a, c), one_case(b, c)) for c in ids for a, b, _ in draws[c][:taken[c]]]
            if look == LOOKS[-1]:
                break
            states = progress(session, settings, LOOKS)
            active = {c for c in active if states.get(c) is not None and states[c].state == "unclear"}
            if not active:
                break
        document = compare_pairs(session, settings, looks=LOOKS)
        rows = {r["case_id"]: r for r in document["rows"]}
        hits = [c for c in ids if rows[c]["verdict"] == "regression"]
        flagged_cases += len(hits)
        flagged_sessions += bool(hits)
        used += [taken[c] for c in ids]
        minutes.append(sum(taken[c] * 2 * unit_s.get(c, 0.0) for c in ids) / 60.0)
    return {"cases": (flagged_cases, sessions * len(ids), len(pairs)), "sessions": (flagged_sessions, sessions, len(pairs)),
            "pairs": used, "minutes": minutes}


# --------------------------------------------------------------------------- spread


def spreads(normal: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per case, over the unchanged runs: between-run sd of the run value (raw, / control; best half vs trimmed)
    and the median between-process sd within a run."""
    from bench.analyze.compare import values_of
    from bench.analyze.normalize import _passes
    from bench.analyze.values import best_half, geomean, trimmed_geomean

    out = []
    for case_id in case_ids(normal):
        raw, divided, trimmed, within = [], [], [], []
        for run in normal:
            case = next((c for c in run["doc"]["cases"] if c["case_id"] == case_id and c["status"] == "ok"), None)
            if case is None:
                continue
            values = values_of(case, "run")
            raw.append(math.log(values.run_value(False, True)))
            if values.has_control:
                divided.append(math.log(values.run_value(True, True)))
            metrics = case["metrics"]
            samples = [metrics["samples_per_round"] / r for r in metrics["round_s"]]
            passes = _passes(metrics.get("round_pass"), len(samples)) or [0] * len(samples)
            groups = [[s for s, p in zip(samples, passes, strict=True) if p == q] for q in sorted(set(passes))]
            trimmed.append(math.log(geomean([trimmed_geomean(g) for g in groups])))
            if len(groups) > 1:
                within.append(float(np.std(np.log([best_half(g) for g in groups]), ddof=1)))
        out.append({"case_id": case_id, "runs": len(raw), "raw": _sd(raw), "control": _sd(divided),
                    "trimmed": _sd(trimmed), "within": float(np.median(within)) if within else None})
    return out


def _sd(logs: Sequence[float]) -> float | None:
    return float(np.std(logs, ddof=1)) if len(logs) > 1 else None


def _pct(value: float | None) -> str:
    return f"{value:.1%}" if value is not None else "-"


# --------------------------------------------------------------------------- the report


def analyze(out: Path, entries: Sequence[Mapping[str, Any]], comparisons: int = 300, series: int = 200,
            sessions: int = 200, seed: int = 0, progress: Callable[[str], None] | None = None) -> str:
    rng = np.random.default_rng(seed)
    say = progress or (lambda text: None)
    runs = load(entries)
    normal = [r for r in runs if r["kind"] == "normal"]
    slow = [r for r in runs if r["kind"] == "slow"]
    if len(normal) < 6:
        raise SystemExit(f"{out}: {len(normal)} unchanged run(s); the analysis needs at least 6 (the targets: 40+)")
    ids = case_ids(normal)
    unit_s = {e["case_id"]: float(e["wall_s"]) for e in entries if e.get("kind") == "unit"}
    say("single runs")
    single = single_run(normal, slow, comparisons, rng)
    say("change points")
    changes = change_points(normal, slow, series, rng)
    say("A/B sessions")
    slow_pairs, same_pairs = ab_pairs(runs)
    ab_slow = ab_sessions(slow_pairs, ids, unit_s, sessions, rng) if len(slow_pairs) >= 2 else None
    ab_same = ab_sessions(same_pairs, ids, unit_s, sessions, rng, swap=True) if len(same_pairs) >= 2 else None
    spread = spreads(normal)

    loads = [e["loadavg_1min_before"] for e in entries if isinstance(e.get("loadavg_1min_before"), (int, float))]
    walls = [e["wall_s"] for e in entries if e.get("kind") in ("normal", "slow")]
    few = len(normal) < 40
    lines = [
        f"## Gate benchmark: {len(runs)} runs ({len(normal)} unchanged, {len(slow)} with a {SLOWDOWN:.0%} injected "
        f"slowdown; {sum(bool(r['loaded']) for r in runs)} next to a busy process), {sum(walls) / 60:.0f} min of runs",
        "",
        f"Runs took {min(walls):.0f}-{max(walls):.0f} s (median {np.median(walls):.0f} s); load average (1 min) at their "
        f"starts {min(loads):.2f}-{max(loads):.2f} on {os.cpu_count()} CPUs. Cases: {len(ids)}. One-case runs (an A/B "
        f"process): {', '.join(f'{v:.0f} s' for v in unit_s.values()) or 'not timed'}.",
        *(["", f"**Only {len(normal)} unchanged runs: a smoke test of the analysis, not a measurement (the targets need "
                "at least 40).**"] if few else []),
        "",
        "### Single run against a history (`compare NAME`, the tripwire)",
        "",
        f"{comparisons} comparisons per line, each a random unchanged run against a random history of "
        f"{single['window']} other unchanged runs, `--normalize auto`; intervals over the distinct judged runs.",
        "",
        "| question | now | before (README) | target |",
        "| --- | --- | --- | --- |",
        f"| false alarms per case | {rate(*single['aa']['cases'])} | {OLD['history_fa_case']} | <= 1 % |",
        f"| false alarms per suite run | {rate(*single['aa']['runs'])} | {OLD['history_fa_run']} | <= 5 % |",
        f"| 10 % slowdown caught, per case (cases made 10 % slower) | {rate(*single['synthetic']['cases'])} | "
        f"{OLD['history_detect_case']} | (low here: see the MDE) |",
        f"| 10 % slowdown caught in every case of the run | {rate(*single['synthetic']['all'])} | "
        f"{OLD['history_detect_all']} | |",
    ]
    if "measured" in single:
        lines.append(f"| measured slowed runs caught, per case | {rate(*single['measured']['cases'])} | | |")
    lines += [
        f"| median one-run MDE (90 % power) | {_pct(single['aa']['mde_median'])} | 52 % ('cannot flag smaller', "
        "a 50 % point) | |",
        "",
        f"A/A false alarms per suite run with / without the busy process: "
        f"{rate(*single['aa']['loaded'][True])} / {rate(*single['aa']['loaded'][False])}.",
        "",
        f"### Change point over nightly runs (`compare NAME --method changepoint`, {changes['reference']} reference "
        f"runs + {NIGHTS} nights)",
        "",
        f"{series} series per line; slowed nights from {changes['source']}, starting at a random night 1-{NIGHTS // 2}.",
        "",
        "| question | now | target |",
        "| --- | --- | --- |",
        f"| false alarm within {NIGHTS} unchanged nights (any case or the suite) | {rate(*changes['false_alarms'])} | "
        "<= 5 % |",
        f"| runs after the change until the alarm, per case: median | "
        f"{quantile_ci(changes['latencies'], 0.5, rng)} | <= 8 |",
        f"| ... 90th percentile | {quantile_ci(changes['latencies'], 0.9, rng)} | |",
        f"| ... the suite series: median | {quantile_ci(changes['latencies_suite'], 0.5, rng)} | |",
        f"| cases caught within the {NIGHTS} nights | {rate(*changes['detected'])} | |",
        f"| series alarmed before the change | {rate(*changes['early'])} | |",
        "",
        "### Adaptive A/B (`ab`, 8 then 16 and 24 pairs while unclear)",
        "",
        "Sessions resampled from measured adjacent pairs (each pair kept whole: its runs were taken one right after "
        f"the other, order alternating): {len(slow_pairs)} unchanged/slowed pairs, {len(same_pairs)} unchanged pairs.",
        "",
        "| question | now | before | target |",
        "| --- | --- | --- | --- |",
    ]
    if ab_slow:
        pairs, mins = ab_slow["pairs"], ab_slow["minutes"]
        lines += [f"| 10 % slowdown caught, per case | {rate(*ab_slow['cases'])} | {OLD['ab']} | >= 90 % |",
                  f"| pairs used per case (median, 90th pct) | {np.median(pairs):.0f}, {np.quantile(pairs, 0.9):.0f} | 4 | |",
                  f"| session minutes (median, 90th pct) | {np.median(mins):.0f}, {np.quantile(mins, 0.9):.0f} | 5 | |"]
    if ab_same:
        lines += [f"| false alarm per session (A/A) | {rate(*ab_same['sessions'])} | | <= 5 % |",
                  f"| false alarms per case (A/A) | {rate(*ab_same['cases'])} | | |",
                  f"| A/A pairs used per case (median) | {np.median(ab_same['pairs']):.0f} | | |"]
    lines += [
        "",
        "### Spread of a case's run value over the unchanged runs",
        "",
        "Between-run sd of the log run value; a process's value is the mean of its best half of rounds (now) or "
        "their 20 %-trimmed mean (before).",
        "",
        "| case | runs | raw, best half | / control | raw, 20 %-trimmed | between processes in a run |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
        *[f"| `{s['case_id']}` | {s['runs']} | {_pct(s['raw'])} | {_pct(s['control'])} | {_pct(s['trimmed'])} | "
          f"{_pct(s['within'])} |" for s in spread],
        "",
        f"Before (README): {OLD['spread_raw']} raw, {OLD['spread_control']} / control.",
        "",
    ]
    text = "\n".join(lines)
    (out / "summary.md").write_text(text, encoding="utf-8")
    return text
