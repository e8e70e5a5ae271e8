"""Can this machine run a sweep as configured? One verdict, the reason and the fix, from gathered facts.

Pure: it reads NVML's inventory (``bench.monitor.inventory.gpu_inventory``) and the framework facts of
:func:`bench.environment.frameworks.collect`, and decides. ``python -m bench doctor`` prints the verdict
with the facts; ``python -m bench run`` refuses a sweep whose GPU cases would all be skipped.

Install advice follows each project's documentation: TensorFlow's GPU wheel on Linux is
``pip install "tensorflow[and-cuda]"`` (tensorflow.org/install/pip); JAX's is ``jax[cuda13]`` (driver
>= 580) or ``jax[cuda12]`` (driver >= 525) (docs.jax.dev/en/latest/installation.html); PyTorch's CUDA
wheels come from ``https://download.pytorch.org/whl/cuXYZ`` (pytorch.org/get-started/locally).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from bench.config import BenchConfig
from bench.environment.frameworks import LABELS

QUICK_CONFIG_HINT = ("run the quick CPU config instead, logical CPU devices standing in for GPUs (results "
                     "flagged simulated): python -m bench run --config configs/quick.toml")


@dataclass(frozen=True)
class Finding:
    level: str  # "problem" (the sweep cannot run as configured), "warning" (it runs, but read this), "note"
    text: str
    fix: str = ""

    @property
    def line(self) -> str:
        return f"{self.text}: {self.fix}" if self.fix else self.text


@dataclass
class Verdict:
    runnable: bool
    line: str  # the one line: what is wrong and the fix, or why the sweep can run
    findings: list[Finding] = field(default_factory=list)
    # Problems of the "NVML sees GPUs but <backend> sees none" kind: what `bench run` refuses to start.
    gpus_unseen: list[Finding] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"runnable": self.runnable, "line": self.line,
                "findings": [{"level": f.level, "text": f.text, "fix": f.fix} for f in self.findings]}


def driver_cuda_major(inventory: Mapping[str, Any]) -> int | None:
    value = inventory.get("cuda_driver_version")
    try:
        return int(str(value).split(".")[0]) if value else None
    except ValueError:
        return None


def _major(version: Any) -> int | None:
    try:
        return int(str(version).split(".")[0]) if version else None
    except ValueError:
        return None


def install_hint(backend: str, inventory: Mapping[str, Any]) -> str:
    """The documented GPU install for one framework, for this driver's CUDA generation."""
    cuda = driver_cuda_major(inventory)
    if backend == "tensorflow":
        return 'pip install "tensorflow[and-cuda]"' if inventory.get("gpus") else "pip install tensorflow"
    if backend == "jax":
        if not inventory.get("gpus"):
            return "pip install jax"
        return 'pip install "jax[cuda13]"' if (cuda or 0) >= 13 else 'pip install "jax[cuda12]"'
    # PyPI's torch for Linux x86_64 is a CUDA build (several GB of CUDA libraries); PyTorch's own index has
    # the CPU build (pytorch.org/get-started/locally).
    tag = "cpu" if not inventory.get("gpus") else "cu130" if (cuda or 0) >= 13 else "cu126"
    return f"pip install torch --index-url https://download.pytorch.org/whl/{tag}"


def _hidden_by_env(env: Mapping[str, str]) -> str | None:
    raw = env.get("CUDA_VISIBLE_DEVICES")
    if raw is not None and [t.strip() for t in raw.split(",") if t.strip()] in ([], ["-1"]):
        return f"CUDA_VISIBLE_DEVICES={raw!r} hides every GPU"
    return None


