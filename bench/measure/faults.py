"""Fault injection for reliability tests: make a named case fail the way real ones do.

``BENCH_FAULTS="<glob>=<fault>[;<glob>=<fault>...]"`` in a worker's environment, matched against case
ids with :func:`fnmatch.fnmatch`. Faults:

- ``oom``: raise TensorFlow's own ``ResourceExhaustedError`` (what a too-large batch raises on a GPU);
- ``nan``: set the output layer's bias to NaN, so the real training step produces a non-finite loss;
- ``segfault``: the worker process receives SIGSEGV (a crash in a native library);
- ``segfault_once``: the same, but only the first time the case runs under one sweep (the sweep's retry in a
  fresh worker then measures it; a marker file per sweep process and case, in the temporary folder);
- ``hang``: the case never finishes (exercises ``case_timeout_s``);
- ``worker_dies``: in a multi-worker case, worker 1 is SIGKILLed at its first timed round (applied by
  :mod:`bench.measure.multiworker`; exercises the launcher's dead-worker detection).

Unset (always, outside tests) this module does nothing.

A *known slowdown* for testing the regression gate is a config setting instead (``[faults] slowdown``),
so it travels in the run document's config: :func:`slowdown_callbacks` returns a Keras callback that
sleeps after every training step for ``slowdown`` times that step's measured duration, and marks the
case (``flags.injected_slowdown``, ``metrics.injected_slowdown``) so the run can never pass for a real one
(``promote`` refuses it, a baseline history refuses it, ``compare`` says so).
"""

from __future__ import annotations

import fnmatch
import hashlib
import os
import signal
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.config import FaultSettings

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
    if fault == "segfault_once":
        digest = hashlib.sha256(case_id.encode()).hexdigest()[:16]
        marker = Path(tempfile.gettempdir()) / f"bench-segfault-once-{os.getppid()}-{digest}"
        if not marker.exists():
            marker.touch()
            os.kill(os.getpid(), signal.SIGSEGV)
    if fault == "hang":
        while True:
            time.sleep(60)
    return fault


# Sleeping less than this at a time overshoots by a large share (timer slack, scheduler tick), so the
# owed sleep is accumulated and paid in slices of at least this length, and on every epoch's last step.
MIN_SLEEP_S = 0.002


def slowdown_callbacks(case_id: str, faults: FaultSettings, record: dict[str, Any],
                       clock: Callable[[], float] = time.perf_counter,
                       sleep: Callable[[float], None] = time.sleep) -> list[Any]:
    """``[Slowdown callback]`` when ``[faults] slowdown`` applies to this case, else ``[]``.

    Each step's duration is the time from the end of the previous step (after its sleep) to the end of
    this one, or from the epoch's first batch begin; the callback owes ``slowdown`` times that and
    sleeps it off. On a device that runs synchronously with the host (CPU) every step becomes
    ``1 + slowdown`` times longer; where the host runs ahead of the device (GPU queues) some of the sleep
    can overlap queued work, so the realised slowdown is what a comparison with an unslowed run shows.
    """
    fraction = faults.slowdown
    if fraction <= 0 or not fnmatch.fnmatch(case_id, faults.slowdown_cases):
        return []
    from bench.measure import flavour

    keras = flavour.keras()  # a tf_keras model takes tf_keras callbacks only
    record["flags"]["injected_slowdown"] = True
    info = record["metrics"].setdefault("injected_slowdown", {
        "fraction": fraction, "method": "Keras callback: sleep after each training step, sized from its duration",
        "steps": 0, "step_s": 0.0, "sleep_s": 0.0})

    class Slowdown(keras.callbacks.Callback):
        def __init__(self) -> None:
            super().__init__()
            self._since: float | None = None
            self._owed = 0.0

        def on_train_batch_begin(self, batch: int, logs: Any = None) -> None:
            if batch == 0 or self._since is None:
                self._since = clock()  # the epoch's first step: waiting between epochs is no step time

        def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
            now = clock()
            step_s = now - (self._since if self._since is not None else now)
            self._owed += fraction * step_s
            info["steps"] += 1
            info["step_s"] += step_s
            last = batch + 1 >= int((self.params or {}).get("steps") or 0)
            if self._owed >= MIN_SLEEP_S or (last and self._owed > 0):
                t0 = clock()
                sleep(self._owed)
                slept = clock() - t0
                self._owed -= slept
                info["sleep_s"] += slept
            self._since = clock()

    return [Slowdown()]
