"""Datasheet peak throughput of common NVIDIA GPUs, dense (without 2:4 sparsity), in TFLOP/s: the physical
limit a training case's achieved FLOP rate is compared with (bench.analyze.flops).

Each entry cites the NVIDIA datasheet or whitepaper it is read from. Datasheets print tensor-core peaks
"with sparsity" (marked *); the dense peak is half of that, and that half is what is stored here. A GPU
this table does not know, and every CPU, has no peak: its utilisation is "unknown", never a guess.

Which peak a case is held against (:func:`peak_for`):

- ``mixed_bfloat16`` / ``mixed_float16``: the BF16 / FP16 tensor-core peak (Keras computes the matmuls in
  that type);
- ``float32``: the TF32 tensor-core peak where the backend rounds float32 matmuls to TF32 by default on
  Ampere and newer — TensorFlow (``tf.config.experimental.enable_tensor_float_32_execution``, on by
  default since 2.4) and JAX/XLA (default matmul precision) — else the plain FP32 peak: torch keeps
  ``torch.backends.cuda.matmul.allow_tf32 = False`` by default (since 1.12) and Keras does not change it.
  A GPU without TF32 (V100) uses FP32 for every backend.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

H100 = "https://www.nvidia.com/en-us/data-center/h100/"
H200 = "https://www.nvidia.com/en-us/data-center/h200/"
A100 = ("https://www.nvidia.com/content/dam/en-zz/Solutions/Data-Center/a100/pdf/"
        "nvidia-a100-datasheet-us-nvidia-1758950-r4-web.pdf")
L4 = "https://www.nvidia.com/en-us/data-center/l4/"
L40S = "https://www.nvidia.com/en-us/data-center/l40s/"
A10 = "https://www.nvidia.com/en-us/data-center/products/a10-gpu/"
V100 = "https://images.nvidia.com/content/technologies/volta/pdf/volta-v100-datasheet-update-us-1165301-r5.pdf"
ADA = "https://images.nvidia.com/aem-dam/Solutions/geforce/ada/nvidia-ada-gpu-architecture.pdf"


@dataclass(frozen=True)
class DevicePeak:
    """One GPU model's dense peaks, TFLOP/s (None: the hardware has no such unit)."""

    model: str
    pattern: str  # regular expression matched against the NVML / framework name, case-insensitive
    fp32: float
    tf32: float | None
    bf16: float | None
    fp16: float | None
    source: str
    note: str = ""


# Most specific first: "H200 NVL" before "H200", "H100 PCIe" before "H100".
PEAKS: tuple[DevicePeak, ...] = (
    DevicePeak("H200 NVL", r"\bH200\b.*\bNVL\b", 60.0, 417.5, 835.5, 835.5, H200,
               "datasheet: TF32 835*, BF16/FP16 1,671* TFLOPS"),
    DevicePeak("H200 SXM", r"\bH200\b", 67.0, 494.5, 989.5, 989.5, H200,
               "datasheet: TF32 989*, BF16/FP16 1,979* TFLOPS"),
    DevicePeak("H100 NVL", r"\bH100\b.*\bNVL\b", 60.0, 417.5, 835.5, 835.5, H100,
               "datasheet: TF32 835*, BF16/FP16 1,671* TFLOPS"),
    DevicePeak("H100 PCIe", r"\bH100\b.*\bPCIe\b", 51.0, 378.0, 756.5, 756.5, H100,
               "datasheet: TF32 756*, BF16/FP16 1,513* TFLOPS"),
    DevicePeak("H100 SXM", r"\bH100\b", 67.0, 494.5, 989.5, 989.5, H100,
               "datasheet: TF32 989*, BF16/FP16 1,979* TFLOPS"),
    DevicePeak("A100", r"\bA100\b", 19.5, 156.0, 312.0, 312.0, A100, "same peaks for PCIe and SXM4, 40 and 80 GB"),
    DevicePeak("L40S", r"\bL40S\b", 91.6, 183.0, 366.5, 366.5, L40S, "datasheet: TF32 366*, BF16/FP16 733* TFLOPS"),
    DevicePeak("L4", r"\bL4\b", 30.3, 60.0, 121.0, 121.0, L4, "datasheet: TF32 120*, BF16/FP16 242* TFLOPS"),
    DevicePeak("A10", r"\bA10\b", 31.2, 62.5, 125.0, 125.0, A10, "datasheet: TF32 62.5, BF16/FP16 125 TFLOPS"),
    DevicePeak("V100 SXM2", r"\bV100\b.*\bSXM", 15.7, None, None, 125.0, V100,
               "no TF32 or BF16 tensor cores: FP16 tensor 125 TFLOPS"),
    DevicePeak("V100 PCIe", r"\bV100\b", 14.0, None, None, 112.0, V100,
               "no TF32 or BF16 tensor cores: FP16 tensor 112 TFLOPS"),
    DevicePeak("GeForce RTX 4090", r"\bRTX 4090\b", 82.6, 82.6, 165.2, 165.2, ADA,
               "Ada whitepaper, FP32 accumulate: TF32 82.6, BF16/FP16 165.2 TFLOPS dense"),
)

TF32_BY_DEFAULT = {"tensorflow": True, "jax": True, "torch": False}
PEAK_NAMES = {"fp32": "FP32", "tf32": "TF32 tensor", "bf16": "BF16 tensor", "fp16": "FP16 tensor"}


def find_device(name: str | None) -> DevicePeak | None:
    """The table's entry for a GPU name as NVML or a framework gives it ("NVIDIA H100 80GB HBM3"), or None."""
    if not name:
        return None
    return next((peak for peak in PEAKS if re.search(peak.pattern, name, re.IGNORECASE)), None)


def peak_kind(precision: str, backend: str, device: DevicePeak) -> str:
    """Which unit a case at ``precision`` on ``backend`` runs its matmuls on: fp32, tf32, bf16 or fp16."""
    if precision.endswith("bfloat16"):
        return "bf16"
    if precision.endswith("float16"):
        return "fp16"
    return "tf32" if TF32_BY_DEFAULT.get(backend, False) and device.tf32 is not None else "fp32"


def peak_for(gpu_name: str | None, precision: str, backend: str) -> dict[str, Any]:
    """The peak one device offers a case: ``{"device", "kind", "label", "tflops", "source", "why"}``;
    ``tflops`` is None (with ``why``) for an unknown GPU or a unit the GPU does not have."""
    device = find_device(gpu_name)
    if device is None:
        return {"device": gpu_name, "kind": None, "label": None, "tflops": None, "source": None,
                "why": f"no datasheet peak for {gpu_name!r} in bench/analyze/peaks.py" if gpu_name else "no GPU"}
    kind = peak_kind(precision, backend, device)
    tflops = getattr(device, kind)
    return {"device": device.model, "kind": kind, "label": PEAK_NAMES[kind], "tflops": tflops,
            "source": device.source,
            "why": None if tflops is not None else f"the {device.model} has no {PEAK_NAMES[kind]} unit"}


def table_rows() -> list[Mapping[str, Any]]:
    """The table as rows, for docs and the report's sources list."""
    return [{"model": p.model, "fp32": p.fp32, "tf32": p.tf32, "bf16": p.bf16, "fp16": p.fp16, "source": p.source,
             "note": p.note} for p in PEAKS]
