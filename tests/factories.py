"""Builders of realistic run documents for compare tests, through the same types the tool writes with.

Case ids come from ``bench.cases``, records from ``bench.store.schema`` (a builder that produced a field
the schema does not know, or a wrong type, fails here, not in the test that uses it).

Noise model, per round: log-normal with ``cv`` (3 % by default, a noisy shared machine; a quiet GPU is
under 1 %), plus *hiccups*, rounds made slower by something else running. Hiccups are either random
(``hiccup_rate``, each a 10-50 % slower round) or placed exactly (``hiccups={case_id: round index}``)
so a test can be sure both the baseline and the current side get some.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np

from bench.analyze.stats import summarize
from bench.cases import CpuPredictCase, cpu_predict_cases, train_cases
from bench.config import parse_config
from bench.monitor.gpu_summary import gpu_metrics_unavailable
from bench.store.schema import RUN_KIND, SCHEMA_VERSION, RunDocument, case_record, run_id_stamp, utc_now

GPU = "NVIDIA H100 80GB HBM3"
PACKAGES = {"tensorflow": "2.21.0", "keras": "3.15.1", "numpy": "2.4.6", "jax": None, "jaxlib": None,
            "torch": None, "pandas": "3.1.1", "pytest-benchmark": "5.3.1", "nvidia-ml-py": "13.580.82"}
SMALL_CONFIG: dict[str, Any] = {
    "name": "ci",
    "suites": ["train", "cpu_predict"],
    "train": {"gpus": [1], "global_batch": [256, 1024]},
    "cpu_predict": {"methods": ["naive", "recompile"]},
}
NOT_OK_REASONS = {
    "failed": "predict under tf.device('/CPU:0') raised InvalidArgumentError: XLA_GPU_JIT kernel on CPU",
    "wrong": "predictions differ from the GPU's by 0.21 (tolerance 0.01)",
    "not_on_cpu": "MatMul ran on /device:GPU:0",
    "skipped": "needs 2 GPUs, 1 visible (set [devices] simulate = true to carve logical devices)",
}
# Known-broken by default: predicting on the CPU after XLA training on the GPU (keras-team/keras#20308).
DEFAULT_STATUSES = {"naive": "not_on_cpu"}


def cpu_predict_case_id(backend: str, precision: str, train_jit: Any, batch: int, method: str) -> str:
    return CpuPredictCase(backend, precision, train_jit, batch, method).case_id


def make_run(seed: int = 0, config: Mapping[str, Any] | None = None, *, rounds: int = 5, cv: float = 0.03,
             hiccup_rate: float = 0.0, hiccups: Mapping[str, int] | None = None,
             speed: Mapping[str, float] | None = None, statuses: Mapping[str, str] | None = None,
             gpu_name: str = GPU, gpu_count: int = 1, packages: Mapping[str, Any] | None = None,
             data_source: str = "mnist", complete: bool = True, simulated: bool = False,
             drop: Sequence[str] = (), run_index: int | None = None) -> dict[str, Any]:
    """A run document. ``speed={case_id: 0.9}`` makes that case 10 % slower; ``statuses`` overrides
    a case's status (by case_id, or by cpu_predict method name)."""
    rng = np.random.default_rng(seed)
    cfg = parse_config(dict(config or SMALL_CONFIG), source="configs/ci.toml", sha256="0" * 64)
    speed, hiccups = dict(speed or {}), dict(hiccups or {})
    statuses = {**DEFAULT_STATUSES, **(statuses or {})}
    created = datetime(2025, 11, 1, tzinfo=timezone.utc) + timedelta(hours=seed if run_index is None else run_index)
    run_id = f"{run_id_stamp(created)}-{cfg.name}-{hashlib.sha256(str(seed).encode()).hexdigest()[:6]}"
    synthetic = data_source == "synthetic"

    def noise(case_id: str) -> np.ndarray:
        factors = np.exp(rng.normal(0.0, cv, rounds))
        random_hiccups = rng.random(rounds) < hiccup_rate
        factors[random_hiccups] *= rng.uniform(1.1, 1.5, int(random_hiccups.sum()))
        if case_id in hiccups:
            factors[hiccups[case_id] % rounds] *= 1.3
        return factors / speed.get(case_id, 1.0)

    def base(suite: str, case_id: str, params: dict[str, Any], status: str) -> dict[str, Any]:
        return {
            "suite": suite, "case_id": case_id, "params": params, "status": status,
            "reason": None if status == "ok" else NOT_OK_REASONS.get(status, status),
            "error": None, "data_source": data_source,
            "flags": {"simulated": simulated, "synthetic_data": synthetic, "unstable": False,
                      "stand_in_device": False, "gpu_metrics_unreliable": False},
            "devices": {"strategy": "OneDeviceStrategy", "devices": ["/gpu:0"], "replicas": 1, "kind": "gpu",
                        "simulated": simulated},
            "started_utc": utc_now(created), "duration_s": 18.2, "metrics": {},
        }

    cases = []
    for tc in train_cases(cfg) if "train" in cfg.suites else []:
        status = statuses.get(tc.case_id, "ok")
        record = base("train", tc.case_id, tc.params(), status)
        if status == "ok":
            true_sps = 190_000 * tc.gpus ** 0.85 * (tc.global_batch / 256) ** 0.35
            steps = max(1, int(2.0 * true_sps / tc.global_batch))
            per_round = steps * tc.global_batch
            round_s = [round(float(x), 6) for x in per_round / true_sps * noise(tc.case_id)]
            sps = [per_round / r for r in round_s]
            record["metrics"] = {
                "per_replica_batch": tc.per_replica_batch, "global_batch": tc.global_batch, "replicas": tc.gpus,
                "jit_compile_resolved": tc.jit_compile is not False, "compile_s": round(6.5 + rng.normal(0, 0.2), 3),
                "warmup_steps": 20, "steps_per_round": steps, "samples_per_round": per_round, "round_s": round_s,
                "samples_per_second": summarize(sps), "step_time_s": summarize([r / steps for r in round_s]),
                "final_loss": 0.044, "final_accuracy": 0.971,
                "timing_check": {"harness_s": sum(round_s), "wall_s": sum(round_s) + 0.002, "rel_diff": 0.0002},
                "gpu_metrics": gpu_metrics_unavailable("factory"),
            }
        cases.append(record)

    for pc in cpu_predict_cases(cfg) if "cpu_predict" in cfg.suites else []:
        status = statuses.get(pc.case_id, statuses.get(pc.method, "ok"))
        record = base("cpu_predict", pc.case_id, pc.params(), status)
        record["devices"] = {"strategy": None, "devices": ["/cpu:0"], "replicas": 1, "kind": "cpu",
                             "simulated": False}
        metrics: dict[str, Any] = {"train_device": "/job:localhost/replica:0/task:0/device:GPU:0",
                                   "train_device_stand_in": False}
        if status not in ("failed", "skipped"):
            steady = [round(float(x), 6) for x in 0.12 * noise(pc.case_id)]
            prepare = 0.0 if pc.method in ("naive", "strategy") else 0.6
            stats = summarize(steady)
            metrics.update({
                "prepare_s": prepare, "first_predict_s": 0.30, "steady_round_s": steady,
                "steady_s": stats, "total_s": prepare + 0.30 + stats["median"],
                "max_abs_diff": 0.21 if status == "wrong" else 0.003, "tolerance": 0.01,
                "predict_device": "/job:localhost/replica:0/task:0/device:"
                                  + ("GPU:0" if status == "not_on_cpu" else "CPU:0"),
                "variable_devices": ["/job:localhost/replica:0/task:0/device:CPU:0"],
                "peak_rss_mib": 1874.5,
            })
        record["metrics"] = metrics
        cases.append(record)

    cases = [c for c in cases if c["case_id"] not in drop]
    package_versions = {**PACKAGES, **(packages or {})}
    gpus = [{"index": i, "name": gpu_name, "uuid": f"GPU-{i:08d}", "pci_bus_id": f"00000000:{i + 1:02X}:00.0",
             "memory_total_mib": 81559} for i in range(gpu_count)]
    document = RunDocument.model_validate({
        "kind": RUN_KIND,
        "schema_version": SCHEMA_VERSION,
        "run_id": run_id,
        "created_utc": utc_now(created),
        "finished_utc": utc_now(created + timedelta(minutes=9)),
        "complete": complete,
        "tool": {"name": "keras-gpu-bench", "version": "0.1.0"},
        "config": cfg.to_dict(),
        "environment": {
            "python": "3.11.9", "platform": "Linux-6.8.0-x86_64-with-glibc2.39", "machine": "x86_64",
            "cpu": "AMD EPYC 9454 48-Core Processor", "cpu_count": 96, "hostname": "gpu-runner-1",
            "packages": package_versions, "gpus": gpus,
            "driver_version": "570.124.06" if gpus else None, "cuda_driver_version": "12.8" if gpus else None,
            "nvml": "ok" if gpus else "unavailable: no GPU", "env_vars": {"TF_CPP_MIN_LOG_LEVEL": "1"},
            "git_commit": "1c3ac7f5d0e4b2a9c8e7f6a5b4c3d2e1f0a9b8c7", "git_dirty": False,
            "config_sha256": "0" * 64, "seed": 0,
        },
        "data": {"source": data_source, "synthetic": synthetic, "path": None, "sha256": None,
                 "train_samples": 60000, "test_samples": 10000, "note": "factory"},
        "cases": [case_record(case) for case in cases],
        "derived": {},
    })
    return document.to_dict()


def write_run(folder: Path, document: Mapping[str, Any], name: str | None = None) -> Path:
    """Write a run document as ``<run_id>.json`` (or ``name``) and return its path."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / (name or f"{document['run_id']}.json")
    path.write_text(json.dumps(document, indent=1), encoding="utf-8")
    return path


def in_processes(run: dict[str, Any], processes: int = 3) -> dict[str, Any]:
    """The run as if each train case had been measured in ``processes`` worker processes, as the sweep records
    it (``metrics.round_pass``, ``control.round_pass``): rounds and control rounds split evenly, in pass order.
    Build the run with ``rounds`` a multiple of ``processes``."""
    for case in run["cases"]:
        rounds = (case.get("metrics") or {}).get("round_s")
        if case["suite"] != "train" or case["status"] != "ok" or not rounds:
            continue
        case["metrics"]["round_pass"] = [i * processes // len(rounds) for i in range(len(rounds))]
        control = case.get("control") or {}
        if control.get("round_s"):
            control["round_pass"] = [i * processes // len(control["round_s"]) for i in range(len(control["round_s"]))]
    return run
