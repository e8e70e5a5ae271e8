"""The doctor's one screen: GPUs, frameworks, Keras, result-changing variables, findings, verdict."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

from bench.environment.doctor import Verdict
from bench.environment.fingerprint import relevant_env_vars
from bench.environment.frameworks import FRAMEWORKS, LABELS

# Of the variables every results file records (fingerprint.relevant_env_vars), those shown as changing
# what a run measures: logging-only ones and container metadata (NVIDIA_REQUIRE_CUDA...) are left out.
NO_EFFECT = frozenset({"TF_CPP_MIN_LOG_LEVEL", "TF_CPP_MAX_VLOG_LEVEL", "TF_CPP_VMODULE", "CUDA_VERSION"})
NVIDIA_RELEVANT = frozenset({"NVIDIA_TF32_OVERRIDE", "NVIDIA_VISIBLE_DEVICES"})
CHECKED = "TF_*, XLA_FLAGS, JAX_*, CUDA_VISIBLE_DEVICES, CUDA_DEVICE_ORDER, NCCL_*, KERAS_BACKEND, OMP_NUM_THREADS, LD_LIBRARY_PATH"

AUTO_RULE = ('Keras\' rule (Trainer._resolve_auto_jit_compile): torch -> eager; TensorFlow -> no XLA on a CPU-only '
             'machine or under any tf.distribute strategy (this suite always builds inside MirroredStrategy); '
             'otherwise XLA when every layer supports it')


def result_env(env: Mapping[str, str]) -> dict[str, str]:
    return {k: v for k, v in relevant_env_vars(dict(env)).items()
            if k not in NO_EFFECT and (not k.startswith("NVIDIA_") or k in NVIDIA_RELEVANT)}


def keras_default_backend(env: Mapping[str, str]) -> tuple[str, str]:
    """(backend, where it comes from) as ``import keras`` would decide it in the user's own scripts."""
    if env.get("KERAS_BACKEND"):
        return env["KERAS_BACKEND"], "KERAS_BACKEND"
    home = Path(env.get("KERAS_HOME") or Path.home() / ".keras")
    try:
        backend = json.loads((home / "keras.json").read_text(encoding="utf-8")).get("backend")
        if backend:
            return str(backend), str(home / "keras.json")
    except (OSError, ValueError, AttributeError):
        pass
    return "tensorflow", "Keras' default"


def _short(value: str, width: int = 70) -> str:
    return value if len(value) <= width else value[: width - 1] + "…"


def _gpu_lines(inventory: Mapping[str, Any], capabilities: list[Mapping[str, Any]]) -> list[str]:
    if not inventory.get("gpus"):
        return [f"NVIDIA driver  none ({inventory.get('nvml') or 'NVML unavailable'})",
                "GPUs           none: no NVIDIA GPU is visible on this machine"]
    lines = [f"NVIDIA driver  {inventory.get('driver_version')}, supports CUDA {inventory.get('cuda_driver_version')} (NVML)"]
    caps = {c.get("uuid"): c for c in capabilities}
    for gpu in inventory["gpus"]:
        cap = caps.get(gpu.get("uuid"), {})

        def yes(flag: Any) -> str:
            return "?" if flag is None else ("yes" if flag else "no")

        memory = gpu.get("memory_total_mib")
        memory_text = f" · {memory:,} MiB" if memory else ""
        lines.append(f"GPU {gpu.get('index'):<10} {gpu.get('name')} · compute capability "
                     f"{cap.get('compute_capability') or '?'}{memory_text}")
        lines.append(f"{'':15}tensor cores: float16 {yes(cap.get('fp16_tensor_cores'))}, bfloat16 "
                     f"{yes(cap.get('bf16_tensor_cores'))} · {gpu.get('uuid')} · {gpu.get('pci_bus_id')}")
    return lines


