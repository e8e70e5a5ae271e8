"""Do the suite's ratios hold while the machine drifts? Repeated real runs, the old order beside the new.

A benchmark of the measuring protocol itself, not a timed test. It runs ``configs/drift.toml`` (four
TensorFlow train cases: float32 / mixed_bfloat16 x numpy / device input) many times under three variants:

* ``old``: the one-process order of earlier versions — ``order = "sequential"``, one process per case, 5
  rounds, the framework's default thread pools (``[threads] = 0``);
* ``new``: the new default — ``[measure] processes`` (4) interleaved processes of 3 rounds, paired by pass,
  one intra-op and one inter-op thread;
* ``threads``: the new order with the framework's default thread pools, to measure what the threads alone do;
* ``hashseed`` and ``arena``: the new default with ``PYTHONHASHSEED=0`` / ``MALLOC_ARENA_MAX=1``: other
  per-process effects, in fewer runs (``--aa-extra``);

and three scenarios:

* ``aa``: quiet runs, the variants alternating (old, new, threads, old, ...);
* ``slowdown``: from about halfway through the run, every process of the sweep is stopped 20 ms of every
  40 ms (SIGSTOP/SIGCONT): a virtual machine losing half its CPU, a slowdown that hits every case alike;
* ``contention``: from about halfway, a busy process spins on one core: the machine changes, ratios may
  really move, and the run must say so.

Four ratios per run: mixed_bfloat16 / float32 with numpy and with device input, device / numpy input in
float32 and in mixed_bfloat16 — read from ``derived.comparisons`` (the paired ratios and their 95 %
intervals; a one-process run's single ratio has none), and recomputed with each process divided by its
control workload to decide whether that helps (``bench.analyze.paired.NORMALIZE_BY_CONTROL``). ``analyze``
also reports the within-process round noise by the position a case had in its process (warm-up) and the
between-process spread per case for each thread setting.

Usage::

    python scripts/drift_benchmark.py collect --out drift-bench --aa 5 --slowdown 2 --contention 2
    python scripts/drift_benchmark.py analyze --out drift-bench

``collect`` appends one line per finished run to ``OUT/manifest.jsonl`` and skips runs already there, so it
can be stopped and continued. Run it on a quiet machine: other jobs are exactly what it measures.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import signal
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

CONFIG = REPO / "configs" / "drift.toml"
# variant -> (--set overrides, extra environment of the sweep and its workers)
VARIANTS: dict[str, tuple[list[str], dict[str, str]]] = {
    "old": (["measure.order=\"sequential\"", "measure.processes=1", "measure.rounds=5", "threads.intra_op=0",
             "threads.inter_op=0"], {}),
    "new": ([], {}),
    "threads": (["threads.intra_op=0", "threads.inter_op=0"], {}),
    # Other per-process effects, each on top of the new default: a fixed hash seed (dict and set order,
    # hence the order Keras and TensorFlow build things in), and glibc's allocator with one arena.
    "hashseed": ([], {"PYTHONHASHSEED": "0"}),
    "arena": ([], {"MALLOC_ARENA_MAX": "1"}),
}
RATIOS = (  # (label, axis, a label, b label, the context held fixed)
    ("mixed/float32, numpy input", "precision", "mixed_bfloat16", "float32", {"input": "numpy"}),
    ("mixed/float32, device input", "precision", "mixed_bfloat16", "float32", {"input": "device"}),
    ("device/numpy input, float32", "input", "input device", "input numpy", {"precision": "float32"}),
    ("device/numpy input, mixed", "input", "input device", "input numpy", {"precision": "mixed_bfloat16"}),
)
DUTY_S = 0.02  # stopped this long, then running this long: half the CPU


# --------------------------------------------------------------------------- collect


def _children(root: int) -> list[int]:
    """Every descendant of ``root`` (from /proc: parent pid is field 4 of /proc/PID/stat)."""
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat", encoding="ascii", errors="replace") as fh:
                    parents[int(entry)] = int(fh.read().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
    found, frontier = [], [root]
    while frontier:
        pid = frontier.pop()
        kids = [child for child, parent in parents.items() if parent == pid]
        found += kids
        frontier += kids
    return found


def _signal(pids: list[int], sig: signal.Signals) -> None:
    for pid in pids:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass


def _duty_cycle(root: int, stop: threading.Event) -> None:
    """SIGSTOP/SIGCONT the sweep's workers until ``stop``: a uniform 50 % slowdown."""
    while not stop.is_set():
        pids = _children(root)
        _signal(pids, signal.SIGSTOP)
        time.sleep(DUTY_S)
        _signal(pids, signal.SIGCONT)
        time.sleep(DUTY_S)
    _signal(_children(root), signal.SIGCONT)


