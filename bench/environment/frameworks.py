"""What each framework sees, from the parent process: probes in child processes, matched to NVML.

The parent never imports a framework (a broken CUDA install can hang or crash at import), so each
installed framework is asked by ``python -m bench.environment.probe NAME`` in its own process, all of
them at once, under one deadline. Its JSON line is then matched to NVML's GPUs by UUID or PCI bus id
(:mod:`bench.monitor.inventory`), so "TensorFlow's GPU 0" is known to be a particular physical GPU.

The result is ``environment.frameworks`` in every results file (docs/results.md) and what
``python -m bench doctor`` judges.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from importlib import metadata
from typing import Any

from bench.environment.probe import MARKER
from bench.measure.worker_plan import framework_env
from bench.monitor import inventory
from bench.process import kill_group, spawn

FRAMEWORKS = ("tensorflow", "jax", "torch")
LABELS = {"tensorflow": "TensorFlow", "jax": "JAX", "torch": "PyTorch"}
# Distribution names a framework can be installed under (TensorFlow's CPU-only wheel is another name).
DISTRIBUTIONS = {"tensorflow": ("tensorflow", "tensorflow-cpu", "tensorflow-gpu", "tf-nightly"),
                 "jax": ("jax",), "torch": ("torch",)}
# The packages that give JAX its CUDA backend (jax[cuda12] / jax[cuda13], docs.jax.dev/en/latest/installation.html).
JAX_CUDA_PLUGINS = ("jax-cuda13-plugin", "jax-cuda12-plugin")
# A healthy TensorFlow import takes 4-5 s on a 2-core box and more when others share it; a CUDA
# install that hangs in driver initialisation never returns.
DEFAULT_TIMEOUT_S = 180.0

ProbeCommand = Callable[[str], list[str]]


def installed_version(framework: str) -> str | None:
    for dist in DISTRIBUTIONS[framework]:
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return None


def gpu_packages(framework: str) -> dict[str, str | None]:
    """The pip packages that carry this framework's CUDA libraries, with their installed versions.

    TensorFlow: the ``and-cuda`` extra's requirements (``pip install "tensorflow[and-cuda]"``,
    tensorflow.org/install/pip); JAX: its CUDA plugin; torch bundles CUDA in its own wheel (none listed).
    """
    if framework == "tensorflow":
        try:
            requires = metadata.requires("tensorflow") or []
        except metadata.PackageNotFoundError:
            return {}
        names = [r.split(";")[0].split("<")[0].split(">")[0].split("=")[0].split("[")[0].strip()
                 for r in requires if 'extra == "and-cuda"' in r.replace("'", '"')]
        return {name: _version(name) for name in names}
    if framework == "jax":
        return {name: _version(name) for name in JAX_CUDA_PLUGINS}
    return {}


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def probe_command(framework: str) -> list[str]:
    return [sys.executable, "-m", "bench.environment.probe", framework]


def probe_env(framework: str, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment a sweep worker of this backend gets, as far as device discovery is concerned."""
    return framework_env(framework, base)


# --------------------------------------------------------------------------- running the probes


def run_probes(frameworks: Sequence[str], *, timeout_s: float = DEFAULT_TIMEOUT_S,
               command: ProbeCommand | None = None, env: Mapping[str, str] | None = None) -> dict[str, dict[str, Any]]:
    """Probe each framework in its own process, concurrently; a framework not installed is not started.

    Returns per framework ``{"status": "ok" | "not_installed" | "failed" | "timeout", "reason", ...}``
    with the probe's facts merged in when it printed them.
    """
    command = command or probe_command
    results: dict[str, dict[str, Any]] = {}
    running: dict[str, tuple[subprocess.Popen, Any, Any, float]] = {}
    for name in frameworks:
        version = installed_version(name)
        if version is None:
            results[name] = _empty(name, "not_installed", f"{LABELS[name]} is not installed")
            continue
        out, err = tempfile.TemporaryFile(mode="w+"), tempfile.TemporaryFile(mode="w+")
        # Files, not pipes: a framework that logs a lot must not block on a full pipe while we wait on another.
        proc = spawn(command(name), probe_env(name, env), out, err, text=True)
        running[name] = (proc, out, err, time.monotonic())
    deadline = time.monotonic() + timeout_s
    for name, (proc, out, err, started) in running.items():
        try:
            proc.wait(timeout=max(0.0, deadline - time.monotonic()))
            timed_out = False
        except subprocess.TimeoutExpired:
            kill_group(proc)
            timed_out = True
        seconds = round(time.monotonic() - started, 3)
        out.seek(0)
        err.seek(0)
        results[name] = _result(name, proc.returncode, out.read(), err.read(), timed_out, timeout_s, seconds)
        out.close()
        err.close()
    return {name: results[name] for name in frameworks}