def _framework_line(name: str, facts: Mapping[str, Any], nvml_has_gpus: bool) -> str:
    label = LABELS[name]
    status = facts.get("status")
    if status == "not_installed":
        return f"  {label}: not installed"
    if status in ("failed", "timeout"):
        return f"  {label} {facts.get('version') or ''}: {facts.get('reason')}"
    if status == "not_probed":
        return f"  {label} {facts.get('version')}: not probed ({facts.get('reason')})"
    build = facts.get("build") or {}
    if build.get("cuda"):
        built = f"built for CUDA {build.get('cuda')}, cuDNN {build.get('cudnn') or '?'}"
        runtime = facts.get("runtime") or {}
        if runtime.get("cuda"):
            built += f" (loaded CUDA {runtime.get('cuda')}, cuDNN {runtime.get('cudnn') or '?'})"
    else:
        built = "CPU-only build" if name != "jax" else "CPU only (no CUDA plugin)"
    gpus = facts.get("gpus") or []
    if gpus:
        seen = ", ".join(f"{g.get('ordinal')} -> NVML {g.get('nvml_index')} ({g.get('matched_by')})" for g in gpus)
        sees = f"sees {len(gpus)} GPU{'s' if len(gpus) != 1 else ''}: {seen}"
    else:
        # Why it sees none matters only where there is a GPU to see.
        said = facts.get("gpu_error") if nvml_has_gpus else None
        sees = "sees no GPU" + (f" ({_short(str(said), 90)})" if said else "")
    return f"  {label} {facts.get('version')}: {built}; {sees}"


def _jit_lines(frameworks: Mapping[str, Any]) -> list[str]:
    parts = []
    for name in FRAMEWORKS:
        keras = (frameworks.get(name) or {}).get("keras") or {}
        if "jit_compile_auto" not in keras:
            continue
        if name == "torch":
            parts.append("torch: eager")
            continue
        text = f"{name}: {'XLA' if keras['jit_compile_auto'] else 'no XLA'}"
        if name == "tensorflow":
            gpus = (frameworks.get(name) or {}).get("gpus") or []
            why = "under MirroredStrategy" if gpus else "no GPU visible to TensorFlow"
            plain = "XLA" if keras.get("jit_compile_auto_without_strategy") else "no XLA"
            text += f" ({why}; a script without a strategy gets {plain})"
        parts.append(text)
    if not parts:
        return []
    return ['jit_compile="auto" here, for the reference model as the suite builds it: ' + "; ".join(parts),
            f"  {AUTO_RULE}"]


def _keras_line(frameworks: Mapping[str, Any], env: Mapping[str, str]) -> str:
    versions = {k.get("version") for n in FRAMEWORKS if (k := (frameworks.get(n) or {}).get("keras") or {}).get("version")}
    try:
        version = ", ".join(sorted(versions)) or metadata.version("keras")
    except metadata.PackageNotFoundError:
        return "Keras: not installed"
    backend, source = keras_default_backend(env)
    return (f"Keras {version}: default backend {backend} ({source}); the sweep sets KERAS_BACKEND per worker "
            "from [train] backend")


def format_screen(config_label: str, inventory: Mapping[str, Any], frameworks: Mapping[str, Any],
                  verdict: Verdict, env: Mapping[str, str] | None = None) -> str:
    env = os.environ if env is None else env
    lines = [f"keras-gpu-bench doctor: can {config_label} run on this machine?", ""]
    lines += _gpu_lines(inventory, frameworks.get("gpus") or [])
    probe = frameworks.get("probe") or {}
    lines += ["", f"Frameworks (each imported in its own process, {probe.get('wall_s', 0):.1f} s):"]
    lines += [_framework_line(name, frameworks.get(name) or {}, bool(inventory.get("gpus"))) for name in FRAMEWORKS]
    lines += [_keras_line(frameworks, env)]
    lines += _jit_lines(frameworks)
    variables = result_env(env)
    if variables:
        lines.append("Variables that change results: " + ", ".join(f"{k}={_short(v, 40)}" for k, v in variables.items()))
    else:
        lines.append(f"Variables that change results: none set (checked {CHECKED})")
    shown = [f for f in verdict.findings if f.line != verdict.line]
    if shown:
        lines.append("")
        marks = {"problem": "x", "warning": "!", "note": "-"}
        lines += [f"  {marks[f.level]} {f.line}" for f in shown]
    lines += ["", f"Verdict: {'ready' if verdict.runnable else 'NOT READY'} (exit {0 if verdict.runnable else 1}): "
                  f"{verdict.line}"]
    return "\n".join(lines)