def why_unseen(backend: str, facts: Mapping[str, Any], inventory: Mapping[str, Any],
               env: Mapping[str, str]) -> str:
    """The fix for "NVML sees GPUs but this framework sees none", most specific cause first."""
    hidden = _hidden_by_env(env)
    if hidden:
        return f"{hidden}: unset it"
    build = facts.get("build") or {}
    label = LABELS[backend]
    built, driver = _major(build.get("cuda")), driver_cuda_major(inventory)
    if built and driver and built > driver:
        return (f"the driver ({inventory.get('driver_version')}) supports CUDA {inventory.get('cuda_driver_version')} "
                f"but {label} was built for CUDA {build.get('cuda')}: upgrade the NVIDIA driver")
    packages = facts.get("gpu_packages") or {}
    if backend == "tensorflow":
        if build.get("cuda_build") is False:
            return f'this TensorFlow is a CPU-only build: {install_hint(backend, inventory)}'
        if not packages or any(v is None for v in packages.values()):
            return "install tensorflow[and-cuda]"
    if backend == "jax" and not any(packages.values()):
        return f"JAX has no CUDA plugin: {install_hint(backend, inventory)}"
    if backend == "torch" and not build.get("cuda"):
        return f"this torch ({facts.get('version')}) is a CPU build: {install_hint(backend, inventory)}"
    said = facts.get("gpu_error")
    return (f"{label} said {said!r}; check that LD_LIBRARY_PATH does not shadow the CUDA libraries and reinstall: "
            f"{install_hint(backend, inventory)}") if said else f"reinstall: {install_hint(backend, inventory)}"


def judge(config: BenchConfig, frameworks: Mapping[str, Any], inventory: Mapping[str, Any],
          env: Mapping[str, str], backends: Sequence[str] | None = None) -> Verdict:
    """Whether ``config`` (restricted to ``backends``, default: all of its backends) can run here."""
    backends = list(dict.fromkeys(backends if backends is not None else config.train.backend))
    nvml_gpus = list(inventory.get("gpus") or [])
    simulate = config.devices.simulate
    wanted = max(config.train.gpus) if "train" in config.suites else 1
    where = config.path or config.name
    findings: list[Finding] = []
    unseen: list[Finding] = []
    for backend in backends:
        facts = frameworks.get(backend) or {}
        label = LABELS[backend]
        status = facts.get("status")
        if status == "not_installed":
            finding = Finding("problem", f"{label}: not installed", install_hint(backend, inventory))
            findings.append(finding)
            if nvml_gpus and not simulate:
                unseen.append(finding)
            continue
        if status in ("failed", "timeout"):
            finding = Finding("problem", str(facts.get("reason")), f"reinstall: {install_hint(backend, inventory)}")
            findings.append(finding)
            if nvml_gpus and not simulate:
                unseen.append(finding)
            continue
        seen = list(facts.get("gpus") or [])
        if nvml_gpus and not seen:
            text = f"NVML sees {len(nvml_gpus)} GPU{'s' if len(nvml_gpus) != 1 else ''} but {label} sees none"
            if simulate:
                findings.append(Finding("warning", f"{text}; [devices] simulate = true, so its cases run on "
                                                   "logical CPU devices (flagged simulated)",
                                        why_unseen(backend, facts, inventory, env)))
            else:
                finding = Finding("problem", text, why_unseen(backend, facts, inventory, env))
                findings.append(finding)
                unseen.append(finding)
            continue
        if not nvml_gpus and not seen:
            if simulate:
                findings.append(Finding("note", f"no NVIDIA GPU here: {label} cases run on logical CPU devices "
                                                "standing in for GPUs (results flagged simulated)"))
            else:
                findings.append(Finding(
                    "problem", f"no NVIDIA GPU here (NVML: {inventory.get('nvml') or 'unavailable'}) and {where} "
                               f"asks for real GPUs ([devices] simulate = false), so every {label} GPU case "
                               "would be skipped", QUICK_CONFIG_HINT))
            continue
        findings.extend(_seen_findings(backend, facts, inventory, nvml_gpus, wanted, simulate))
    findings.extend(_precision_findings(config, frameworks.get("gpus") or []))
    problems = [f for f in findings if f.level == "problem"]
    if problems:
        return Verdict(False, problems[0].line, findings, unseen)
    seen_counts = ", ".join(f"{LABELS[b]} sees {len((frameworks.get(b) or {}).get('gpus') or [])} "
                            f"of {len(nvml_gpus)} NVML GPU(s)" for b in backends) if nvml_gpus else \
        "no GPU; devices simulated"
    return Verdict(True, f"{where} can run here ({seen_counts})", findings, unseen)


