"""Timed rounds of a Keras ``fit``: one long ``fit`` in a thread, handed to the timer a round at a time.

The round source of every Keras throughput case (:class:`FitRounds`, a
:class:`bench.measure.protocol.RoundSource`), shared by the one-process train suite (:mod:`bench.measure.train`)
and the multi-worker one (:mod:`bench.measure.multiworker`), with the callbacks both use around it.
"""

from __future__ import annotations

import contextlib
import math
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from bench.measure import flavour
from bench.measure.inputs import PASS, Feed
from bench.measure.protocol import NonFiniteLoss


def last_logs(history: Any) -> dict[str, float]:
    # float() of the last logged value waits for the device: the work is really over.
    return {key: float(values[-1]) for key, values in history.history.items()}


def epoch_timer(clock: Callable[[], float]) -> Any:
    """A callback recording each epoch's duration, the device synchronised at the end of each."""
    keras = flavour.keras()  # a tf_keras model takes tf_keras callbacks only

    class EpochTimer(keras.callbacks.Callback):
        def __init__(self) -> None:
            super().__init__()
            self.durations: list[float] = []

        def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
            self._t0 = clock()

        def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
            float((logs or {}).get("loss", 0.0))
            self.durations.append(clock() - self._t0)

    return EpochTimer()


def execution_counter() -> Any:
    """Counts calls of Keras' train function (one ``on_train_batch_end`` per execution of
    ``steps_per_execution`` steps). Only used in the warm-up ``fit``: a callback with a batch hook turns off
    Keras' asynchronous callback dispatch, which the timed rounds must keep."""
    keras = flavour.keras()

    class ExecutionCounter(keras.callbacks.Callback):
        def __init__(self) -> None:
            super().__init__()
            self.executions = 0

        def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
            self.executions += 1

    return ExecutionCounter()


def in_caller_state(keras: Any, body: Callable[[], None]) -> Callable[[], None]:
    """``body`` wrapped to run, in another thread, under the calling thread's Keras distribution and dtype policy.

    Keras keeps both in thread-local state (keras/src/backend/common/global_state.py: ``threading.local()``),
    so a ``fit`` started in a fresh thread would see no ``keras.distribution`` at all: on JAX a
    ``DataParallel`` case would then feed every batch as if there were one device. tf_keras has no
    ``keras.distribution``; TensorFlow's strategies are captured by ``compile`` and re-entered by ``fit``.
    """
    distribution_lib = getattr(keras, "distribution", None)
    distribution = distribution_lib.distribution() if distribution_lib is not None else None
    policy = keras.mixed_precision.dtype_policy() if hasattr(keras.mixed_precision, "dtype_policy") else None

    def wrapped() -> None:
        if distribution is not None:
            distribution_lib.set_distribution(distribution)
        if policy is not None:
            keras.mixed_precision.set_dtype_policy(policy)
        body()

    return wrapped


class EpochGate:
    """Runs one long ``fit`` in a thread and hands ``epochs_per_round`` epochs at a time to the timer.

    Calling ``fit`` once per round would time Keras' per-call set-up too: under MirroredStrategy that
    is about 0.16 s per call on a 2-core CPU (distributing the dataset, building the multi-device
    iterator), against ~0.006 s per step — a user's single ``fit`` pays it once, not every epoch. Here a
    round begins only when the timed target releases it, and the target returns only after the round's
    last epoch's loss has been read back as a Python float, so the device has finished. Rounds of several
    epochs exist for inputs whose epoch is one pass over the data (:mod:`bench.measure.inputs`): each
    epoch then includes exactly the per-epoch set-up (new permutation, new iterator) a user's ``fit`` pays.
    """

    def __init__(self, feed: Feed, model: Any, steps: int | None, epochs_per_round: int, rounds: int):
        keras = flavour.keras()

        gate = self
        self.go = threading.Semaphore(0)
        self.done = threading.Semaphore(0)
        self.logs: dict[str, float] = {}
        self.error: BaseException | None = None
        self.abort = False
        self.host_cpu_s: float | None = None  # the last round's, read in the fit thread
        cpu_at_begin = [0.0]

        class Gate(keras.callbacks.Callback):
            def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
                if epoch % epochs_per_round == 0:
                    gate.go.acquire()
                    cpu_at_begin[0] = time.thread_time()
                if gate.abort:
                    raise _Aborted()

            def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
                if (epoch + 1) % epochs_per_round == 0:
                    gate.logs = {k: float(v) for k, v in (logs or {}).items()}
                    gate.host_cpu_s = time.thread_time() - cpu_at_begin[0]
                    gate.done.release()

        def body() -> None:
            try:
                feed.fit(model, epochs=epochs_per_round * rounds, steps=steps, callbacks=[Gate()])
            except _Aborted:
                pass
            except BaseException as exc:  # noqa: BLE001 - handed to the timing thread
                gate.error = exc
            finally:
                gate.done.release()

        self.thread = threading.Thread(target=in_caller_state(keras, body), name="bench-fit", daemon=True)

    def __enter__(self) -> EpochGate:
        self.thread.start()
        return self

    def round(self) -> tuple[dict[str, float], float | None]:
        """Run one round; its last logs and the fit thread's CPU seconds in it."""
        self.host_cpu_s = None
        self.go.release()
        self.done.acquire()
        if self.error is not None:
            raise self.error
        return self.logs, self.host_cpu_s

    def __exit__(self, *exc: Any) -> None:
        self.abort = True
        self.go.release()
        self.thread.join(timeout=600)


class _Aborted(Exception):
    pass


class FitRounds:
    """The protocol's round source for a Keras model and its feed (:class:`bench.measure.protocol.RoundSource`).

    Units are passes for pass feeds (a round is that many one-pass epochs) and steps for endless feeds
    (a round is one epoch of that many steps).
    """

    def __init__(self, feed: Feed, model: Any, clock: Callable[[], float]):
        self.feed, self.model, self.clock = feed, model, clock
        self.last_logs: dict[str, float] = {}

    def trial(self, units: int) -> float:
        timer = epoch_timer(self.clock)
        if self.feed.unit == PASS:
            # One more epoch than timed: the first of a new fit absorbs its set-up (and, for tf_data, the
            # trace of the partial last batch).
            self.feed.fit(self.model, epochs=1 + units, callbacks=[timer])
            return sum(timer.durations[1:])
        # Two epochs: the first absorbs a retrace for the new epoch length; the second is the sample.
        self.feed.fit(self.model, epochs=2, steps=units, callbacks=[timer])
        return timer.durations[-1]

    @contextlib.contextmanager
    def rounds(self, units: int, count: int) -> Iterator[Callable[[], float | None]]:
        passes = self.feed.unit == PASS
        with EpochGate(self.feed, self.model, None if passes else units, units if passes else 1, count) as gate:

            def one_round() -> float | None:
                logs, host_cpu_s = gate.round()
                self.last_logs = logs
                loss = logs.get("loss", math.nan)
                if not math.isfinite(loss):
                    raise NonFiniteLoss(f"non-finite loss {loss} during timed rounds")
                return host_cpu_s

            yield one_round
