"""The rehearsal's checks of what the device run brings back: the verdict's lines, as gpu_summary prints them."""

from __future__ import annotations

import importlib.util
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("device_rehearsal_check", REPO / "scripts" / "device_rehearsal_check.py")
check = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(check)

VERDICT = """\
=== verdict (151 s) ===
run 20261205T171243Z-gpu-jax-6a2c6c: data mnist
jax Keras 3.15.1 batch    256 float32         best Keras   37.9 k samples/s [input numpy]
jax Keras 3.16.0.dev2026102704 batch    256 float32         best Keras   41.8 k samples/s [input device]
bottleneck: jax, batch 256, float32: the device
profile: batch 256 float32: fit 8.602 ms/step
"""


def test_a_verdict_with_one_line_per_keras_passes():
    assert check.check_verdict("sweep output\n" + VERDICT) == []


def test_anything_after_the_verdict_or_no_batch_line_fails():
    assert check.check_verdict(VERDICT + "Traceback (most recent call last):\n")[0].startswith("printed after")
    no_batch = "\n".join(line for line in VERDICT.splitlines() if " batch    256" not in line)
    assert check.check_verdict(no_batch) == ["the verdict names no batch (no row of where_the_time_goes for the "
                                             "batches asked)"]
    assert check.check_verdict("no verdict at all")[0].startswith("the console has no verdict")
