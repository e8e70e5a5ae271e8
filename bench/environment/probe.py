"""What one framework sees, printed as one JSON line: ``python -m bench.environment.probe tensorflow``.

This module runs only as its own child process (``bench.environment.frameworks`` starts it with a
timeout): importing a framework with a broken CUDA install can hang or crash, and the parent process
never imports TensorFlow, JAX or torch. Every fact is gathered in its own ``try`` so one failing call
(an old jaxlib without ``cuda_versions``, a torch without ``uuid``) costs that fact, never the line.

The line starts with :data:`MARKER`; frameworks print their own noise on stdout and stderr.
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
import warnings
from typing import Any

MARKER = "@@bench-probe@@ "


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"[:400]


def _cuda_version(value: int | None) -> str | None:
    """CUDA encodes 12.8 as 12080 (cudaRuntimeGetVersion)."""
    if not value:
        return None
    return f"{value // 1000}.{value % 1000 // 10}"


def _cudnn_version(value: int | None) -> str | None:
    """cuDNN 9 encodes 9.8.0 as 90800; cuDNN 8 encoded 8.9.2 as 8902."""
    if not value:
        return None
    if value >= 90000:
        return f"{value // 10000}.{value % 10000 // 100}.{value % 100}"
    return f"{value // 1000}.{value % 1000 // 100}.{value % 100}"


# --------------------------------------------------------------------------- TensorFlow


_TF_DESC = re.compile(r"device: (\d+), name: (.*?), pci bus id: ([0-9a-fA-F:.]+)")


def probe_tensorflow(out: dict[str, Any]) -> None:
    import tensorflow as tf

    out["version"] = tf.__version__
    try:
        info = tf.sysconfig.get_build_info()
        out["build"] = {"cuda": info.get("cuda_version"), "cudnn": info.get("cudnn_version"),
                        "cuda_build": bool(info.get("is_cuda_build")),
                        "cuda_compute_capabilities": list(info.get("cuda_compute_capabilities") or [])}
    except Exception as exc:  # noqa: BLE001 - a missing fact, not a failed probe
        out["errors"].append(f"build info: {_first_line(exc)}")
    physical = tf.config.list_physical_devices("GPU")
    for device in physical:
        try:
            # Growth on demand, set before anything initialises the GPUs: this probe must not hold
            # a whole GPU's memory while the sweep starts.
            tf.config.experimental.set_memory_growth(device, True)
        except (RuntimeError, ValueError):
            pass
    gpus = []
    for ordinal, device in enumerate(physical):
        entry: dict[str, Any] = {"ordinal": ordinal, "name": None, "compute_capability": None,
                                 "uuid": None, "pci_bus_id": None}
        try:
            details = tf.config.experimental.get_device_details(device)
            entry["name"] = details.get("device_name")
            cc = details.get("compute_capability")
            entry["compute_capability"] = f"{cc[0]}.{cc[1]}" if cc else None
        except Exception as exc:  # noqa: BLE001
            out["errors"].append(f"device details: {_first_line(exc)}")
        gpus.append(entry)
    if physical:
        # TensorFlow names no UUID; its device description carries the PCI bus id, which NVML matches.
        try:
            from tensorflow.python.client import device_lib

            for local in device_lib.list_local_devices():
                match = _TF_DESC.search(local.physical_device_desc or "")
                if local.device_type == "GPU" and match and int(match.group(1)) < len(gpus):
                    gpus[int(match.group(1))]["pci_bus_id"] = match.group(3)
        except Exception as exc:  # noqa: BLE001
            out["errors"].append(f"device list: {_first_line(exc)}")
    out["gpus"] = gpus


# --------------------------------------------------------------------------- JAX


def probe_jax(out: dict[str, Any]) -> None:
    import jax

    out["version"] = jax.__version__
    try:
        from jax._src.lib import cuda_versions  # private, but what jax.print_environment_info() reads

        if cuda_versions is not None:
            out["build"] = {"cuda": _cuda_version(cuda_versions.cuda_runtime_build_version()),
                            "cudnn": _cudnn_version(cuda_versions.cudnn_build_version()), "cuda_build": True}
            out["runtime"] = {"cuda": _cuda_version(cuda_versions.cuda_runtime_get_version()),
                              "cudnn": _cudnn_version(cuda_versions.cudnn_get_version())}
        else:
            out["build"] = {"cuda": None, "cudnn": None, "cuda_build": False}
    except Exception as exc:  # noqa: BLE001
        out["errors"].append(f"cuda versions: {_first_line(exc)}")
    try:
        devices = jax.devices("gpu")
    except RuntimeError as exc:
        # "Unknown backend: 'gpu' requested..." without a CUDA plugin; "Unable to initialize backend
        # 'cuda': ..." with a plugin that cannot start (driver too old, libraries missing).
        out["gpu_error"] = _first_line(exc)
        devices = []
    out["gpus"] = [
        {
            "ordinal": getattr(d, "local_hardware_id", None),  # the CUDA device number in this process
            "name": getattr(d, "device_kind", None),
            "compute_capability": getattr(d, "compute_capability", None),
            "uuid": None,
            "pci_bus_id": getattr(d, "pci_bus_id", None),
        }
        for d in devices
    ]


# --------------------------------------------------------------------------- torch


def probe_torch(out: dict[str, Any]) -> None:
    import torch

    out["version"] = torch.__version__
    cudnn = None
    try:
        cudnn = torch.backends.cudnn.version()
    except Exception as exc:  # noqa: BLE001
        out["errors"].append(f"cudnn version: {_first_line(exc)}")
    out["build"] = {"cuda": torch.version.cuda, "cudnn": _cudnn_version(cudnn), "cuda_build": torch.version.cuda is not None}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        available = torch.cuda.is_available()
    if not available:
        # torch says why only as a warning ("The NVIDIA driver on your system is too old ...").
        messages = [str(w.message).strip().splitlines()[0] for w in caught if str(w.message).strip()]
        out["gpu_error"] = messages[-1][:400] if messages else None
        out["gpus"] = []
        return
    gpus = []
    for ordinal in range(torch.cuda.device_count()):
        props = torch.cuda.get_device_properties(ordinal)
        uuid = getattr(props, "uuid", None)
        uuid_text = str(uuid) if uuid is not None else None
        if uuid_text and not uuid_text.upper().startswith(("GPU-", "MIG-")):
            uuid_text = f"GPU-{uuid_text}"  # torch prints the bare UUID; NVML names it GPU-<uuid>
        bus = None
        try:  # newer torch builds only
            bus = f"{props.pci_domain_id:04x}:{props.pci_bus_id:02x}:{props.pci_device_id:02x}.0"
        except (AttributeError, TypeError, ValueError):
            pass
        gpus.append({"ordinal": ordinal, "name": props.name, "compute_capability": f"{props.major}.{props.minor}",
                     "uuid": uuid_text, "pci_bus_id": bus})
    out["gpus"] = gpus


# --------------------------------------------------------------------------- Keras on this backend


def probe_keras(framework: str, gpus: int) -> dict[str, Any]:
    """Keras' version and what ``jit_compile="auto"`` becomes for the reference model, as the suite builds it.

    Keras resolves "auto" in ``Trainer._resolve_auto_jit_compile``: torch is always eager; TensorFlow
    gets no XLA on a CPU-only machine or whenever a ``tf.distribute`` strategy is in scope (the suite
    always builds inside ``MirroredStrategy``, even for one GPU); otherwise XLA when every layer supports
    it. Compiling the real model is the exact answer for the installed Keras.
    """
    import keras

    from bench.measure.model import build_model, compile_model

    facts: dict[str, Any] = {"version": keras.__version__, "backend": keras.backend.backend()}
    model = build_model()
    compile_model(model, "auto")
    facts["jit_compile_auto_without_strategy"] = bool(model.jit_compile)
    if framework == "tensorflow":
        import tensorflow as tf

        devices = [f"/gpu:{i}" for i in range(gpus)] or ["/cpu:0"]
        with tf.distribute.MirroredStrategy(devices).scope():
            model = build_model()
            compile_model(model, "auto")
        facts["jit_compile_auto"] = bool(model.jit_compile)
    else:
        facts["jit_compile_auto"] = facts["jit_compile_auto_without_strategy"]
    return facts


PROBES = {"tensorflow": probe_tensorflow, "jax": probe_jax, "torch": probe_torch}


def probe(framework: str) -> dict[str, Any]:
    started = time.perf_counter()
    out: dict[str, Any] = {"framework": framework, "version": None, "build": None, "runtime": None,
                           "gpus": [], "gpu_error": None, "keras": None, "errors": []}
    PROBES[framework](out)
    try:
        out["keras"] = probe_keras(framework, len(out["gpus"]))
    except ImportError as exc:
        out["keras"] = {"error": f"not importable: {exc}"}
    except Exception as exc:  # noqa: BLE001
        out["keras"] = {"error": _first_line(exc)}
    out["seconds"] = round(time.perf_counter() - started, 3)
    return out


def main(argv: list[str]) -> int:
    if len(argv) != 1 or argv[0] not in PROBES:
        print(f"usage: python -m bench.environment.probe {{{','.join(PROBES)}}}", file=sys.stderr)
        return 2
    os.environ.setdefault("KERAS_BACKEND", argv[0])
    facts = probe(argv[0])
    sys.stdout.write("\n" + MARKER + json.dumps(facts, sort_keys=True) + "\n")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
