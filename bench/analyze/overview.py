"""The first screen: the questions a user brings to a run, each answered in one line with its number and
interval, from the tables ``derived`` already holds (no new comparison is made here).

1. **ready** — is this setup ready? The doctor's verdict (``environment.frameworks.verdict``) and whether any
   failure is left once known framework limitations are set apart (bench.analyze.limitations).
2. **scope** — what can this run tell? Real GPUs, or a CPU with simulated devices (bench.analyze.summary).
3. **best** — the best configuration per backend (``best_configurations``, the one source of every "best"
   on the page) with its value, interval and share of the device's peak, and against its runner-up.
4. **axes** — how much each axis changes the best configuration: the ``comparisons`` rows that have the
   best case on one side, as best / other (an interval that holds 1 reads "no measurable difference").
5. **time** — where the time goes at the best configuration's batch and precision (``where_the_time_goes``).
6. **cpu_predict** — which CPU-prediction path to use, in seconds for how many samples at which predict
   batch (``cpu_predict_ranking`` and the cases' ``predict_samples``).
7. **regression** — a run alone cannot say; the line says how to find out (``compare``, a history).

Plus the machine-speed line (``machine_speed.sentence``, issue 20) and the title's category.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from bench.analyze import text
from bench.analyze.frames import compiler
from bench.analyze.paired import axis_label

Row = Mapping[str, Any]
AXES = ("gpus", "global_batch", "precision", "jit_compile", "input", "steps_per_execution")
AXIS_NAMES = {"gpus": "GPUs", "global_batch": "batch", "precision": "precision", "jit_compile": "jit_compile",
              "input": "input", "steps_per_execution": "steps_per_execution"}
# Files from before the input axis fed fit a tf.data pipeline or a cycling PyDataset: "unrecorded", never taken for
# device input (bench.analyze.bottleneck's rule).
DEFAULTS = {"input": "unrecorded", "steps_per_execution": 1, "workers": 1, "keras": "keras3"}
NO_DRIFT = ("Machine speed during the run: not derived for this file (each case ran in one process and no "
            "per-process control analysis is stored), so drift cannot be told from a case's own noise.")


def _params(case: Row) -> dict[str, Any]:
    return {**DEFAULTS, **(case.get("params") or {})}


def _value_text(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def configuration(case: Row) -> str:
    """"1 GPU · batch 512 · float32 · XLA off · input device · spe 1"."""
    p = _params(case)
    gpus = int(p.get("gpus") or 1)
    jit = p.get("jit_compile")
    resolved = (case.get("metrics") or {}).get("jit_compile_resolved")
    jit_text = ("auto" + (f"→{'on' if resolved else 'off'}" if isinstance(resolved, bool) else "")) if jit == "auto" \
        else ("on" if jit else "off")
    return (f"{gpus} GPU{'s' if gpus != 1 else ''} · batch {p.get('global_batch')} · {p.get('precision')} · "
            f"{compiler(p.get('backend'))} {jit_text} · input {p.get('input')} · spe {p.get('steps_per_execution')}")


def _line(key: str, question: str, answer: str, level: str = "info", **values: Any) -> dict[str, Any]:
    return {"key": key, "question": question, "answer": answer, "level": level, "values": values}


# --------------------------------------------------------------------------- 1, 2: ready, scope


def ready(header: Row, failures: Mapping[str, Any]) -> dict[str, Any]:
    verdict = (((header.get("environment") or {}).get("frameworks") or {}).get("verdict")) or {}
    known, broken = failures.get("known") or {}, failures.get("failures") or []
    known_cases = sum(len(k.get("cases") or []) for k in known.values())
    issues = ", ".join(k["issue"] or k["title"] for k in known.values())
    tail = (f"; {len(broken)} case(s) failed for reasons no known limitation explains — see Cases" if broken else
            f"; no unexplained failure ({known_cases} case(s) hit known framework limitations: {issues})" if known_cases
            else "; every case that ran finished")
    if not verdict:
        return _line("ready", "Is this setup ready?", "Not checked: this file has no doctor verdict (run python -m "
                     "bench doctor)" + tail + ".", "warn" if broken else "unknown", failures=len(broken))
    runnable = bool(verdict.get("runnable"))
    level = "bad" if not runnable or broken else "ok"
    answer = f"{'Yes' if runnable else 'No'} — {verdict.get('line')}".rstrip(".") + tail + "."
    return _line("ready", "Is this setup ready?", answer, level, runnable=runnable, failures=len(broken))


def scope(category: Mapping[str, Any]) -> dict[str, Any]:
    level = "ok" if category.get("devices") == "real GPU" else "warn"
    return _line("scope", "What can this run tell?", category["sentence"], level, devices=category.get("devices"),
                 data=category.get("data"))


# --------------------------------------------------------------------------- 3, 4: best, axes


def _by_id(rows: Sequence[Row]) -> dict[str, Row]:
    return {row["case_id"]: row for row in rows}


def best_line(best_rows: Sequence[Row], comparisons: Sequence[Row], summary: Mapping[str, Row],
              cases: Mapping[str, Row]) -> dict[str, Any]:
    parts, values = [], {}
    for best in best_rows:
        case, row = cases.get(best["case_id"]), summary.get(best["case_id"]) or {}
        if case is None:
            continue
        value = row.get("value") or best.get("samples_per_second")
        part = f"{best['backend']}: {configuration(case)} — {text.rate_interval(value, row.get('ci_low'), row.get('ci_high'))}"
        if row.get("mfu") is not None:
            part += f", {text.share(row['mfu'])} of the {row['peak_kind']} peak"
        runner = next((c for c in comparisons if c.get("kind") == "best" and c.get("a_case_id") == best["case_id"]),
                      None)
        if runner is not None and runner.get("ratio") is not None:
            if runner.get("ci_low") is None:
                part += f"; {runner['ratio']:.2f}× the runner-up, one process each: not told apart"
            elif runner.get("verdict") == "best" or runner["ci_low"] > 1:
                part += f"; {text.ratio_interval(runner)} the runner-up"
            else:
                part += f"; tied with the runner-up ({text.ratio_interval(runner)}: the interval holds 1)"
        parts.append(part)
        values[best["backend"]] = {"case_id": best["case_id"], "value": value, "ci_low": row.get("ci_low"),
                                   "ci_high": row.get("ci_high"), "mfu": row.get("mfu")}
    answer = "; ".join(parts) if parts else "Not measured: no training case finished."
    return _line("best", "Best configuration", answer, "info" if parts else "unknown", backends=values)


def _differs_only_in(a: Row, b: Row, axis: str) -> bool:
    pa, pb = _params(a), _params(b)
    keys = set(pa) | set(pb)
    return (repr(pa.get(axis)) != repr(pb.get(axis))
            and all(repr(pa.get(k)) == repr(pb.get(k)) for k in keys if k != axis))


def _effect(row: Row, best_id: str) -> tuple[str, str, float, float | None, float | None, str]:
    """(best's label, the other's label, best / other, interval, verdict) from a comparison with best on a side."""
    low, high = row.get("ci_low"), row.get("ci_high")
    if row["a_case_id"] == best_id:
        return row["a_label"], row["b_label"], row["ratio"], low, high, row.get("verdict") or ""
    flipped = {"faster": "slower", "slower": "faster"}.get(row.get("verdict") or "", row.get("verdict") or "")
    return (row["b_label"], row["a_label"], 1 / row["ratio"], 1 / high if high else None, 1 / low if low else None,
            flipped)


def _effect_text(effect: tuple[str, str, float, float | None, float | None, str]) -> str:
    """"batch 1024 vs 128: 2.85×", "mixed_bfloat16 vs float32: 1.31× [1.22, 1.40]", "... no measurable
    difference (0.99× [0.95, 1.03])"."""
    mine, other, ratio, low, high, verdict = effect
    word = mine.split(" ", 1)[0]
    if " " in mine and other.startswith(word + " "):
        other = other[len(word) + 1:]
    interval = f"{ratio:.2f}×" if low is None or high is None else f"{ratio:.2f}× [{low:.2f}, {high:.2f}]"
    if verdict == "no measurable difference":
        return f"{mine} vs {other}: no measurable difference ({interval})"
    return f"{mine} vs {other}: {interval}"


