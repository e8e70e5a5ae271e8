"""The summary table: one row per training and native case (backend × GPUs × batch × precision × jit_compile
× input × steps_per_execution) with its samples/s, its interval or noise, its achieved FLOP rate against the
device's peak, and its category — real GPU or simulated on CPU, real MNIST or synthetic — as MLPerf rows
carry their division.

The value is issue 20's ``case_stats`` row where the run has one (geometric mean over processes, 95 % t
interval); otherwise the case ran in one process, its value is the median of its rounds (what every other
table of the run quotes) and there is no interval — the noise column then shows the rounds' CV within that one
process, labelled as such (nvbench's habit: every number with its noise).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from bench.analyze import flops
from bench.analyze.paired import case_value as one_process_value

Case = Mapping[str, Any]
DATA = {"mnist": "real MNIST", "synthetic": "synthetic data", "npz": "npz data"}
# Files from before the input axis fed fit a tf.data pipeline or a cycling PyDataset: "unrecorded", never taken for
# device input (bench.analyze.bottleneck's rule).
DEFAULTS = {"input": "unrecorded", "steps_per_execution": 1, "workers": 1, "keras": "keras3"}


def _param(case: Case, key: str) -> Any:
    return (case.get("params") or {}).get(key, DEFAULTS.get(key))


def device_category(case: Case) -> str:
    """"real GPU", "simulated on CPU" (logical devices carved out of the host), "simulated on one GPU",
    "CPU", or "unknown" for a case that ended before it was placed."""
    devices = case.get("devices") or {}
    simulated = bool(devices.get("simulated") or (case.get("flags") or {}).get("simulated"))
    kind = devices.get("kind")
    if kind == "gpu":
        return "simulated on one GPU" if simulated else "real GPU"
    if kind == "cpu":
        return "simulated on CPU" if simulated else "CPU"
    return "simulated on CPU" if simulated else "unknown"


def data_category(case: Case) -> str:
    return DATA.get(str(case.get("data_source")), str(case.get("data_source") or "unknown"))


SHORT = {"real GPU": "GPU", "simulated on CPU": "sim. CPU", "simulated on one GPU": "sim. GPU", "CPU": "CPU",
         "unknown": "?", "real MNIST": "MNIST", "synthetic data": "synthetic", "npz data": "npz"}


def category(case: Case) -> dict[str, str]:
    """``devices``, ``data``, a ``label`` ("simulated on CPU · synthetic data") and a ``short`` one for table
    cells ("sim. CPU · synthetic")."""
    devices, data = device_category(case), data_category(case)
    return {"devices": devices, "data": data, "label": f"{devices} · {data}",
            "short": f"{SHORT.get(devices, devices)} · {SHORT.get(data, data)}"}


def jit_label(case: Case) -> str:
    """What jit_compile compiled with on the case's backend: "XLA on", "torch.compile off", "XLA auto→on"."""
    backend, jit = _param(case, "backend"), _param(case, "jit_compile")
    name = "torch.compile" if backend == "torch" else "XLA"
    resolved = (case.get("metrics") or {}).get("jit_compile_resolved")
    if jit == "auto":
        return f"{name} auto" + (f"→{'on' if resolved else 'off'}" if isinstance(resolved, bool) else "")
    return f"{name} {'on' if jit else 'off'}" if isinstance(jit, bool) else f"{name} {jit}"


def _gpus(case: Case) -> int:
    return int(_param(case, "gpus") or 1) if case.get("suite") == "train" else 1


