"""How well does the regression gate hold on this machine? Many short runs, then the gate's error rates.

A benchmark of the gate itself, not a timed test: it makes repeated ``python -m bench run`` runs of a
gate-sized config (``configs/gate.toml``: four Keras train cases, about a minute each), some with an
injected 10 % slowdown of the training step (``[faults] slowdown``) and some while a busy process loads
the machine, then asks each comparison method the question CI would ask of every run:

* **A/A**: an unchanged run against its baseline. Any case flagged is a false alarm.
* **slowdown**: a run whose training steps are 10 % slower. Each train case flagged is a detection.

Methods, side by side: ``rounds`` (the old gate: Yuen's trimmed t-test over the rounds of one baseline
run, the most recent normal one), and the between-run test against a history of the previous
``--history`` normal runs, raw and normalised by the control workload (the new default).

Usage::

    python scripts/gate_benchmark.py collect --out gate-bench --runs 41   # resumable; ~1 min per run
    python scripts/gate_benchmark.py analyze --out gate-bench             # tables, any time

``collect`` keeps every run file under ``OUT/runs/`` and one line per finished run in
``OUT/manifest.jsonl``; rerunning it continues where it stopped (the schedule is fixed by run index).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

WARMUP = ("normal", "normal", "normal+load", "normal", "normal")  # the first history, before any evaluation
CYCLE = ("normal", "slow", "normal+load", "slow+load", "normal", "slow")  # then this, over and over
SLOWDOWN = 0.10


def schedule(index: int) -> tuple[str, bool]:
    """(kind, loaded) of run ``index``: ``kind`` is ``normal`` or ``slow``."""
    label = WARMUP[index] if index < len(WARMUP) else CYCLE[(index - len(WARMUP)) % len(CYCLE)]
    kind, _, load = label.partition("+")
    return kind, bool(load)


# --------------------------------------------------------------------------- collect


def _busy() -> subprocess.Popen:
    """Another job on the machine: one process spinning on a core for as long as the run lasts."""
    return subprocess.Popen([sys.executable, "-c", "while True: pass"], stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)


def _stop(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


def _configs(out: Path, config: Path) -> dict[str, Path]:
    text = config.read_text(encoding="utf-8")
    slow = out / f"{config.stem}-slow.toml"
    slow.write_text(text + f"\n# Written by scripts/gate_benchmark.py: the known slowdown under test.\n"
                           f"[faults]\nslowdown = {SLOWDOWN}\nslowdown_cases = \"train/*\"\n", encoding="utf-8")
    return {"normal": config, "slow": slow}


def _manifest(out: Path) -> list[dict[str, Any]]:
    path = out / "manifest.jsonl"
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def collect(out: Path, runs: int, config: Path) -> None:
    out, config = out.resolve(), config.resolve()  # the runs are started from the repository root
    out.mkdir(parents=True, exist_ok=True)
    configs = _configs(out, config)
    done = {entry["index"] for entry in _manifest(out)}
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    for index in range(runs):
        if index in done:
            continue
        kind, loaded = schedule(index)
        load = _busy() if loaded else None
        started = time.monotonic()
        load_before = os.getloadavg()[0]
        try:
            result = subprocess.run([sys.executable, "-m", "bench", "run", "--config", str(configs[kind]),
                                     "--results-dir", str(out / "runs"), "--quiet"],
                                    cwd=REPO, env=env, capture_output=True, text=True, timeout=1800)
        finally:
            if load is not None:
                _stop(load)
        wall_s = time.monotonic() - started
        lines = result.stdout.strip().splitlines()
        if result.returncode != 0 or not lines or not lines[-1].endswith(".json"):
            print(f"run {index} ({kind}) failed with exit {result.returncode}: {result.stderr.strip()[-500:]}",
                  file=sys.stderr)
            sys.exit(1)
        entry = {"index": index, "kind": kind, "loaded": loaded, "run": str(Path(lines[-1]).resolve()),
                 "finished_utc": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
                 "wall_s": round(wall_s, 1), "loadavg_1min_before": round(load_before, 2),
                 "loadavg_1min_after": round(os.getloadavg()[0], 2)}
        with open(out / "manifest.jsonl", "a", encoding="utf-8") as fh:
            fh.write(json.dumps(entry) + "\n")
        print(f"run {index + 1}/{runs}: {kind}{' +load' if loaded else ''} in {wall_s:.0f} s -> {entry['run']}",
              flush=True)


# --------------------------------------------------------------------------- analyze

METHODS = {
    # name: (how, settings) — "rounds" against the newest normal run, else against the history
    "rounds (old default)": ("rounds", {"normalize": "none", "alpha": 0.05}),
    "rounds / control": ("rounds", {"normalize": "control", "alpha": 0.05}),
    "history, raw": ("history", {"normalize": "none"}),
    "history / control (new default)": ("history", {"normalize": "control"}),
}


def _load(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    from bench.store.results import load_run

    return [dict(entry, doc=load_run(entry["run"])) for entry in sorted(entries, key=lambda e: e["index"])]


def evaluate(runs: list[dict[str, Any]], window: int, min_runs: int) -> list[dict[str, Any]]:
    """Every run after the warm-up, judged by every method against the normal runs before it."""
    from bench.analyze.compare import CompareSettings, compare_runs
    from bench.analyze.history import compare_history
    from bench.analyze.regression import DEFAULT_HISTORY_ALPHA

    out = []
    for j, entry in enumerate(runs):
        before = [r for r in runs[:j] if r["kind"] == "normal"]
        if len(before) < min_runs:
            continue
        history = before[-window:]
        result = {"index": entry["index"], "kind": entry["kind"], "loaded": entry["loaded"],
                  "baseline_loaded": before[-1]["loaded"], "methods": {}}
        for name, (how, options) in METHODS.items():
            settings = CompareSettings(normalize=options["normalize"],
                                       alpha=options.get("alpha", DEFAULT_HISTORY_ALPHA))
            if how == "rounds":
                document = compare_runs(before[-1]["doc"], entry["doc"], settings)
            else:
                document = compare_history([r["doc"] for r in history], entry["doc"], settings, min_runs)
            rows = [r for r in document["rows"] if r["suite"] == "train"]
            result["methods"][name] = {
                "flagged": sorted(r["case_id"] for r in rows if r["verdict"] == "regression"),
                "cases": len(rows),
                "ratios": {r["case_id"]: r["ratio"] for r in rows},
            }
        out.append(result)
    return out


def _rate(hits: int, total: int) -> str:
    return f"{hits}/{total} ({hits / total:.0%})" if total else "-"


def tables(results: list[dict[str, Any]]) -> str:
    lines = ["| method | A/A pairs with a false alarm | A/A case-level false alarms | slowdown pairs with every "
             "train case flagged | slowdown case-level detection |", "| --- | ---: | ---: | ---: | ---: |"]
    aa = [r for r in results if r["kind"] == "normal"]
    slow = [r for r in results if r["kind"] == "slow"]
    for name in METHODS:
        fa_pairs = sum(bool(r["methods"][name]["flagged"]) for r in aa)
        fa_cases = sum(len(r["methods"][name]["flagged"]) for r in aa)
        aa_cases = sum(r["methods"][name]["cases"] for r in aa)
        det_pairs = sum(len(r["methods"][name]["flagged"]) == r["methods"][name]["cases"] for r in slow)
        det_cases = sum(len(r["methods"][name]["flagged"]) for r in slow)
        slow_cases = sum(r["methods"][name]["cases"] for r in slow)
        lines.append(f"| {name} | {_rate(fa_pairs, len(aa))} | {_rate(fa_cases, aa_cases)} | "
                     f"{_rate(det_pairs, len(slow))} | {_rate(det_cases, slow_cases)} |")
    split = ["", "By whether the judged run had the added busy process (A/A: pairs with a false alarm; slowdown: pairs with every case flagged):", "",
             "| method | A/A, no added load | A/A, + busy process | slowdown, no added load | slowdown, + busy process |", "| --- | ---: | ---: | ---: | ---: |"]
    for name in METHODS:
        cells = []
        for group, everything in ((aa, False), (slow, True)):
            for loaded in (False, True):
                part = [r["methods"][name] for r in group if r["loaded"] == loaded]
                hits = sum(len(m["flagged"]) == m["cases"] if everything else bool(m["flagged"]) for m in part)
                cells.append(_rate(hits, len(part)))
        split.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines + split)


def spread(runs: list[dict[str, Any]]) -> str:
    """Between-run standard deviation of each case's run value, raw and normalised, over the normal runs."""
    import numpy as np

    from bench.analyze.compare import case_samples
    from bench.analyze.normalize import control_value
    from bench.analyze.values import run_value

    normal = [r["doc"] for r in runs if r["kind"] == "normal"]
    slow = [r["doc"] for r in runs if r["kind"] == "slow"]
    lines = ["| case | between-run sd, raw | sd / control | slow runs vs normal runs (raw, geometric means) |",
             "| --- | ---: | ---: | ---: |"]
    for case in normal[0]["cases"]:
        def values(docs: list[dict[str, Any]], norm: bool, case_id: str = case["case_id"]) -> list[float]:
            out = []
            for doc in docs:
                c = next((x for x in doc["cases"] if x["case_id"] == case_id and x["status"] == "ok"), None)
                if c is not None and (not norm or control_value(c)):
                    v = run_value(case_samples(c, "run"))
                    out.append(v / control_value(c) if norm else v)
            return out

        raw, norm = np.log(values(normal, False)), np.log(values(normal, True))
        slow_raw = np.log(values(slow, False))
        shift = float(np.exp(slow_raw.mean() - raw.mean()) - 1) if len(slow_raw) else float("nan")
        lines.append(f"| `{case['case_id']}` | {raw.std(ddof=1):.1%} | {norm.std(ddof=1):.1%} | {shift:+.1%} |")
    return "\n".join(lines)


