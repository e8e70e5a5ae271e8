"""Host cost per step: the CPU the driving thread spent per training step, beside the wall time per step.

Every train and native round stores ``round_host_cpu_s`` (``time.thread_time()`` of the thread that drove
it: the one running ``fit``, or the native loop's timing thread) parallel to ``round_s``. Per case:

- ``host_us_per_step`` = median over rounds of host CPU seconds / steps per round, in µs;
- ``wall_us_per_step`` = median over rounds of round seconds / steps per round, in µs;
- ``host_share`` = host / wall: near 1, that thread never waited — its own Python and dispatch work set the
  pace, on any device; well below 1, it waited for something else (the device, another thread).

Thread CPU time counts only that thread: the framework's compute threads (XLA's CPU client runs its
computations off the calling thread) and Keras' asynchronous callback thread are not in it, so it is the
host's work, not the device's, even on a CPU box. It is also far less sensitive than wall time to other
processes on the machine (a thread that is descheduled accrues no CPU time).

Rows built here: :func:`case_stats` (one per ok train/native case; the lead's ``derived.case_stats`` takes
these two fields), and :func:`keras_environments` (the same cell measured in several ``[environments]`` —
Keras versions — side by side with the native loop).
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Mapping
from typing import Any

DEFAULT_ENVIRONMENT = "default"  # as bench.config; analyze reads result files only

Case = Mapping[str, Any]


def environment(case: Case) -> str:
    """The case's [train] environment (records from before that axis ran in the default one)."""
    return str((case.get("params") or {}).get("environment") or DEFAULT_ENVIRONMENT)


def is_development(version: str | None) -> bool:
    return version is not None and "dev" in version


def per_step(case: Case | None) -> dict[str, float | None]:
    """``host_us_per_step``, ``wall_us_per_step`` and ``host_share`` of one case (None where not measured)."""
    empty: dict[str, float | None] = {"host_us_per_step": None, "wall_us_per_step": None, "host_share": None}
    if case is None or case.get("status") != "ok":
        return empty
    m = case.get("metrics") or {}
    steps, rounds, host = m.get("steps_per_round"), m.get("round_s") or [], m.get("round_host_cpu_s") or []
    if not isinstance(steps, int) or steps <= 0 or not rounds:
        return empty
    wall = 1e6 * statistics.median(rounds) / steps
    host_us = 1e6 * statistics.median(host) / steps if len(host) == len(rounds) else None
    return {"host_us_per_step": host_us, "wall_us_per_step": wall,
            "host_share": host_us / wall if host_us is not None and wall > 0 else None}


def with_host_cost(rows: Iterable[Mapping[str, Any]], cases: Iterable[Case]) -> list[dict[str, Any]]:
    """``derived.case_stats`` rows (bench.analyze.paired.case_stats) with each case's host and wall time per step."""
    by_id = {case["case_id"]: case for case in cases}
    return [{**row, **per_step(by_id.get(row["case_id"]))} for row in rows]


def native_per_step(cases: Iterable[Case], backend: str, batch: int, precision: str) -> dict[str, Any]:
    """The native loops at one batch and precision: the backend's step loop (host and wall per step) and JAX's
    epoch_scan — one dispatch per round, so its wall time per step is the device's own cost of a step."""
    step = scan = None
    for case in cases:
        p = case.get("params") or {}
        if case.get("suite") != "native" or case.get("status") != "ok":
            continue
        if p.get("global_batch") != batch or p.get("precision") != precision:
            continue
        if p.get("variant") == "step" and p.get("backend") == backend:
            step = case
        elif p.get("variant") == "epoch_scan" and p.get("backend") == "jax":
            scan = case
    step_cost, scan_cost = per_step(step), per_step(scan)
    return {"native_case_id": step["case_id"] if step else None,
            "native_host_us_per_step": step_cost["host_us_per_step"],
            "native_wall_us_per_step": step_cost["wall_us_per_step"],
            "device_case_id": scan["case_id"] if scan else None,
            "device_us_per_step": scan_cost["wall_us_per_step"]}


def _one_process_keras3(case: Case) -> bool:
    p = case.get("params") or {}
    return (case.get("suite") == "train" and p.get("gpus") == 1 and (p.get("workers") or 1) == 1
            and (p.get("keras") or "keras3") == "keras3")