def _busy() -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", "while True: pass"], stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)


def _one_run(out: Path, name: str, variant: str, scenario: str, half_s: float | None) -> dict[str, Any]:
    results = out / "runs" / name
    overrides, extra_env = VARIANTS[variant]
    command = [sys.executable, "-m", "bench", "run", "--config", str(CONFIG), "--results-dir", str(results),
               "--quiet", *[arg for s in overrides for arg in ("--set", s)]]
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""), **extra_env}
    started = time.monotonic()
    proc = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    stop, helper, busy = threading.Event(), None, None
    if scenario != "aa" and half_s is not None:
        if not _wait(proc, half_s):
            pass
        elif scenario == "slowdown":
            helper = threading.Thread(target=_duty_cycle, args=(proc.pid, stop), daemon=True)
            helper.start()
        else:
            busy = _busy()
    stdout, stderr = proc.communicate()
    stop.set()
    if helper is not None:
        helper.join()
    if busy is not None:
        os.killpg(busy.pid, signal.SIGKILL)
        busy.wait()
    wall = time.monotonic() - started
    if proc.returncode != 0:
        raise SystemExit(f"{name}: bench run exited {proc.returncode}: {stderr.strip()[-500:]}")
    return {"name": name, "variant": variant, "scenario": scenario, "file": stdout.strip().splitlines()[-1],
            "wall_s": wall, "disturbed_after_s": half_s if scenario != "aa" else None,
            "load1": os.getloadavg()[0]}


