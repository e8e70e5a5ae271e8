"""The physical limit: model FLOPs per training sample of the reference MLP, the FLOP rate a case achieved,
and its share of the device's datasheet peak (model FLOPs utilisation, MFU).

FLOPs come from the layer shapes in :mod:`bench.mlp_spec` (the spec Keras and the native loops build
from), never a typed-in number. Per sample and Dense layer ``(fan_in, fan_out)``, a multiply-add counted
as 2 FLOPs:

- forward: ``2 · fan_in · fan_out``;
- backward: the weight gradient ``2 · fan_in · fan_out``, and the gradient with respect to the layer's input
  ``2 · fan_in · fan_out`` for every layer but the first (nothing needs a gradient for the images).

That is the "model FLOPs" of PaLM's MFU (what the model needs, not what an implementation happens to run):
bias adds, activations, the loss and dropout are element-wise and left out (under 0.2 % here), and so is
the optimizer's update, which is per step, not per sample (about 10 FLOPs per weight: ~0.9 % of a sample's
FLOPs at batch 256, ~0.05 % at 4 096).

``achieved TFLOP/s = FLOPs per sample × samples/s / 1e12``; ``MFU = achieved / (peak × devices)``, the
peak from :mod:`bench.analyze.peaks` for the case's precision and backend. A CPU, a simulated device or a
GPU the table does not know has no peak: MFU "unknown", with the reason.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from bench import mlp_spec
from bench.analyze import peaks


def layer_flops(shapes: Sequence[tuple[int, int]] = mlp_spec.DENSE_SHAPES) -> list[dict[str, int]]:
    """Per Dense layer: its shape and forward / weight-gradient / input-gradient FLOPs per sample."""
    rows = []
    for index, (fan_in, fan_out) in enumerate(shapes):
        matmul = 2 * fan_in * fan_out
        rows.append({"fan_in": fan_in, "fan_out": fan_out, "forward": matmul, "weight_grad": matmul,
                     "input_grad": 0 if index == 0 else matmul})
    return rows


def training_flops_per_sample(shapes: Sequence[tuple[int, int]] = mlp_spec.DENSE_SHAPES) -> int:
    """Forward + backward FLOPs of one training sample (2 407 424 for 784-512-256-10)."""
    return sum(r["forward"] + r["weight_grad"] + r["input_grad"] for r in layer_flops(shapes))


def model_flops() -> dict[str, Any]:
    """What ``derived.model_flops`` stores: the shapes, the count per layer and the rule, in words."""
    layers = layer_flops()
    return {"layers": layers, "flops_per_sample": training_flops_per_sample(),
            "forward_flops_per_sample": sum(r["forward"] for r in layers),
            "rule": "per Dense layer 2·in·out forward, 2·in·out weight gradient, 2·in·out input gradient "
                    "(not for the first layer); element-wise work and the optimizer update left out "
                    "(bench/analyze/flops.py)"}


def gpu_model(environment: Mapping[str, Any] | None) -> str | None:
    """The GPU model every case ran on (NVML's name), or None: no GPU, or GPUs of several models."""
    names = {gpu.get("name") for gpu in (environment or {}).get("gpus") or [] if gpu.get("name")}
    return names.pop() if len(names) == 1 else None


def utilisation(samples_per_second: float | None, devices: int, precision: str, backend: str,
                gpu_name: str | None, on_gpu: bool) -> dict[str, Any]:
    """``achieved_tflops``, ``peak_tflops`` (all devices), ``mfu`` and what the peak is, or why there is none."""
    flops = training_flops_per_sample()
    achieved = samples_per_second * flops / 1e12 if samples_per_second else None
    if not on_gpu:
        peak: dict[str, Any] = {"device": None, "kind": None, "label": None, "tflops": None, "source": None,
                                "why": "not a GPU: no datasheet peak"}
    else:
        peak = peaks.peak_for(gpu_name, precision, backend)
    total = peak["tflops"] * devices if peak["tflops"] is not None else None
    return {"flops_per_sample": flops, "achieved_tflops": achieved, "peak_tflops": total,
            "peak_kind": peak["label"], "peak_device": peak["device"], "peak_source": peak["source"],
            "mfu": achieved / total if achieved is not None and total else None,
            "mfu_unknown_why": peak["why"]}
