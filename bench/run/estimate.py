"""``--dry-run``: how long the planned cases should take, and what that estimate is made of.

An estimate, not a measurement. Train and native cases are sized by their config: calibration makes each
timed round last about ``1.1 x min_round_s`` (``bench.measure.protocol.calibrate``'s headroom), so a case is,
in each of its ``[measure] processes``, one untimed warm-up round, ``rounds`` such rounds, again as many
unmonitored rounds with ``[nvml] measure_overhead`` and a compile; once, the calibration trials (under ``0.5 x min_round_s``: they grow until one
lasts a fifth of it). What the config cannot say is allowed for with the constants below, from runs seen
with this suite. Where an earlier run of the same config on this host left a results file, its recorded
case durations are used instead.
"""

from __future__ import annotations

import json
import socket
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.config import BenchConfig

CALIBRATION_ROUNDS = 0.5  # calibration trials, in units of min_round_s
ROUND_HEADROOM = 1.1  # calibrate() aims 10 % above min_round_s
# First fit call: tracing, compilation and warmup_steps. 1-4 s per case on an H200 with XLA (the gpu-jax
# reference run's compile_s), 4-14 s for eager JAX; XLA on a CPU compiles for 20-40 s (configs/quick.toml).
COMPILE_S = 5.0
XLA_ON_CPU_S = 30.0
COMPILE_ON_CPU_S = 1.5  # no XLA, on a CPU: tf.function tracing (0.6-1.9 s in configs/quick.toml's runs)
# Starting one worker process: importing the framework and fixing its devices (4-7 s seen on a 2-core box).
WORKER_START_S = 8.0
# cpu_predict: training once per trained model (train_steps steps) and each method's prepare, first and
# steady predict calls; the gpu-jax reference run took 14 s for its first case and 0.1-4 s for the rest.
CPU_PREDICT_TRAIN_S = 10.0
CPU_PREDICT_CASE_S = 3.0


@dataclass
class Estimate:
    seconds: Counter = field(default_factory=Counter)  # part -> seconds
    cases: Counter = field(default_factory=Counter)  # suite -> planned cases
    skipped: int = 0  # cases that will be recorded as skipped at once (more GPUs than visible)
    from_previous: int = 0
    previous_run: str | None = None
    workers: int = 0

    @property
    def total_s(self) -> float:
        return float(sum(self.seconds.values()))


def estimate(planned: Sequence[Any], config: BenchConfig, visible_gpus: int,
             previous: Mapping[str, float] | None = None, previous_run: str | None = None) -> Estimate:
    """``planned``: :class:`bench.run.plan.PlannedCase` items (suite, case_id, backend, replicas, params)."""
    m = config.measure
    result = Estimate(previous_run=previous_run if previous else None)
    on_cpu = visible_gpus == 0
    trained: set[tuple[Any, ...]] = set()
    for case in planned:
        result.cases[case.suite] += 1
        if previous and case.case_id in previous:
            result.seconds["earlier run's durations"] += previous[case.case_id]
            result.from_previous += 1
            continue
        if case.suite == "train" and case.replicas > visible_gpus and not config.devices.simulate:
            result.skipped += 1
            continue
        if case.suite in ("train", "native"):
            # Every process times its rounds after one untimed warm-up round and compiles afresh; only the
            # first calibrates (bench.run.plan.schedule).
            jit = case.params.get("jit_compile")
            # Explicit XLA with 2+ replicas under MirroredStrategy fails at once (keras-team/keras#19005), and a
            # case that fails in its first process is not measured again.
            fails_fast = case.backend == "tensorflow" and jit is True and case.replicas > 1
            processes = m.processes if case.workers == 1 and not fails_fast else 1
            rounds = m.rounds * (2 if config.nvml.measure_overhead and not on_cpu else 1) + 1
            result.seconds["timed and warm-up rounds"] += processes * rounds * ROUND_HEADROOM * m.min_round_s
            result.seconds["calibration"] += CALIBRATION_ROUNDS * m.min_round_s
            xla = jit is True or (jit == "auto" and case.backend == "jax") or case.suite == "native"
            slow = xla and on_cpu and case.backend != "torch" and not fails_fast
            compile_s = XLA_ON_CPU_S if slow else (COMPILE_ON_CPU_S if on_cpu else COMPILE_S)
            result.seconds["compile allowance"] += processes * compile_s
        else:
            key = tuple(case.params.get(k) for k in ("backend", "precision", "train_jit_compile"))
            if key not in trained:
                trained.add(key)
                result.seconds["cpu_predict training allowance"] += CPU_PREDICT_TRAIN_S
            result.seconds["cpu_predict allowance"] += CPU_PREDICT_CASE_S
    from bench.run.plan import group_layouts, schedule

    # The sweep's own schedule: one process per layout and pass, and a cluster case starts its workers itself.
    slots = schedule(group_layouts(list(planned)), m.processes, m.order)
    result.workers = sum(s.group.workers * len(s.case_ids) if s.group.workers > 1 else 1 for s in slots)
    result.seconds["worker start allowance"] += WORKER_START_S * result.workers
    return result


