"""How well does the regression gate hold on this machine? Measured runs, then every rate the gate promises.

A benchmark of the gate itself, not a timed test. ``collect`` makes repeated ``python -m bench run`` runs of
a gate-sized config (``configs/gate.toml``: four Keras train cases, 1 intra-op + 1 inter-op thread), in
adjacent pairs: an unchanged run next to one with an injected 10 % slowdown of the training step
(``[faults] slowdown``), in alternating order, and unchanged pairs; every third pair with a busy process
loading the box. ``analyze`` then asks each mode the question CI asks, on comparisons *resampled* from
those runs, through the real comparison code:

* **single run against a history** (``compare NAME``): false alarms per case and per suite run over
  ``--comparisons`` (300) comparisons, each a random unchanged run against a random history of 10 other
  unchanged runs; detection of a 10 % slowdown, the same with the judged run's cases made 10 % slower
  (the control untouched) and with the measured slowed runs;
* **change point** (``compare NAME --method changepoint``): 20 unchanged nights after a 10-run reference
  (false alarms), and series whose nights turn slow at a random night (the measured slowed runs): how many
  runs after the change the alarm comes, median and 90th percentile;
* **adaptive A/B** (``ab``): sessions resampled from the measured adjacent pairs, each pair kept whole (its
  two runs were taken one right after the other, in alternating order), 8 pairs then 16 and 24 while
  unclear: detection, false alarms, pairs and minutes used.

Every rate has a 95 % interval (Wilson's, with the number of distinct judged runs as its sample size:
comparisons resampled from the same runs are not independent, so the interval is as wide as the runs
allow). The tables print the previous session's figures beside the new ones.

Usage::

    python scripts/gate_benchmark.py collect --out gate-bench --runs 64   # resumable; each run well under a minute
    python scripts/gate_benchmark.py analyze --out gate-bench             # tables, any time (a few minutes)

``collect`` keeps every run under ``OUT/runs/`` and one line per finished run in ``OUT/manifest.jsonl``;
rerunning it continues where it stopped (the schedule is fixed by run index).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import fields
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

SLOWDOWN = 0.10
# Adjacent pairs, repeated: (first run, second run). "slow" has the injected slowdown.
PAIR_CYCLE = (("normal", "slow"), ("normal", "normal"), ("slow", "normal"), ("normal", "normal"))
LOADED_EVERY = 3  # every third pair runs next to a busy process
THREADS = {"TF_NUM_INTRAOP_THREADS": "1", "TF_NUM_INTEROP_THREADS": "1"}


def schedule(index: int) -> tuple[str, bool, int]:
    """(kind, loaded, pair) of run ``index``: kind ``normal`` or ``slow``; the two runs of a pair are adjacent."""
    pair = index // 2
    kind = PAIR_CYCLE[pair % len(PAIR_CYCLE)][index % 2]
    return kind, pair % LOADED_EVERY == LOADED_EVERY - 1, pair


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


def _overrides(processes: int | None) -> list[str]:
    """1 + 1 threads and the processes per case, as --set options where this checkout's config knows them."""
    from bench import config as bench_config

    sets: list[str] = []
    if hasattr(bench_config, "ThreadSettings"):
        sets += ["--set", "threads.intra_op=1", "--set", "threads.inter_op=1"]
    if processes is not None and "processes" in {f.name for f in fields(bench_config.MeasureSettings)}:
        sets += ["--set", f"measure.processes={processes}"]
    return sets


def _manifest(out: Path) -> list[dict[str, Any]]:
    path = out / "manifest.jsonl"
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _bench_run(config: Path, out: Path, extra: list[str], env: dict[str, str]) -> tuple[Path, float]:
    started = time.monotonic()
    result = subprocess.run([sys.executable, "-m", "bench", "run", "--config", str(config), "--results-dir",
                             str(out / "runs"), "--quiet", *extra], cwd=REPO, env=env, capture_output=True, text=True,
                            timeout=1800)
    lines = result.stdout.strip().splitlines()
    if result.returncode != 0 or not lines or not lines[-1].endswith(".json"):
        print(f"bench run failed with exit {result.returncode}: {result.stderr.strip()[-500:]}", file=sys.stderr)
        sys.exit(1)
    return Path(lines[-1]).resolve(), time.monotonic() - started


def _append(out: Path, entry: dict[str, Any]) -> None:
    with open(out / "manifest.jsonl", "a", encoding="utf-8") as fh:
        fh.write(json.dumps(entry) + "\n")


def collect(out: Path, runs: int, config: Path, processes: int | None) -> None:
    out, config = out.resolve(), config.resolve()  # the runs are started from the repository root
    out.mkdir(parents=True, exist_ok=True)
    configs = _configs(out, config)
    extra = _overrides(processes)
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""), **THREADS)
    entries = _manifest(out)
    # What one A/B process of each case costs: a one-case run per case, once (for the A/B minutes).
    listed = subprocess.run([sys.executable, "-m", "bench", "run", "--config", str(config), "--list", *extra],
                            cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    timed = {e["case_id"] for e in entries if e["kind"] == "unit"}
    for case_id in [line for line in listed.stdout.splitlines() if line.startswith("train/")]:
        if case_id in timed:
            continue
        path, wall_s = _bench_run(configs["normal"], out, [*extra, "-k", f"{case_id}"], env)
        _append(out, {"index": None, "kind": "unit", "case_id": case_id, "run": str(path), "wall_s": round(wall_s, 1)})
        print(f"one-case run of {case_id}: {wall_s:.0f} s", flush=True)
    done = {e["index"] for e in entries if e["kind"] != "unit"}
    for index in range(runs):
        if index in done:
            continue
        kind, loaded, pair = schedule(index)
        load = _busy() if loaded else None
        load_before = os.getloadavg()[0]
        try:
            path, wall_s = _bench_run(configs[kind], out, extra, env)
        finally:
            if load is not None:
                _stop(load)
        _append(out, {"index": index, "kind": kind, "loaded": loaded, "pair": pair, "run": str(path),
                      "finished_utc": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
                      "wall_s": round(wall_s, 1), "loadavg_1min_before": round(load_before, 2),
                      "loadavg_1min_after": round(os.getloadavg()[0], 2)})
        print(f"run {index + 1}/{runs}: {kind}{' +load' if loaded else ''} in {wall_s:.0f} s -> {path}", flush=True)


# --------------------------------------------------------------------------- analyze


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    c = sub.add_parser("collect", help="make (more) runs; resumable")
    c.add_argument("--out", type=Path, default=Path("gate-bench"))
    c.add_argument("--runs", type=int, default=64, help="total runs wanted (default 64: 48 unchanged, 16 slowed)")
    c.add_argument("--config", type=Path, default=REPO / "configs" / "gate.toml")
    c.add_argument("--processes", type=int, default=None,
                   help="fresh processes per case ([measure] processes; default: the config's, 2 in configs/gate.toml)")
    a = sub.add_parser("analyze", help="every rate, with 95 %% intervals, from the runs so far")
    a.add_argument("--out", type=Path, default=Path("gate-bench"))
    a.add_argument("--comparisons", type=int, default=300, help="resampled single-run comparisons per question")
    a.add_argument("--series", type=int, default=200, help="resampled change-point series per question")
    a.add_argument("--sessions", type=int, default=200, help="resampled A/B sessions per question")
    a.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.command == "collect":
        collect(args.out, args.runs, args.config, args.processes)
        return 0
    from scripts.gate_rates import analyze

    print(analyze(args.out, _manifest(args.out), args.comparisons, args.series, args.sessions, args.seed))
    return 0


if __name__ == "__main__":
    sys.exit(main())