def _seen_findings(backend: str, facts: Mapping[str, Any], inventory: Mapping[str, Any],
                   nvml_gpus: list[Any], wanted: int, simulate: bool) -> list[Finding]:
    label = LABELS[backend]
    seen = list(facts.get("gpus") or [])
    findings = []
    if not nvml_gpus:
        findings.append(Finding("warning", f"{label} sees {len(seen)} GPU(s) but NVML does not "
                                           f"({inventory.get('nvml')}): GPU utilisation will not be recorded",
                                "pip install nvidia-ml-py, and check the NVIDIA driver's libnvidia-ml.so.1"))
    for gpu in seen:
        if gpu.get("matched_by") == "unmatched":
            findings.append(Finding("warning", f"{label} GPU {gpu.get('ordinal')} ({gpu.get('name')}) matches no "
                                               f"NVML GPU ({gpu.get('match_error')})"))
        elif gpu.get("monitor_nvml_index") is not None and gpu.get("monitor_nvml_index") != gpu.get("nvml_index"):
            findings.append(Finding(
                "warning", f"{label} GPU {gpu.get('ordinal')} is NVML GPU {gpu.get('nvml_index')} (by "
                           f"{gpu.get('matched_by')}) but CUDA's device order maps it to NVML GPU "
                           f"{gpu.get('monitor_nvml_index')}: GPU metrics would describe the wrong GPU",
                "export CUDA_DEVICE_ORDER=PCI_BUS_ID"))
        elif gpu.get("ambiguous"):
            findings.append(Finding("note", f"{label} GPU {gpu.get('ordinal')} is matched to NVML GPU "
                                            f"{gpu.get('nvml_index')} by CUDA's fastest-first guess (mixed GPU "
                                            "models)", "export CUDA_DEVICE_ORDER=PCI_BUS_ID to make it certain"))
    if wanted > len(seen):
        if backend == "torch":
            pass  # Keras has no multi-device data parallelism on torch; those cases skip with that reason
        elif simulate and backend == "tensorflow":
            # Only TensorFlow can carve logical GPUs (bench.measure.devices); JAX's GPUs are what they are.
            findings.append(Finding("note", f"cases asking for up to {wanted} GPUs get logical GPUs carved out of "
                                            f"GPU 0 ({label} sees {len(seen)}; results flagged simulated)"))
        else:
            findings.append(Finding("note", f"{label} sees {len(seen)} GPU(s): cases asking for more (up to "
                                            f"{wanted}) are recorded as skipped"))
    built, driver = _major((facts.get("build") or {}).get("cuda")), driver_cuda_major(inventory)
    if built and driver and built < driver - 1:
        findings.append(Finding("note", f"{label} was built for CUDA {(facts.get('build') or {}).get('cuda')}, the "
                                        f"driver supports {inventory.get('cuda_driver_version')}"))
    return findings


def _precision_findings(config: BenchConfig, capabilities: list[Mapping[str, Any]]) -> list[Finding]:
    precisions = set(config.train.precision) | (set(config.cpu_predict.precision) if "cpu_predict" in config.suites
                                                 else set())
    findings = []
    for gpu in capabilities:
        name = f"GPU {gpu.get('nvml_index')} ({gpu.get('name')}, compute capability {gpu.get('compute_capability')})"
        if "mixed_float16" in precisions and gpu.get("fp16_tensor_cores") is False:
            findings.append(Finding("warning", f"{name} has no float16 tensor cores (7.0+): mixed_float16 cases "
                                               "run but cannot show a tensor-core speed-up"))
        if "mixed_bfloat16" in precisions and gpu.get("bf16_tensor_cores") is False:
            findings.append(Finding("warning", f"{name} has no bfloat16 tensor cores (8.0+): mixed_bfloat16 "
                                               "cases run emulated or slower than float32"))
    return findings