def _empty(name: str, status: str, reason: str | None) -> dict[str, Any]:
    return {"status": status, "version": installed_version(name), "reason": reason, "probe_s": None,
            "build": None, "runtime": None, "gpus": [], "gpu_error": None, "keras": None, "errors": []}


def _result(name: str, code: int | None, stdout: str, stderr: str, timed_out: bool, timeout_s: float,
            seconds: float) -> dict[str, Any]:
    label = LABELS[name]
    if timed_out:
        result = _empty(name, "timeout", f"{label} did not finish importing and listing its GPUs within "
                                         f"{timeout_s:g} s (a hung CUDA initialisation?); last output: "
                                         f"{_last_line(stderr) or '(none)'}")
        result["probe_s"] = seconds
        return result
    facts = None
    for line in reversed(stdout.splitlines()):
        if line.startswith(MARKER):
            try:
                facts = json.loads(line[len(MARKER):])
            except json.JSONDecodeError:
                facts = None
            break
    if code != 0 or not isinstance(facts, dict):
        how = f"killed by signal {-code}" if code is not None and code < 0 else f"exit code {code}"
        result = _empty(name, "failed", f"importing {label} failed ({how}): {_last_line(stderr) or '(no output)'}")
        result["probe_s"] = seconds
        return result
    result = _empty(name, "ok", None)
    result.update({k: facts.get(k) for k in ("version", "build", "runtime", "gpu_error", "keras")})
    result["gpus"] = list(facts.get("gpus") or [])
    result["errors"] = list(facts.get("errors") or [])
    result["probe_s"] = seconds
    if name == "tensorflow" and not result["gpus"] and not result["gpu_error"]:
        result["gpu_error"] = _gpu_hint(stderr)  # TensorFlow says why only in its log
    return result


def _last_line(text: str) -> str:
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return lines[-1][:300] if lines else ""


# What TensorFlow logs when it finds no usable GPU; the first such line is the reason shown.
_GPU_HINTS = ("Cannot dlopen some GPU libraries", "Could not find cuda drivers", "failed call to cuInit",
              "CUDA_ERROR", "driver version is insufficient", "Skipping registering GPU devices")


# glog's prefix: "W0000 00:00:1796116579.738481   27292 cudart_stub.cc:31] ".
_GLOG_PREFIX = re.compile(r"^[IWEF]\d{4} [\d:.]+\s+\d+ \S+:\d+\] ")


def _gpu_hint(stderr: str) -> str | None:
    for line in stderr.splitlines():
        if any(hint in line for hint in _GPU_HINTS):
            return _GLOG_PREFIX.sub("", line.strip())[:300]
    return None


# --------------------------------------------------------------------------- matching to NVML


def gpu_capabilities(nvml: Any = None) -> list[dict[str, Any]]:
    """Per NVML GPU: compute capability and which tensor-core precisions it has (empty without NVML).

    Tensor cores for float16 arrived with compute capability 7.0 (Volta), for bfloat16 with 8.0 (Ampere);
    below that ``mixed_float16``/``mixed_bfloat16`` still run but gain nothing from the hardware.
    """
    found = []
    try:
        with inventory.nvml_session(nvml) as module:
            for index in range(module.nvmlDeviceGetCount()):
                handle = module.nvmlDeviceGetHandleByIndex(index)
                entry: dict[str, Any] = {"nvml_index": index, "uuid": inventory.text(module.nvmlDeviceGetUUID(handle)),
                                         "name": inventory.text(module.nvmlDeviceGetName(handle)),
                                         "compute_capability": None, "memory_total_mib": None,
                                         "fp16_tensor_cores": None, "bf16_tensor_cores": None}
                try:
                    major, minor = (int(v) for v in module.nvmlDeviceGetCudaComputeCapability(handle))
                    entry.update(compute_capability=f"{major}.{minor}", fp16_tensor_cores=(major, minor) >= (7, 0),
                                 bf16_tensor_cores=(major, minor) >= (8, 0))
                except inventory.nvml_error_type(module):
                    pass
                try:
                    entry["memory_total_mib"] = int(module.nvmlDeviceGetMemoryInfo(handle).total) // inventory.MIB
                except inventory.nvml_error_type(module):
                    pass
                found.append(entry)
    except Exception:  # noqa: BLE001 - NvmlUnavailable or a driver error: the fingerprint never stops a run
        return found
    return found


