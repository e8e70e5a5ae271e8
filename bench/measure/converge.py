"""Time to accuracy: how long the reference model takes to reach a test accuracy, over several seeds.

Per case, under the case's placement (``devices.place``, as in the train suite): the reference MLP is
compiled once and warmed up. Per seed: the model is put in the initial state of a fresh
``build_model(seed)`` and trained by one ``fit`` on the in-memory arrays (one pass over the training
images per epoch, shuffled). After every epoch the 10 000 test images are evaluated; the seed stops at
the first epoch whose test accuracy reaches the target (or at ``max_epochs``).

Timing, with the injected clock (``time.perf_counter`` by default):

* **compile** is the warm-up of the case's model — one full and one partial training batch (the shapes
  the epochs will see) and one ``evaluate`` per split — its duration is ``compile_s``; every variable it
  touched (weights, optimizer slots and step, dropout RNG state) is then overwritten with the seed's
  initial values and the seed applied again, so the timed training is the one a fresh model would do;
* an **epoch** runs from ``on_epoch_begin`` until its loss (and the output bias) has been read back into
  Python, i.e. until the device finished — evaluation is timed apart (``eval_s``), and so is the
  ``fit`` call's own set-up before the first epoch (``fit_setup_s``).

``seconds_to_target`` is the sum of epoch train seconds up to and including the first epoch at the
target. A seed whose loss turns non-finite diverged and did not converge; a case with fewer than half
its seeds converging is ``not_converged``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from bench.analyze.stats import summarize
from bench.cases import ConvergeCase
from bench.config import BenchConfig, ConvergeSettings
from bench.measure.data import Mnist
from bench.measure.devices import DeviceInventory, place
from bench.measure.faults import inject
from bench.measure.model import LEARNING_RATE, build_model, compile_model, optimizer_name, precision_policy
from bench.measure.records import CaseClock, CaseSkipped, base_record, measure_into

SEEDS_AUTO = {"gpu": 5, "cpu": 3}
INPUT_PIPELINE = ("numpy arrays into fit(batch_size=global_batch, shuffle=True): one pass over the training "
                  "images per epoch, the last batch partial")
COMPILE_METHOD = ("warm-up of the case's compiled model, once per case (one full and one partial training "
                  "batch, one evaluate per split); each seed then starts from a fresh build_model(seed)'s "
                  "variables and the optimizer's initial state, with the seed re-applied")


def _finite(value: Any) -> float | None:
    """JSON has no NaN: a non-finite number is stored as null."""
    value = float(value)
    return value if math.isfinite(value) else None


@dataclass
class EpochRecorder:
    """Times the epochs of one seed and decides when to stop; knows nothing of Keras (tests drive it).

    ``evaluate()`` returns ``test_loss``, ``test_accuracy`` (and ``val_*`` with a holdout); ``sync()``
    waits for the device (reads a value back) and is called before the epoch's clock is read.
    """

    clock: Callable[[], float]
    evaluate: Callable[[], dict[str, float]]
    target: float
    stop_at_target: bool
    sync: Callable[[], None] = lambda: None
    epochs: list[dict[str, Any]] = field(default_factory=list)
    first_begin: float | None = None
    diverged: bool = False
    _t0: float = 0.0

    def begin(self) -> None:
        self._t0 = self.clock()
        if self.first_begin is None:
            self.first_begin = self._t0

    def end(self, logs: dict[str, Any]) -> bool:
        """Record the epoch that just ended; True when training should stop."""
        loss = float(logs.get("loss", math.nan))  # a Python float: the device has produced it
        self.sync()
        train_s = self.clock() - self._t0
        cumulative = (self.epochs[-1]["cumulative_s"] if self.epochs else 0.0) + train_s
        epoch: dict[str, Any] = {"epoch": len(self.epochs) + 1, "train_s": train_s, "cumulative_s": cumulative,
                                 "train_loss": _finite(loss), "train_accuracy": _finite(logs.get("accuracy", math.nan))}
        if not math.isfinite(loss):
            # Diverged (e.g. a linearly scaled learning rate at a large batch): nothing to evaluate.
            self.diverged = True
            epoch.update(eval_s=None, test_loss=None, test_accuracy=None)
            self.epochs.append(epoch)
            return True
        t = self.clock()
        scores = self.evaluate()
        epoch["eval_s"] = self.clock() - t
        epoch.update({k: _finite(v) for k, v in scores.items()})
        self.epochs.append(epoch)
        reached = epoch["test_accuracy"] is not None and epoch["test_accuracy"] >= self.target
        return reached and self.stop_at_target


def seed_summary(seed: int, epochs: list[dict[str, Any]], target: float, diverged: bool = False) -> dict[str, Any]:
    """What one seed achieved, from its per-epoch records."""
    hit = next((e for e in epochs if e.get("test_accuracy") is not None and e["test_accuracy"] >= target), None)
    accuracies = [e["test_accuracy"] for e in epochs if e.get("test_accuracy") is not None]
    last = epochs[-1] if epochs else {}
    wall = 0.0
    for e in epochs:
        wall += e["train_s"] + (e.get("eval_s") or 0.0)
        if e is hit:
            break
    return {
        "seed": seed,
        "converged": hit is not None,
        "diverged": diverged,
        "epochs_run": len(epochs),
        "epochs_to_target": hit["epoch"] if hit else None,
        "seconds_to_target": hit["cumulative_s"] if hit else None,
        "wall_to_target_s": wall if hit else None,
        "final_test_accuracy": last.get("test_accuracy"),
        "final_test_loss": last.get("test_loss"),
        "best_test_accuracy": max(accuracies) if accuracies else None,
        "epochs": epochs,
    }


def case_outcome(seeds: list[dict[str, Any]], settings: ConvergeSettings) -> tuple[str, str] | None:
    """``not_converged`` with the reason when fewer than half the seeds converged, else None (ok)."""
    converged = sum(s["converged"] for s in seeds)
    if converged >= len(seeds) / 2:
        return None
    best = [s["best_test_accuracy"] for s in seeds if s["best_test_accuracy"] is not None]
    diverged = sum(s["diverged"] for s in seeds)
    return ("not_converged",
            f"{converged} of {len(seeds)} seeds reached test accuracy {settings.target_accuracy:g} within "
            f"{settings.max_epochs} epochs" + (f" ({diverged} diverged)" if diverged else "")
            + (f"; best {max(best):.4f}" if best else ""))


def summarize_seeds(seeds: list[dict[str, Any]]) -> dict[str, Any]:
    """Case-level metrics over the seeds: the raw per-seed samples and their statistics."""
    converged = [s for s in seeds if s["converged"]]
    epoch_s = [e["train_s"] for s in seeds for e in s["epochs"]]
    return {
        "seeds_run": len(seeds),
        "seeds_converged": len(converged),
        # The samples compare tests: one per converged seed, in seed order.
        "seconds_to_target": [s["seconds_to_target"] for s in converged],
        "time_to_target_s": summarize([s["seconds_to_target"] for s in converged]),
        "epochs_to_target": summarize([s["epochs_to_target"] for s in converged]),
        "final_test_accuracy": summarize([s["final_test_accuracy"] for s in seeds
                                          if s["final_test_accuracy"] is not None]),
        "epoch_train_s": summarize(epoch_s),
    }


# --------------------------------------------------------------------------- Keras side


def _tracker(recorder: EpochRecorder) -> Any:
    import keras

    class ConvergenceTracker(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
            recorder.begin()

        def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
            if recorder.end(dict(logs or {})):
                self.model.stop_training = True

    return ConvergenceTracker()


def _state(model: Any) -> list[Any]:
    # model.variables includes the dropout layers' seed-generator state; metrics are reset every epoch.
    return list(model.variables) + list(model.optimizer.variables)


def snapshot(model: Any) -> list[np.ndarray]:
    """Every variable a training run changes, as numpy copies (the optimizer is built first)."""
    if not model.optimizer.built:
        model.optimizer.build(model.trainable_variables)
    return [np.array(v.numpy(), copy=True) for v in _state(model)]


def restore(model: Any, values: list[np.ndarray]) -> None:
    for variable, value in zip(_state(model), values, strict=True):
        variable.assign(value)


def _warm_shapes(n: int, batch: int) -> int:
    """Samples giving one full batch and the epoch's final partial batch, if it has one."""
    return min(n, batch + n % batch) if n > batch else n