def previous_durations(results_dir: Path, config: BenchConfig) -> tuple[dict[str, float], str | None]:
    """Case durations from the newest complete results file of a config of the same name made on this host."""
    host = socket.gethostname()
    try:
        candidates = sorted(results_dir.glob("*.json"), key=lambda p: p.stat().st_mtime, reverse=True)
    except OSError:
        return {}, None
    for path in candidates:
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if not isinstance(doc, dict) or not doc.get("complete"):
            continue
        if (doc.get("config") or {}).get("name") != config.name or (doc.get("environment") or {}).get("hostname") != host:
            continue
        durations = {c["case_id"]: float(c["duration_s"]) for c in doc.get("cases", [])
                     if isinstance(c, dict) and c.get("case_id") and isinstance(c.get("duration_s"), (int, float))}
        if durations:
            return durations, str(path)
    return {}, None


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    minutes, secs = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def format_estimate(result: Estimate, config: BenchConfig, visible_gpus: int) -> str:
    m = config.measure
    counts = ", ".join(f"{n} {suite}" for suite, n in result.cases.items())
    lines = [f"dry run of {config.path or config.name}: {sum(result.cases.values())} cases ({counts}) in "
             f"{result.workers} worker process(es); nothing is run",
             f"estimated duration: about {_duration(result.total_s)}"]
    lines += [f"  {part:<32} {_duration(seconds):>12}" for part, seconds in result.seconds.most_common() if seconds]
    where = "no GPU visible: XLA compiles are CPU-slow" if visible_gpus == 0 else f"{visible_gpus} GPU(s) visible"
    lines.append(f"An estimate ({where}): each train/native case runs in {m.processes} process(es) ({m.order}), "
                 f"each {m.rounds} rounds plus a warm-up round of about "
                 f"{ROUND_HEADROOM:g} x min_round_s = {ROUND_HEADROOM * m.min_round_s:g} s"
                 + (" twice ([nvml] measure_overhead)" if config.nvml.measure_overhead and visible_gpus else "")
                 + f", plus calibration and a {COMPILE_S:g} s compile allowance ({XLA_ON_CPU_S:g} s for XLA on a CPU); "
                   f"cpu_predict and worker start-up are fixed allowances.")
    if result.skipped:
        lines.append(f"{result.skipped} train case(s) ask for more GPUs than visible and will be recorded as skipped "
                     "(counted as 0 s).")
    if result.from_previous:
        lines.append(f"{result.from_previous} case(s) use the durations recorded in {result.previous_run}.")
    lines.append("Rounds capped by max_steps_per_round are shorter, failing cases stop early, a busy machine is slower.")
    return "\n".join(lines)
