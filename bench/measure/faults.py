"""Fault injection for reliability tests: make a named case fail the way real ones do.

``BENCH_FAULTS="<glob>=<fault>[;<glob>=<fault>...]"`` in a worker's environment, matched against case
ids with :func:`fnmatch.fnmatch`. Faults:

- ``oom``: raise TensorFlow's own ``ResourceExhaustedError`` (what a too-large batch raises on a GPU);
- ``nan``: set the output layer's bias to NaN, so the real training step produces a non-finite loss;
- ``segfault``: the worker process receives SIGSEGV (a crash in a native library);
- ``hang``: the case never finishes (exercises ``case_timeout_s``);
- ``worker_dies``: in a multi-worker case, worker 1 is SIGKILLed at its first timed round (applied by
  :mod:`bench.measure.multiworker`; exercises the launcher's dead-worker detection).

Unset (always, outside tests) this module does nothing.
"""

from __future__ import annotations

import fnmatch
import os
import signal
import time

ENV_VAR = "BENCH_FAULTS"


def fault_for(case_id: str, env: dict[str, str] | None = None) -> str | None:
    spec = (env if env is not None else os.environ).get(ENV_VAR, "")
    for item in filter(None, (part.strip() for part in spec.split(";"))):
        pattern, _, fault = item.rpartition("=")  # case ids contain "=" themselves
        if fnmatch.fnmatch(case_id, pattern):
            return fault
    return None


def inject(case_id: str) -> str | None:
    """Trigger process-level faults now; return the fault name for the ones the caller must apply."""
    fault = fault_for(case_id)
    if fault == "oom":
        import tensorflow as tf

        raise tf.errors.ResourceExhaustedError(
            None, None, f"OOM when allocating tensor (injected by {ENV_VAR} for {case_id})"
        )
    if fault == "segfault":
        os.kill(os.getpid(), signal.SIGSEGV)
    if fault == "hang":
        while True:
            time.sleep(60)
    return fault