def warm_up(model: Any, x: np.ndarray, y: np.ndarray, splits: list[tuple[np.ndarray, np.ndarray]],
            batch: int) -> None:
    """Trace and compile the train and test functions for every batch shape the timed run will use."""
    n = _warm_shapes(len(x), batch)
    model.fit(x[:n], y[:n], batch_size=batch, epochs=1, shuffle=False, verbose=0)
    for xs, ys in splits:
        m = _warm_shapes(len(xs), batch)
        model.evaluate(xs[:m], ys[:m], batch_size=batch, verbose=0)


class CaseModel:
    """One compiled model per case, warmed up once; each seed then starts it from that seed's initial state.

    A seed's initial state is exactly a fresh ``build_model(seed)``'s variables (weights and dropout RNG
    state) plus the optimizer's initial slots and step, so every seed trains as a fresh model of that seed
    would — without tracing and compiling the same functions again for every seed.
    """

    def __init__(self, case: ConvergeCase, settings: ConvergeSettings, data: Mnist, learning_rate: float,
                 steps_per_execution: int, clock: Callable[[], float]):
        holdout = settings.holdout
        self.x, self.y = (data.x_train[:-holdout], data.y_train[:-holdout]) if holdout else (data.x_train,
                                                                                            data.y_train)
        self.val = (data.x_train[-holdout:], data.y_train[-holdout:]) if holdout else None
        self.data, self.settings, self.case, self.clock = data, settings, case, clock
        self.batch = case.global_batch
        self.fault = inject(case.case_id)
        self.model = build_model(seed=0)
        compile_model(self.model, case.jit_compile, steps_per_execution)
        self.model.optimizer.learning_rate = learning_rate
        self._optimizer_initial = snapshot(self.model)[len(self.model.variables):]
        t0 = clock()
        warm_up(self.model, self.x, self.y, [(data.x_test, data.y_test)] + ([self.val] if self.val else []),
                self.batch)
        self.compile_s = clock() - t0

    def start(self, seed: int) -> None:
        """Put the model in seed ``seed``'s initial state and seed the data order."""
        import keras

        fresh = build_model(seed=seed)
        values = [np.array(v.numpy(), copy=True) for v in fresh.variables]
        if [v.shape for v in values] != [tuple(v.shape) for v in self.model.variables]:
            raise RuntimeError("a fresh model's variables do not line up with the compiled model's")
        del fresh
        if self.fault == "nan":
            # Injected (bench.measure.faults): a NaN output bias makes the loss non-finite: a diverged seed.
            index = next(i for i, v in enumerate(self.model.variables) if v is self.model.layers[-1].bias)
            values[index] = np.full(values[index].shape, np.nan, dtype="float32")
        restore(self.model, values + self._optimizer_initial)
        keras.utils.set_random_seed(seed)

    def train(self, seed: int) -> dict[str, Any]:
        """Train seed ``seed`` to the target (or ``max_epochs``) and return its summary."""
        import keras

        model, data, val, batch, clock = self.model, self.data, self.val, self.batch, self.clock
        self.start(seed)

        def evaluate() -> dict[str, float]:
            test = model.evaluate(data.x_test, data.y_test, batch_size=batch, verbose=0, return_dict=True)
            scores = {"test_loss": test["loss"], "test_accuracy": test["accuracy"]}
            if val is not None:
                held = model.evaluate(val[0], val[1], batch_size=batch, verbose=0, return_dict=True)
                scores.update(val_loss=held["loss"], val_accuracy=held["accuracy"])
            return scores

        def sync() -> None:
            # The last update of the epoch has landed once a variable it wrote can be read back.
            np.asarray(keras.ops.convert_to_numpy(model.layers[-1].bias))

        recorder = EpochRecorder(clock, evaluate, self.settings.target_accuracy, self.settings.stop_at_target, sync)
        t_fit = clock()
        model.fit(self.x, self.y, batch_size=batch, epochs=self.settings.max_epochs, shuffle=True, verbose=0,
                  callbacks=[_tracker(recorder)])
        summary = seed_summary(seed, recorder.epochs, self.settings.target_accuracy, recorder.diverged)
        summary["fit_setup_s"] = (recorder.first_begin - t_fit) if recorder.first_begin is not None else None
        return summary