def summary_rows(cases: Iterable[Case], environment: Mapping[str, Any] | None,
                 case_stats: Sequence[Mapping[str, Any]] | None = None,
                 failures: Sequence[Mapping[str, Any]] | None = None) -> list[dict[str, Any]]:
    """One row per one-process Keras 3 train case and per native case, in sweep order."""
    stats = {row["case_id"]: row for row in case_stats or []}
    failed = {row["case_id"]: row for row in failures or []}
    gpu_name = flops.gpu_model(environment)
    rows = []
    for case in cases:
        suite = case.get("suite")
        if suite not in ("train", "native") or _param(case, "workers") != 1 or _param(case, "keras") != "keras3":
            continue
        m = case.get("metrics") or {}
        sps = m.get("samples_per_second") or {}
        row: dict[str, Any] = {
            "case_id": case["case_id"], "suite": suite, "status": case.get("status"),
            "backend": _param(case, "backend"), "gpus": _gpus(case), "global_batch": _param(case, "global_batch"),
            "precision": _param(case, "precision"),
            "jit": jit_label(case) if suite == "train" else f"native {_param(case, 'variant')}",
            "input": _param(case, "input") if suite == "train" else "device",
            "steps_per_execution": _param(case, "steps_per_execution") if suite == "train" else None,
            "category": category(case), "step_time_s": (m.get("step_time_s") or {}).get("median"),
            "round_q1": sps.get("q1"), "round_q3": sps.get("q3"),
            "utilization_pct": ((m.get("gpu_metrics") or {}).get("aggregate") or {}).get("utilization_pct_mean"),
        }
        stat = stats.get(case["case_id"])
        if case.get("status") == "ok" and stat is not None:
            processes = int(stat.get("processes") or 1)
            row.update(value=stat.get("value"), ci_low=stat.get("ci_low"), ci_high=stat.get("ci_high"),
                       processes=processes,
                       noise=stat.get("between_process_cv") if processes > 1 else stat.get("within_process_cv"),
                       noise_kind="between processes" if processes > 1 else "rounds of one process",
                       interval="95 % t over processes" if stat.get("ci_low") is not None else "one process: no interval")
        elif case.get("status") == "ok":
            row.update(value=one_process_value(case), ci_low=None, ci_high=None, processes=1,
                       noise=sps.get("cv"), noise_kind="rounds of one process", interval="one process: no interval")
        else:
            row.update(value=None, ci_low=None, ci_high=None, processes=0, noise=None, noise_kind=None, interval=None)
        on_gpu = row["category"]["devices"] == "real GPU"
        row.update(flops.utilisation(row["value"], row["gpus"], str(row["precision"]), str(row["backend"]),
                                     gpu_name, on_gpu))
        failure = failed.get(case["case_id"])
        row["outcome"] = None if failure is None else {k: failure.get(k) for k in
                                                       ("kind", "issue", "url", "title", "reason_short")}
        rows.append(row)
    return rows


def run_category(cases: Sequence[Case], environment: Mapping[str, Any] | None,
                 data: Mapping[str, Any] | None) -> dict[str, Any]:
    """What the run's numbers can say, as a label and one sentence."""
    placed = [c for c in cases if c.get("suite") in ("train", "native", "cpu_predict") and c.get("devices")]
    kinds = {device_category(c) for c in placed if c.get("suite") != "cpu_predict"} or \
        {device_category(c) for c in placed}
    gpus = (environment or {}).get("gpus") or []
    names: dict[str, int] = {}
    for gpu in gpus:
        names[gpu.get("name") or "?"] = names.get(gpu.get("name") or "?", 0) + 1
    hardware = ", ".join(f"{n} × {name}" for name, n in names.items())
    synthetic = bool((data or {}).get("synthetic"))
    data_label = "synthetic data" if synthetic else DATA.get(str((data or {}).get("source")), "real MNIST")
    if kinds and kinds <= {"real GPU"}:
        devices, sentence = "real GPU", f"Real GPUs ({hardware or 'GPU'}): throughput and MFU are this hardware's"
        title = hardware or "GPU"
    elif "real GPU" in kinds:
        devices = "real GPU and simulated"
        sentence = f"Real GPUs ({hardware}) and simulated devices: only the real-GPU rows say anything about GPU speed"
        title = f"{hardware} (some devices simulated)"
    elif kinds & {"simulated on CPU", "CPU"}:
        devices = "simulated on CPU" if "simulated on CPU" in kinds else "CPU"
        sentence = ("CPU with simulated devices: checks that the suite works, says nothing about GPU speed"
                    if devices == "simulated on CPU" else
                    "CPU only: checks that the suite works, says nothing about GPU speed")
        title = ("simulated devices on a CPU (not GPU speed)" if devices == "simulated on CPU"
                 else "CPU only (not GPU speed)")
    else:
        devices, sentence, title = "unknown", "No case was placed on a device: nothing was measured", "Benchmark"
    if synthetic:
        sentence += "; synthetic data: loss and accuracy are meaningless, throughput stands"
    return {"devices": devices, "data": data_label, "label": f"{devices} · {data_label}", "gpus": hardware or None,
            "gpu_model": flops.gpu_model(environment), "sentence": sentence + ".", "title": title}