def match_to_nvml(gpus: list[dict[str, Any]], nvml: Any = None, env: Mapping[str, str] | None = None) -> None:
    """Annotate a framework's GPUs in place with the NVML GPU each one is.

    ``nvml_index``/``nvml_uuid``/``matched_by`` come from the framework's own UUID or PCI bus id where it
    gives one, else from its CUDA ordinal through CUDA's device order. ``monitor_nvml_index`` is where
    the NVML monitor, which only knows CUDA ordinals, would look: when the two differ the monitor would
    measure the wrong GPU, and the doctor says so.
    """
    if not gpus:
        return
    env = os.environ if env is None else env
    try:
        with inventory.nvml_session(nvml) as module:
            for gpu in gpus:
                _match_one(module, gpu, env)
    except inventory.NvmlUnavailable as exc:
        for gpu in gpus:
            gpu.update(nvml_index=None, nvml_uuid=None, matched_by="unmatched", ambiguous=False,
                       monitor_nvml_index=None, match_error=str(exc))


def _match_one(module: Any, gpu: dict[str, Any], env: Mapping[str, str]) -> None:
    gpu.update(nvml_index=None, nvml_uuid=None, matched_by="unmatched", ambiguous=False, monitor_nvml_index=None,
               match_error=None)
    by_order = None
    ordinal = gpu.get("ordinal")
    if isinstance(ordinal, int) and not isinstance(ordinal, bool):
        try:
            by_order = inventory.resolve_in_session(module, [ordinal], env)[0]
            gpu["monitor_nvml_index"] = by_order.nvml_index
        except inventory.GpuMappingError as exc:
            gpu["match_error"] = str(exc)
    ref = None
    for key in ("uuid", "pci_bus_id"):
        if gpu.get(key):
            try:
                ref = inventory.resolve_in_session(module, [str(gpu[key])], env)[0]
                break
            except inventory.GpuMappingError as exc:
                gpu["match_error"] = str(exc)
    ref = ref or by_order
    if ref is not None:
        gpu.update(nvml_index=ref.nvml_index, nvml_uuid=ref.uuid, matched_by=ref.matched_by, ambiguous=ref.ambiguous)


# --------------------------------------------------------------------------- the environment block


def collect(frameworks: Sequence[str] = FRAMEWORKS, *, timeout_s: float = DEFAULT_TIMEOUT_S, nvml: Any = None,
            env: Mapping[str, str] | None = None, command: ProbeCommand | None = None) -> dict[str, Any]:
    """``environment.frameworks``: every framework's facts (probed ones in full), and NVML's GPU capabilities."""
    started = time.monotonic()
    probed = run_probes(frameworks, timeout_s=timeout_s, command=command, env=env)
    block: dict[str, Any] = {"probe": {"timeout_s": timeout_s, "wall_s": round(time.monotonic() - started, 3),
                                       "probed": list(frameworks)},
                             "gpus": gpu_capabilities(nvml)}
    for name in FRAMEWORKS:
        facts = probed.get(name) or _empty(name, "not_probed", "not used by this run" if installed_version(name)
                                           else f"{LABELS[name]} is not installed")
        if facts["status"] == "not_probed" and facts["version"] is None:
            facts["status"] = "not_installed"
        facts["gpu_packages"] = gpu_packages(name) if facts["version"] else {}
        match_to_nvml(facts["gpus"], nvml, env)
        block[name] = facts
    return block