def axes_line(best_rows: Sequence[Row], comparisons: Sequence[Row], cases: Sequence[Row],
              failures: Mapping[str, Row]) -> dict[str, Any]:
    by_id = _by_id(cases)
    parts, values = [], {}
    for best in best_rows:
        case = by_id.get(best["case_id"])
        if case is None:
            continue
        backend = best["backend"]
        train = [c for c in cases if c.get("suite") == "train" and _params(c).get("backend") == backend
                 and _params(c).get("workers") == 1 and _params(c).get("keras") == "keras3"]
        effects, fixed, alone = [], [], []
        intervals = True
        for axis in AXES:
            rows = [r for r in comparisons if r.get("axis") == axis and r.get("kind") in ("axis", "scaling")
                    and r.get("ratio") and best["case_id"] in (r.get("a_case_id"), r.get("b_case_id"))]
            name = compiler(backend) if axis == "jit_compile" else AXIS_NAMES[axis]
            if rows:
                shown = sorted((_effect(r, best["case_id"]) for r in rows), key=lambda e: -abs(e[2] - 1))[:2]
                intervals = intervals and all(e[3] is not None for e in shown)
                effects.append(", ".join(_effect_text(e) for e in shown))
                values[f"{backend}/{axis}"] = [{"best": e[0], "other": e[1], "ratio": e[2], "ci_low": e[3],
                                                "ci_high": e[4], "verdict": e[5]} for e in shown]
                continue
            neighbours = [c for c in train if _differs_only_in(c, case, axis)]
            failed = [failures[c["case_id"]] for c in neighbours if c["case_id"] in failures]
            if failed:
                f = failed[0]
                label = axis_label(axis, _params(by_id[f["case_id"]]).get(axis))
                why = (f"known limitation {f['issue'] or f['title']}" if f["kind"] == "known limitation"
                       else (f.get("reason_short") or f["kind"]).split(";")[0])
                effects.append(f"{label} {f['status']} ({why})")
                values[f"{backend}/{axis}"] = {"neighbour": f["case_id"], "outcome": f["kind"]}
            elif len({repr(_params(c).get(axis)) for c in train}) <= 1:
                fixed.append(name)
            else:
                alone.append(name)
        line = f"{backend}: " + ("; ".join(effects) if effects else "no axis varied around the best")
        notes = ([] if intervals or not effects else ["one process per case: no intervals"]) + (
            [f"no case differs from the best in {', '.join(alone)} alone"] if alone else []) + (
            [f"not varied: {', '.join(fixed)}"] if fixed else [])
        if notes:
            line += f" ({'; '.join(notes)})"
        parts.append(line)
    answer = " | ".join(parts) if parts else "Not measured: no training case finished."
    return _line("axes", "What each axis changes (best / other)", answer, "info" if parts else "unknown", **values)