def keras_environments(cases: Iterable[Case]) -> list[dict[str, Any]]:
    """Per one-GPU train cell (backend, batch, precision, jit_compile, input, steps_per_execution) measured in
    more than one environment: one row per environment, in the run's order, with each Keras' host and wall
    time per step, its samples/s and time per step relative to the default environment's, beside the native
    loop's host and wall time per step and the device's (JAX epoch_scan). Empty for a run with one environment.
    """
    cases = list(cases)
    order = list(dict.fromkeys(environment(c) for c in cases if c.get("suite") == "train"))
    if len(order) < 2:
        return []
    cells: dict[tuple[Any, ...], dict[str, Case]] = {}
    for case in cases:
        if not _one_process_keras3(case):
            continue
        p = case["params"]
        key = (p["backend"], p["global_batch"], p["precision"], repr(p.get("jit_compile")), p.get("input"),
               int(p.get("steps_per_execution") or 1))
        cells.setdefault(key, {})[environment(case)] = case
    rows = []
    for key, by_env in cells.items():
        if len(by_env) < 2:
            continue
        backend, batch, precision, _, feed, spe = key
        native = native_per_step(cases, backend, batch, precision)
        base = by_env.get(DEFAULT_ENVIRONMENT)
        base_cost = per_step(base)
        for name in (n for n in order if n in by_env):
            case = by_env[name]
            m, cost = case.get("metrics") or {}, per_step(case)
            version = m.get("keras_version")
            sps = (m.get("samples_per_second") or {}).get("median") if case.get("status") == "ok" else None
            row = {
                "backend": backend, "global_batch": batch, "precision": precision,
                "jit_compile": case["params"].get("jit_compile"), "input": feed, "steps_per_execution": spe,
                "environment": name, "keras_version": version, "development": is_development(version),
                "case_id": case["case_id"], "status": case.get("status"), "samples_per_second": sps, **cost,
                "host_vs_default": _ratio(cost["host_us_per_step"], base_cost["host_us_per_step"]),
                "wall_vs_default": _ratio(cost["wall_us_per_step"], base_cost["wall_us_per_step"]),
                **native,
            }
            row["sentence"] = _sentence(row, base, base_cost) if name != DEFAULT_ENVIRONMENT else None
            rows.append(row)
    return rows


def keras_label(version: str | None) -> str:
    """``Keras 3.15.1``, ``Keras 3.16.0.dev2026102704 (development build)``."""
    if version is None:
        return "Keras (version not recorded)"
    return f"Keras {version}" + (" (development build)" if is_development(version) else "")


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def _us(value: float | None) -> str:
    return "n/a" if value is None else f"{value:,.0f} µs"


def _sentence(row: Mapping[str, Any], base: Case | None, base_cost: Mapping[str, Any]) -> str:
    where = (f"{row['backend']}, batch {row['global_batch']}, {row['precision']}, input {row['input']}, "
             f"steps_per_execution {row['steps_per_execution']}")
    if row["status"] != "ok" or row["wall_us_per_step"] is None:
        return f"{where}: {keras_label(row['keras_version'])} ({row['environment']}) did not finish ({row['status']})."
    base_version = ((base or {}).get("metrics") or {}).get("keras_version")
    host = f"host CPU {_us(row['host_us_per_step'])} per step"
    if base_cost.get("host_us_per_step") is not None:
        host += f" against {_us(base_cost['host_us_per_step'])} for {keras_label(base_version)}"
    wall = f"wall {_us(row['wall_us_per_step'])} per step"
    if base_cost.get("wall_us_per_step") is not None:
        wall += f" against {_us(base_cost['wall_us_per_step'])}"
    native = ""
    if row["native_host_us_per_step"] is not None:
        native = (f"; the native step loop: host {_us(row['native_host_us_per_step'])}, wall "
                  f"{_us(row['native_wall_us_per_step'])} per step")
    device = f"; the device (native epoch_scan): {_us(row['device_us_per_step'])} per step" \
        if row["device_us_per_step"] is not None else ""
    return f"{where}: {keras_label(row['keras_version'])} ({row['environment']}) — {host}; {wall}{native}{device}."
