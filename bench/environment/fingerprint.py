"""Environment fingerprint, gathered in the parent process without importing any framework.

Versions come from package metadata, GPUs from NVML; comparisons refuse runs whose fingerprints
differ in what matters, so everything that can change a throughput number belongs here.
"""

from __future__ import annotations

import os
import platform
import socket
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

PACKAGES = ("tensorflow", "keras", "numpy", "jax", "jaxlib", "torch", "tf_keras", "pandas", "pytest-benchmark",
            "nvidia-ml-py", "scipy")
ENV_PREFIXES = ("TF_", "XLA_", "KERAS_", "CUDA_", "NVIDIA_", "OMP_", "OPENBLAS_", "MKL_", "JAX_", "NCCL_", "TORCH_",
                "PYTORCH_")
ENV_NAMES = ("LD_LIBRARY_PATH",)  # can shadow the CUDA libraries a framework brought (JAX's install notes)
# TF_ is also Terraform's prefix; its variables say nothing about a run and TF_TOKEN_* are credentials.
FOREIGN_PREFIXES = ("TF_CLI_", "TF_VAR_", "TF_LOG", "TF_TOKEN_", "TF_REGISTRY_", "TF_IN_AUTOMATION", "TF_INPUT",
                    "TF_DATA_DIR", "TF_WORKSPACE", "TF_PLUGIN_CACHE_DIR")
SECRET_WORDS = ("TOKEN", "SECRET", "PASSWORD", "CREDENTIAL", "API_KEY")


def relevant_env_vars(env: dict[str, str] | None = None) -> dict[str, str]:
    """The variables that can change a result, never another tool's or anything that looks like a secret."""
    env = dict(os.environ if env is None else env)
    return {k: v for k, v in sorted(env.items())
            if (k.startswith(ENV_PREFIXES) or k in ENV_NAMES) and not k.startswith(FOREIGN_PREFIXES)
            and not any(word in k.upper() for word in SECRET_WORDS)}


def package_versions() -> dict[str, str | None]:
    versions: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    if versions.get("tensorflow") is None:
        # The CPU-only and CUDA wheels have other distribution names.
        for alt in ("tensorflow-cpu", "tensorflow-gpu", "tf-nightly"):
            try:
                versions["tensorflow"] = metadata.version(alt)
                break
            except metadata.PackageNotFoundError:
                continue
    return versions


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def git_state(cwd: Path | None = None) -> tuple[str | None, bool | None]:
    cwd = cwd or Path(__file__).resolve().parents[2]
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True,
                                timeout=10, check=True).stdout.strip()
        dirty = bool(subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=cwd,
                                    capture_output=True, text=True, timeout=10, check=True).stdout.strip())
        return commit, dirty
    except (OSError, subprocess.SubprocessError):
        # A copy of the tree without .git (e.g. shipped to a GPU machine): the caller may say which commit.
        return os.environ.get("BENCH_GIT_COMMIT") or None, None


def gpu_inventory() -> dict[str, Any]:
    try:
        from bench.monitor import nvml

        return nvml.gpu_inventory()
    except Exception as exc:  # noqa: BLE001 - a fingerprint never stops a run
        return {"gpus": [], "driver_version": None, "cuda_driver_version": None,
                "nvml": f"unavailable: {type(exc).__name__}: {exc}"}


def fingerprint(config_sha256: str = "", seed: int | None = None) -> dict[str, Any]:
    commit, dirty = git_state()
    gpus = gpu_inventory()
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "hostname": socket.gethostname(),
        "packages": package_versions(),
        "gpus": gpus.get("gpus", []),
        "driver_version": gpus.get("driver_version"),
        "cuda_driver_version": gpus.get("cuda_driver_version"),
        "nvml": gpus.get("nvml"),
        "env_vars": relevant_env_vars(),
        "git_commit": commit,
        "git_dirty": dirty,
        "config_sha256": config_sha256,
        "seed": seed,
    }


def check_cuda_visible_devices(env: dict[str, str] | None = None, nvml_module: Any = None) -> str | None:
    """Refuse a ``CUDA_VISIBLE_DEVICES`` that names GPUs this machine does not have.

    Raises :class:`bench.monitor.inventory.GpuMappingError` (one line, exit 2) when an entry names no GPU:
    CUDA would silently hide it and every entry after it, and the sweep would then measure fewer GPUs
    than asked. An empty value or ``-1`` is a deliberate "no GPU" and only returns a note. Without
    NVML (no driver) nothing can be checked and None is returned.
    """
    from bench.monitor import inventory as gpu_inventory

    env = dict(os.environ if env is None else env)
    raw = env.get("CUDA_VISIBLE_DEVICES")
    if raw is None:
        return None
    tokens = [t.strip() for t in raw.split(",") if t.strip()]
    if not tokens or tokens == ["-1"]:
        return f"CUDA_VISIBLE_DEVICES={raw!r} hides every GPU: cases run on CPU devices or are skipped"
    try:
        gpu_inventory.resolve_gpus(list(range(len(tokens))), nvml=nvml_module, env=env)
    except gpu_inventory.NvmlUnavailable:
        return None
    return None