def run_converge_case(case: ConvergeCase, config: BenchConfig, data: Mnist, inventory: DeviceInventory,
                      clock: Callable[[], float] = time.perf_counter) -> dict[str, Any]:
    """Measure one case over its seeds and return its record; failures and skips are records too."""
    settings = config.converge
    case_clock = CaseClock()
    record = base_record("converge", case.case_id, case.params(), data.spec.source, case_clock,
                         flags={"simulated": inventory.simulated, "unstable": False})

    def body() -> tuple[str, str] | None:
        if data.spec.synthetic:
            raise CaseSkipped("synthetic data: test accuracy on it means nothing (the sweep refuses it)")
        train_samples = len(data.x_train) - settings.holdout
        if case.global_batch > train_samples:
            raise CaseSkipped(f"global batch {case.global_batch} is larger than the {train_samples} training images")
        placement = place(inventory, case.gpus)
        record["devices"] = placement.describe()
        record["flags"]["simulated"] = placement.simulated
        n_seeds = settings.seeds if settings.seeds != "auto" else SEEDS_AUTO[placement.kind]
        lr = case.learning_rate(LEARNING_RATE, settings.reference_batch)
        m = record["metrics"]
        m.update(per_replica_batch=case.global_batch // placement.replicas, global_batch=case.global_batch,
                 replicas=placement.replicas, learning_rate=lr, lr_scaling=case.lr_scaling,
                 reference_batch=settings.reference_batch, target_accuracy=settings.target_accuracy,
                 max_epochs=settings.max_epochs, stop_at_target=settings.stop_at_target,
                 holdout=settings.holdout, train_samples=train_samples, test_samples=len(data.x_test),
                 eval_batch=case.global_batch, input_pipeline=INPUT_PIPELINE, compile_method=COMPILE_METHOD,
                 steps_per_execution=settings.steps_per_execution,
                 seeds_planned=n_seeds)
        if settings.reference_accuracy is not None:
            m.update(reference_accuracy=settings.reference_accuracy, reference_label=settings.reference_label)
        seeds: list[dict[str, Any]] = []
        m["seeds"] = seeds  # filled as seeds finish, so a failure keeps the ones before it
        with precision_policy(case.precision), placement.scope:
            trainer = CaseModel(case, settings, data, lr, settings.steps_per_execution, clock)
            model = trainer.model
            m.update(compile_s=trainer.compile_s, jit_compile_resolved=bool(model.jit_compile),
                     optimizer=optimizer_name(model),
                     learning_rate_resolved=float(np.asarray(model.optimizer.learning_rate)))
            for seed in range(config.measure.seed, config.measure.seed + n_seeds):
                seeds.append(trainer.train(seed))
        m.update(summarize_seeds(seeds))
        cv = m["epoch_train_s"]["cv"]
        record["flags"]["unstable"] = bool(cv is not None and cv > config.measure.cv_threshold)
        return case_outcome(seeds, settings)

    return measure_into(record, case_clock, body)