def adjacent_pairs(runs: list[dict[str, Any]]) -> str:
    """What pairing buys here: each slow run against the normal run right before it, per case."""
    import numpy as np

    from bench.analyze.compare import case_samples
    from bench.analyze.values import run_value

    def value(doc: dict[str, Any], case_id: str) -> float | None:
        c = next((x for x in doc["cases"] if x["case_id"] == case_id and x["status"] == "ok"), None)
        return run_value(case_samples(c, "run")) if c else None

    lines = ["| case | slow / previous normal run: mean change | sd of the pair log ratios | pairs | pairs needed for a "
             "one-sided t-test to see 10 % (alpha 0.05, power 0.9) |", "| --- | ---: | ---: | ---: | ---: |"]
    for case in runs[0]["doc"]["cases"]:
        diffs = []
        for before, after in zip(runs, runs[1:], strict=False):
            if before["kind"] == "normal" and after["kind"] == "slow":
                a, b = value(before["doc"], case["case_id"]), value(after["doc"], case["case_id"])
                if a and b:
                    diffs.append(np.log(b / a))
        d = np.asarray(diffs)
        sd = float(d.std(ddof=1)) if len(d) > 1 else float("nan")
        needed = ((1.645 + 1.282) * sd / np.log(1 / 0.9)) ** 2 if sd == sd else float("nan")
        lines.append(f"| `{case['case_id']}` | {np.exp(d.mean()) - 1:+.1%} | {sd:.1%} | {len(d)} | {needed:.0f} |")
    return "\n".join(lines)