def _wait(proc: subprocess.Popen, seconds: float) -> bool:
    """Wait ``seconds`` or until the run ends; True if it is still running."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        time.sleep(0.1)
    return proc.poll() is None


def _manifest(out: Path) -> list[dict[str, Any]]:
    path = out / "manifest.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.is_file() else []


def collect(out: Path, aa: int, slowdown: int, contention: int, variants: list[str], extra: list[str],
            aa_extra: int) -> None:
    out.mkdir(parents=True, exist_ok=True)
    plan = [(f"aa-{i}-{v}", v, "aa") for i in range(aa) for v in variants + (extra if i < aa_extra else [])]
    disturbed = [v for v in ("old", "new") if v in variants]
    plan += [(f"slowdown-{i}-{v}", v, "slowdown") for i in range(slowdown) for v in disturbed]
    plan += [(f"contention-{i}-{v}", v, "contention") for i in range(contention) for v in disturbed]
    done = {row["name"] for row in _manifest(out)}
    for name, variant, scenario in plan:
        if name in done:
            continue
        half = None
        if scenario != "aa":
            quiet = [r["wall_s"] for r in _manifest(out) if r["scenario"] == "aa" and r["variant"] == variant]
            half = statistics.median(quiet) / 2 if quiet else 60.0
        print(f"{time.strftime('%H:%M:%S')} {name} ...", flush=True)
        row = _one_run(out, name, variant, scenario, half)
        with open(out / "manifest.jsonl", "a", encoding="utf-8") as fh:
            fh.write(json.dumps(row) + "\n")
        print(f"  {row['wall_s']:.0f} s, load {row['load1']:.2f}", flush=True)


# --------------------------------------------------------------------------- analyze


def _ratios(run: dict[str, Any], normalize: bool | None) -> dict[str, dict[str, Any]]:
    """label -> comparison row; ``normalize`` None reads the stored derived rows, else recomputes."""
    from bench.analyze import paired

    rows = run["derived"]["comparisons"] if normalize is None else paired.comparisons(run["cases"], normalize)
    found = {}
    for label, axis, a, b, context in RATIOS:
        for row in rows:
            if (row["axis"] == axis and row["a_label"] == a and row["b_label"] == b
                    and all(row["context"].get(k) == v for k, v in context.items())):
                found[label] = row
    return found


def _sd_log(values: list[float]) -> float | None:
    return statistics.stdev(math.log(v) for v in values) if len(values) > 1 else None


def _pct(value: float | None) -> str:
    return "—" if value is None else f"{100 * value:.1f} %"


def analyze(out: Path) -> None:
    from bench.store.results import load_run

    rows = _manifest(out)
    runs = {row["name"]: (row, load_run(row["file"])) for row in rows}
    print(f"# Drift benchmark: {len(runs)} runs of {CONFIG.name} ({out})\n")
    for normalize in (None, True):
        title = ("stored paired ratios (raw process values)" if normalize is None
                 else "the same runs, each process divided by its control workload")
        print(f"## A/A, {title}\n")
        print("| variant | ratio | runs | pooled | run-to-run sd of log ratio | runs whose 95 % interval holds the pooled ratio |")
        print("|---|---|---:|---:|---:|---:|")
        pooled: dict[tuple[str, str], float] = {}
        for variant in VARIANTS:
            quiet = [run for row, run in runs.values() if row["scenario"] == "aa" and row["variant"] == variant]
            if not quiet:
                continue
            for label, *_ in RATIOS:
                found = [r for r in (_ratios(run, normalize).get(label) for run in quiet) if r and r["ratio"]]
                if not found:
                    continue
                values = [r["ratio"] for r in found]
                pool = math.exp(statistics.fmean(math.log(v) for v in values))
                pooled[(variant, label)] = pool
                held = [r for r in found if r["ci_low"] is not None and r["ci_low"] <= pool <= r["ci_high"]]
                cover = f"{len(held)}/{len(found)}" if any(r["ci_low"] is not None for r in found) else "no intervals"
                print(f"| {variant} | {label} | {len(found)} | {pool:.3f} | {_pct(_sd_log(values))} | {cover} |")
        for scenario in ("slowdown", "contention"):
            disturbed = [(row, run) for row, run in runs.values() if row["scenario"] == scenario]
            if not disturbed:
                continue
            print(f"\n## {scenario}, {title}\n")
            print("| run | ratio | value [95 % interval] | vs quiet pooled | interval holds quiet pooled | verdict |")
            print("|---|---|---|---:|---|---|")
            for row, run in disturbed:
                for label, found in _ratios(run, normalize).items():
                    pool = pooled.get((row["variant"], label))
                    if found["ratio"] is None or pool is None:
                        continue
                    has = found["ci_low"] is not None
                    interval = f"[{found['ci_low']:.3f}, {found['ci_high']:.3f}]" if has else "(none)"
                    holds = ("yes" if found["ci_low"] <= pool <= found["ci_high"] else "no") if has else "—"
                    print(f"| {row['name']} | {label} | {found['ratio']:.3f} {interval} | "
                          f"{100 * (found['ratio'] / pool - 1):+.1f} % | {holds} | {found['verdict']} |")
        print()
    print("## What each disturbed run printed about the machine\n")
    for row, run in runs.values():
        if row["scenario"] != "aa" or row["name"].startswith("aa-0-"):
            speed = run["derived"].get("machine_speed") or {}
            flags = sum(1 for c in run["cases"] if c["flags"].get("machine_drift") or c["flags"].get("contention"))
            print(f"- {row['name']} ({row['wall_s']:.0f} s): {speed.get('sentence')} [{flags} case(s) flagged]")
    print("\n## Warm-up: within-process round CV by the case's position in its process\n")
    print("| variant | position 0 (first case) | positions 1-3 |")
    print("|---|---:|---:|")
    for variant in VARIANTS:
        by_position: dict[str, list[float]] = {"first": [], "rest": []}
        for row, run in runs.values():
            if row["variant"] != variant or row["scenario"] != "aa":
                continue
            for case in run["cases"]:
                m = case["metrics"]
                if not m.get("round_s"):  # not measured (a failed case)
                    continue
                for proc in m.get("processes") or []:
                    if proc.get("status", "ok") != "ok":
                        continue
                    rounds = [s for s, p in zip(m["round_s"], m["round_pass"], strict=True) if p == proc["pass_index"]]
                    if len(rounds) > 1 and proc.get("position") is not None:
                        cv = statistics.stdev(rounds) / statistics.fmean(rounds)
                        by_position["first" if proc["position"] == 0 else "rest"].append(cv)
        if by_position["first"]:
            print(f"| {variant} | {_pct(statistics.median(by_position['first']))} (n={len(by_position['first'])}) | "
                  f"{_pct(statistics.median(by_position['rest']))} (n={len(by_position['rest'])}) |")
    print("\n## Threads: spread between processes of one case (quiet runs), and throughput\n")
    print("| variant | case | between-process CV, median over runs | value, median over runs |")
    print("|---|---|---:|---:|")
    for variant in ("new", "threads", "hashseed", "arena"):
        per_case: dict[str, list[tuple[float, float]]] = {}
        for row, run in runs.values():
            if row["variant"] == variant and row["scenario"] == "aa":
                for stat in run["derived"].get("case_stats") or []:
                    if stat["between_process_cv"] is not None:
                        per_case.setdefault(stat["case_id"], []).append((stat["between_process_cv"], stat["value"]))
        for case_id, found in per_case.items():
            short = case_id.split("/")[4] + " " + case_id.split("/")[6]
            print(f"| {variant} | {short} | {_pct(statistics.median(v for v, _ in found))} | "
                  f"{statistics.median(s for _, s in found):,.0f} samples/s |")
    _page_faults(runs)


def _page_faults(runs: dict[str, tuple[dict[str, Any], dict[str, Any]]]) -> None:
    """Do processes that fault more run slower? Spearman's rank correlation over every process of the quiet
    runs, between its minor page faults per timed second and its value relative to the case's median process."""
    from scipy import stats

    from bench.analyze import paired

    print("\n## Page faults: per process, minor faults per timed second against its speed relative to the case\n")
    print("| variant | processes | faults/s, median | Spearman rho (faults, relative speed) | p |")
    print("|---|---:|---:|---:|---:|")
    for variant in VARIANTS:
        faults, speeds = [], []
        for row, run in runs.values():
            if row["variant"] != variant or row["scenario"] != "aa":
                continue
            for case in run["cases"]:
                values = paired.process_values(case)
                if len(values) < 2:
                    continue
                middle = statistics.median(values.values())
                for proc in case["metrics"].get("processes") or []:
                    machine = proc.get("machine") or {}
                    if machine.get("own_minor_faults") is None or not machine.get("window_s"):
                        continue
                    if proc["pass_index"] in values:
                        faults.append(machine["own_minor_faults"] / machine["window_s"])
                        speeds.append(values[proc["pass_index"]] / middle)
        if len(faults) > 3:
            rho, p = stats.spearmanr(faults, speeds)
            print(f"| {variant} | {len(faults)} | {statistics.median(faults):,.0f} | {rho:+.2f} | {p:.3f} |")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    c = sub.add_parser("collect")
    c.add_argument("--out", type=Path, required=True)
    c.add_argument("--aa", type=int, default=5)
    c.add_argument("--slowdown", type=int, default=2)
    c.add_argument("--contention", type=int, default=2)
    c.add_argument("--variants", default="old,new,threads")
    c.add_argument("--extra", default="hashseed,arena", help="more A/A variants, in the first --aa-extra rounds")
    c.add_argument("--aa-extra", type=int, default=3)
    a = sub.add_parser("analyze")
    a.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    if args.command == "collect":
        collect(args.out, args.aa, args.slowdown, args.contention, args.variants.split(","),
                [v for v in args.extra.split(",") if v], args.aa_extra)
    else:
        analyze(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