# --------------------------------------------------------------------------- 5: where the time goes


def time_line(best_rows: Sequence[Row], time_rows: Sequence[Row], summary: Mapping[str, Row],
              cases: Mapping[str, Row]) -> dict[str, Any]:
    parts, values = [], {}
    for best in best_rows:
        p = _params(cases.get(best["case_id"]) or {})
        rows = [r for r in time_rows if r["backend"] == best["backend"]]
        row = next((r for r in rows if r["global_batch"] == p.get("global_batch") and r["precision"] == p.get("precision")),
                   max(rows, key=lambda r: r.get("best_samples_per_second") or 0, default=None))
        if row is None:
            continue
        numbers = []
        if row.get("native_ratio") is not None:
            if row.get("native_ratio_ci_low") is None:
                numbers.append(f"Keras at {row['native_ratio']:.2f}× the native loop (one process: no interval)")
            else:
                numbers.append(f"Keras at {row['native_ratio']:.2f}× the native loop [{row['native_ratio_ci_low']:.2f}, "
                               f"{row['native_ratio_ci_high']:.2f}]")
        if row.get("utilization_pct") is not None:
            numbers.append(f"GPU busy {row['utilization_pct']:.0f} %")
        if row.get("device_input_gain") is not None:
            numbers.append(f"device input {row['device_input_gain']:.2f}× {row['host_input_best']}")
        if row.get("spe_gain") is not None:
            numbers.append(f"steps_per_execution {row['spe_best']} {row['spe_gain']:.2f}× spe 1")
        mfu = (summary.get(row["best_case_id"]) or {}).get("mfu")
        if mfu is not None:
            numbers.append(f"MFU {text.share(mfu)}")
        where = f"{row['backend']} batch {row['global_batch']} {row['precision']}"
        verdict = row.get("bottleneck") or "not enough to tell (add the native suite)"
        parts.append(f"{where}: {verdict}" + (f" — {', '.join(numbers)}" if numbers else ""))
        values[row["backend"]] = {"bottleneck": row.get("bottleneck"), "native_ratio": row.get("native_ratio"),
                                  "mfu": mfu}
    answer = "; ".join(parts) if parts else "Not measured: no one-GPU training case finished."
    return _line("time", "Where the time goes", answer, "info" if parts else "unknown", **values)


# --------------------------------------------------------------------------- 6: CPU prediction