def _load_line(entries: list[dict[str, Any]]) -> str:
    """What else ran on the machine, as its 1-minute load average at the start of each run said."""
    loads = [e["loadavg_1min_before"] for e in entries if isinstance(e.get("loadavg_1min_before"), (int, float))]
    if not loads:
        return ""
    walls = [e["wall_s"] for e in entries]
    return (f"Load average (1 min) at run starts: {min(loads):.2f}-{max(loads):.2f} (median "
            f"{sorted(loads)[len(loads) // 2]:.2f}) on {os.cpu_count()} CPUs; runs took {min(walls):.0f}-{max(walls):.0f} s.")


def analyze(out: Path, entries: list[dict[str, Any]], window: int | None) -> str:
    from bench.analyze.regression import DEFAULT_HISTORY_WINDOW, MIN_HISTORY_RUNS

    runs = _load(entries)
    results = evaluate(runs, window or DEFAULT_HISTORY_WINDOW, MIN_HISTORY_RUNS)
    (out / "evaluation.json").write_text(json.dumps(results, indent=1), encoding="utf-8")
    wall = sum(e["wall_s"] for e in entries)
    loaded = [e["index"] for e in entries if e["loaded"]]
    kinds = {k: sum(e["kind"] == k for e in entries) for k in ("normal", "slow")}
    text = "\n".join([
        f"## Gate benchmark: {len(entries)} runs ({kinds['normal']} normal, {kinds['slow']} with a "
        f"{SLOWDOWN:.0%} injected slowdown), {wall / 60:.0f} min of runs",
        "",
        f"Runs with an added busy process: {', '.join(map(str, loaded)) or 'none'} (run indexes). Evaluated: "
        f"{sum(r['kind'] == 'normal' for r in results)} A/A pairs and {sum(r['kind'] == 'slow' for r in results)} "
        f"slowdown pairs (every run after the first {MIN_HISTORY_RUNS} normal ones; rounds: against the newest "
        f"normal run before it; history: the newest {window or DEFAULT_HISTORY_WINDOW} normal runs before it).",
        _load_line(entries),
        "",
        tables(results),
        "",
        spread(runs),
        "",
        adjacent_pairs(runs),
        "",
    ])
    (out / "summary.md").write_text(text, encoding="utf-8")
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    c = sub.add_parser("collect", help="make (more) runs; resumable")
    c.add_argument("--out", type=Path, default=Path("gate-bench"))
    c.add_argument("--runs", type=int, default=41, help="total runs wanted, warm-up included (default 41)")
    c.add_argument("--config", type=Path, default=REPO / "configs" / "gate.toml")
    a = sub.add_parser("analyze", help="the false-alarm and detection tables from the runs so far")
    a.add_argument("--out", type=Path, default=Path("gate-bench"))
    a.add_argument("--history", type=int, default=None, help="history window (default: the gate's minimum)")
    args = parser.parse_args(argv)
    if args.command == "collect":
        collect(args.out, args.runs, args.config)
        return 0
    print(analyze(args.out, _manifest(args.out), args.history))
    return 0


if __name__ == "__main__":
    sys.exit(main())
