"""Framework thread pools, fixed in each worker before the framework starts, and read back for the record.

Why: on a small CPU machine the pools are the largest per-process effect measured here. With TensorFlow's
default pools (as many threads as cores, two pools) processes of the same case differed by up to 1.7x on
the project's 2-core box, as each process's threads happened to land; with one intra-op and one inter-op
thread the processes agreed within 2-8 % at about the same throughput (README, "Noise at its source").
``[threads]`` in the config (bench.config.ThreadSettings), resolved once per run by
:func:`bench.config.resolve_threads`; 0 keeps the framework's own default.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any


def apply_threads(backend: str, threads: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """Set the backend's pools (call before its runtime initialises); returns what it reads back, or None."""
    if not threads:
        return None
    intra, inter = int(threads.get("intra_op") or 0), int(threads.get("inter_op") or 0)
    if backend == "tensorflow":
        import tensorflow as tf

        if intra:
            tf.config.threading.set_intra_op_parallelism_threads(intra)
        if inter:
            tf.config.threading.set_inter_op_parallelism_threads(inter)
    elif backend == "torch":
        import torch

        if intra:
            torch.set_num_threads(intra)
        if inter:
            try:
                torch.set_num_interop_threads(inter)
            except RuntimeError:  # already started: torch allows it once, before any parallel work
                pass
    return read_threads(backend)


def read_threads(backend: str) -> dict[str, Any] | None:
    """What the backend runs with now: {"intra_op", "inter_op"} (0 = its default) and, for JAX, the flags."""
    if backend == "tensorflow":
        import tensorflow as tf

        return {"intra_op": tf.config.threading.get_intra_op_parallelism_threads(),
                "inter_op": tf.config.threading.get_inter_op_parallelism_threads()}
    if backend == "torch":
        import torch

        return {"intra_op": torch.get_num_threads(), "inter_op": torch.get_num_interop_threads()}
    if backend == "jax":
        flags = os.environ.get("XLA_FLAGS", "")
        one = "intra_op_parallelism_threads=1" in flags
        return {"intra_op": 1 if one else 0, "inter_op": 0, "xla_flags": flags}
    return None