def _batches(values: Sequence[Any]) -> str:
    found = sorted({int(v) for v in values if isinstance(v, (int, float))})
    if not found:
        return "?"
    return f"{found[0]:,}" if len(found) == 1 else f"{found[0]:,}–{found[-1]:,}"


def _span(low: Any, high: Any) -> str:
    a, b = text.seconds(low), text.seconds(high)
    return a if a == b else f"{a}–{b}"


def cpu_line(ranking: Sequence[Row], cases: Sequence[Row], failures: Mapping[str, Row]) -> dict[str, Any]:
    cpu = [c for c in cases if c.get("suite") == "cpu_predict"]
    if not cpu:
        return _line("cpu_predict", "Which CPU-prediction path?", 'Not measured: add "cpu_predict" to suites.',
                     "unknown")
    parts, values = [], {}
    for backend in dict.fromkeys(_params(c).get("backend") for c in cpu):
        mine = [c for c in cpu if _params(c).get("backend") == backend]
        samples = {(c.get("metrics") or {}).get("predict_samples") for c in mine} - {None}
        n = f"{next(iter(samples)):,} samples" if len(samples) == 1 else "the test images"
        rows = {r["method"]: r for r in ranking if (r.get("backend") or backend) == backend}
        naive = rows.get("naive")
        naive_cases = [c for c in mine if _params(c).get("method") == "naive"]
        unit = f"prepare + first call + one steady call over {n}, predict batch {_batches([_params(c).get('predict_batch') for c in mine])}"
        if naive and naive["ok"] == naive["settings"] and naive["ok"]:
            parts.append(f"{backend}: the naive path works — {_span(naive['total_s_min'], naive['total_s_max'])} "
                         f"({unit})")
            values[backend] = {"method": "naive", "total_s_min": naive["total_s_min"], "total_s_max": naive["total_s_max"]}
            continue
        ok = [r for r in ranking if (r.get("backend") or backend) == backend and r["method"] != "naive"
              and r.get("rank") is not None]
        why = ""
        known = [failures[c["case_id"]] for c in naive_cases if c["case_id"] in failures]
        if known:
            f = known[0]
            why = f"; naive {f['status']} ({'known limitation ' + (f['issue'] or f['title']) if f['kind'] == 'known limitation' else f['kind']})"
        if not ok:
            parts.append(f"{backend}: no path finished correctly on the CPU{why}")
            values[backend] = {"method": None}
            continue
        top = ok[0]
        parts.append(f"{backend}: use {top['method']} — {_span(top['total_s_min'], top['total_s_max'])} ({unit}){why}")
        values[backend] = {"method": top["method"], "total_s_min": top["total_s_min"], "total_s_max": top["total_s_max"]}
    return _line("cpu_predict", "Which CPU-prediction path?", "; ".join(parts), "info", **values)


# --------------------------------------------------------------------------- 7: regression, drift


def regression_line(run_id: str | None) -> dict[str, Any]:
    run = f"results/{run_id}.json" if run_id else "RUN.json"
    return _line("regression", "Did anything regress?",
                 f"Not checked: one run cannot say. Compare it — python -m bench compare BASELINE {run} (a history "
                 "from python -m bench promote judges between-run drift) — and pass the result to python -m bench "
                 "report --baseline-comparison FILE to see it here.", "unknown", command="compare")


def drift_sentence(machine_speed: Mapping[str, Any] | None) -> str:
    return (machine_speed or {}).get("sentence") or NO_DRIFT


# --------------------------------------------------------------------------- together


def overview(header: Row, cases: Sequence[Row], derived: Mapping[str, Any]) -> dict[str, Any]:
    """``derived.overview``: the title, the category and the first screen's lines, in order."""
    category = derived.get("category") or {}
    summary = _by_id(derived.get("summary") or [])
    failures = _by_id(derived.get("failures") or [])
    by_id = _by_id(cases)
    best_rows = derived.get("best_configurations") or []
    comparisons = derived.get("comparisons") or []
    lines = [
        ready(header, derived.get("failure_summary") or {}),
        scope(category),
        best_line(best_rows, comparisons, summary, by_id),
        axes_line(best_rows, comparisons, cases, failures),
        time_line(best_rows, derived.get("where_the_time_goes") or [], summary, by_id),
        cpu_line(derived.get("cpu_predict_ranking") or [], cases, failures),
        regression_line(header.get("run_id")),
    ]
    return {"title": category.get("title") or "Benchmark", "category": category.get("label"),
            "lines": lines, "drift": drift_sentence(derived.get("machine_speed"))}
