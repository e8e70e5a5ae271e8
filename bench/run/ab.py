"""An interleaved A/B session: two environments or two commits, case by case, alternately, in one sitting.

For the decisive check before a merge (asv's ``continuous``/interleaving, pyperf's separate processes):
every unit of the config (one train case; one cpu_predict case; one native cell) is measured by a fresh
``python -m bench run`` of a one-unit config on side a and on side b, one right after the other, in
alternating order, and the whole list is repeated ``repeats`` times::

    repeat 0: unit 0: a b   unit 1: b a   unit 2: a b ...
    repeat 1: unit 0: b a   unit 1: a b   unit 2: b a ...

so drift slower than one pair hits both sides equally, drift within a pair hits each side first half
the time, and each unit's pairs are spread over the whole session. The session is adaptive: it runs the
repeats up to the first look (8 pairs), asks ``decide`` which units are still unclear, and goes on with
only those to the next look (16, then 24), as Chromium's Pinpoint adds repeats while its answer is
"unknown"; what "clear" means is the analysis's business (:func:`bench.analyze.ab.progress`, passed in by
the command), not the runner's. A side is an interpreter (another
virtualenv: another TensorFlow or Keras), a git revision (checked out into a temporary worktree and run
from there) and extra environment variables. The ``bench run`` command line is the only interface
between the sides, so an older revision works as long as it has ``run --config --results-dir --quiet``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from bench.cases import suite_cases
from bench.config import SUITES, BenchConfig
from bench.errors import UserError
from bench.store.results import load_run


class SessionError(UserError):
    """A side could not be set up or one of its runs failed as a whole."""


@dataclass(frozen=True)
class Side:
    """One side of the session."""

    label: str  # "a" (the baseline) or "b" (the candidate)
    python: str = sys.executable
    revision: str | None = None  # a git revision; None: the working tree as it is
    env: Mapping[str, str] = field(default_factory=dict)

    def describe(self) -> str:
        parts = [f"python {self.python}", f"revision {self.revision}" if self.revision else "working tree"]
        parts += [f"{k}={v}" for k, v in sorted(self.env.items())]
        return ", ".join(parts)

    def same_as(self, other: Side) -> bool:
        return (self.python, self.revision, dict(self.env)) == (other.python, other.revision, dict(other.env))


@dataclass(frozen=True)
class Unit:
    """What one process measures: a one-cell config."""

    label: str
    config: dict[str, Any]


@dataclass(frozen=True)
class Step:
    repeat: int
    unit: int
    order: tuple[str, str]  # ("a", "b") or ("b", "a")


class Runner(Protocol):
    """Runs one unit on one side and returns the path of the run document it wrote."""

    def prepare(self, side: Side) -> None: ...

    def run(self, side: Side, config_path: Path, results_dir: Path) -> Path: ...

    def close(self) -> None: ...


def units(config: BenchConfig) -> list[Unit]:
    """One single-cell config per train case, cpu_predict case and native cell of ``config``."""
    base = {k: v for k, v in config.to_dict().items() if k not in ("path", "sha256")}
    if base["data"].get("path"):
        base["data"]["path"] = str(Path(base["data"]["path"]).resolve())  # the sides run in other folders
    out: list[Unit] = []
    for suite in (s for s in SUITES if s in config.suites):
        seen: set[str] = set()
        for case in suite_cases(suite, config):
            cell = dict(base, suites=[suite], name=f"{config.name}-ab")
            train = dict(base["train"], backend=[case.backend], exclude=[], add=[])
            if suite == "train":  # every axis of the case, so a unit is exactly one case
                train.update({axis: [value] for axis, value in case.params().items()})
                label = case.case_id
            elif suite == "native":
                train.update(gpus=[1], global_batch=[case.global_batch], precision=[case.precision],
                             input=[base["train"]["input"][0]], steps_per_execution=[1], workers=[1],
                             keras=["keras3"])
                label = f"native/{case.backend}/batch={case.global_batch}/{case.precision}"
            elif suite == "converge":
                cell["converge"] = dict(base["converge"], exclude=[],
                                        **{axis: [value] for axis, value in case.params().items()})
                label = case.case_id
            else:
                cell["cpu_predict"] = dict(base["cpu_predict"], precision=[case.precision],
                                           train_jit_compile=[case.train_jit_compile],
                                           predict_batch=[case.predict_batch], methods=[case.method])
                label = case.case_id
            if label in seen:
                continue
            seen.add(label)
            cell["train"] = train
            out.append(Unit(label, _without_none(cell)))
    return out


def _without_none(value: Any) -> Any:
    # TOML has no null; a missing key means the default, which is what null meant.
    if isinstance(value, dict):
        return {k: _without_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_none(v) for v in value]
    return value


def schedule(n_units: int, repeats: int) -> list[Step]:
    """Every unit in every repeat, each as a pair whose order alternates with unit and repeat."""
    return [Step(r, u, ("a", "b") if (r + u) % 2 == 0 else ("b", "a")) for r in range(repeats) for u in range(n_units)]


@dataclass
class Session:
    """What a session measured: the pairs of run documents, in the order they were taken."""

    units: list[Unit]
    steps: list[Step]
    pairs: list[tuple[dict[str, Any], dict[str, Any]]] = field(default_factory=list)
    pair_units: list[int] = field(default_factory=list)  # the unit of each pair
    log: list[dict[str, Any]] = field(default_factory=list)  # one entry per process, in order

    def seconds(self) -> dict[str, float]:
        """Wall seconds of each run, by run_id."""
        return {str(e["run_id"]): float(e["seconds"]) for e in self.log if e.get("seconds") is not None}


Decide = Callable[[Session], set[int]]  # the units still unclear after a look


def run_session(config: BenchConfig, a: Side, b: Side, runner: Runner, out_dir: Path, looks: Sequence[int] | int,
                on_step: Callable[[dict[str, Any], int, int], None] | None = None, decide: Decide | None = None,
                clock: Callable[[], float] = time.monotonic) -> Session:
    """Measure every unit on both sides, alternately, up to each look while ``decide`` says it is unclear.

    ``looks`` are cumulative pair counts (8, 16, 24); a plain number is one look (no adaptivity). Without
    ``decide`` every unit runs to the last look.
    """
    looks = (looks,) if isinstance(looks, int) else tuple(looks)
    if not looks or any(n < 1 for n in looks) or list(looks) != sorted(set(looks)):
        raise ValueError("looks must be increasing positive pair counts")
    plan = units(config)
    if not plan:
        raise SessionError("the config has no case to compare")
    session = Session(plan, [])
    import tomli_w  # only here: compare's reader-only environment (nox -s compare) builds this CLI too

    config_dir = out_dir / "configs"
    config_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, unit in enumerate(plan):
        path = config_dir / f"unit-{i:02d}.toml"
        path.write_text(f"# {unit.label}\n" + tomli_w.dumps(unit.config), encoding="utf-8")
        paths.append(path)
    sides = {"a": a, "b": b}
    active = set(range(len(plan)))
    done = 0
    try:
        for side in (a, b):
            runner.prepare(side)
        for look in looks:
            block = [step for step in schedule(len(plan), look)[done * len(plan):] if step.unit in active]
            total = 2 * (len(session.log) // 2 + len(block))
            for step in block:
                docs: dict[str, dict[str, Any]] = {}
                for label in step.order:
                    started = clock()
                    path = runner.run(sides[label], paths[step.unit], out_dir / label)
                    seconds = clock() - started
                    docs[label] = load_run(path)
                    entry = {"repeat": step.repeat, "unit": plan[step.unit].label, "side": label, "run": str(path),
                             "run_id": docs[label].get("run_id"), "seconds": round(seconds, 3)}
                    session.log.append(entry)
                    if on_step:
                        on_step(entry, len(session.log), total)
                session.steps.append(step)
                session.pairs.append((docs["a"], docs["b"]))
                session.pair_units.append(step.unit)
            done = look
            if decide is not None and look != looks[-1]:
                active &= decide(session)
                if not active:
                    break
    finally:
        runner.close()
    return session


class ProcessRunner:
    """Runs ``python -m bench run`` for a side: its interpreter, its checkout, its environment variables."""

    def __init__(self, repo: Path, work_dir: Path, timeout_s: float = 3600.0):
        self.repo = repo
        self.work_dir = work_dir
        self.timeout_s = timeout_s
        self.checkouts: dict[str, Path] = {}
        self._worktrees: list[Path] = []

    def prepare(self, side: Side) -> None:
        if shutil.which(side.python) is None and not Path(side.python).is_file():
            raise SessionError(f"side {side.label}: interpreter not found: {side.python}")
        if side.revision is None:
            self.checkouts[side.label] = self.repo
            return
        commit = self._git("rev-parse", "--verify", "--quiet", f"{side.revision}^{{commit}}",
                           what=f"side {side.label}: {side.revision!r} is not a git revision of {self.repo}")
        target = self.work_dir / ".worktrees" / side.label
        if target.exists():
            self._git("worktree", "remove", "--force", str(target), what=f"cannot reuse {target}")
        target.parent.mkdir(parents=True, exist_ok=True)
        self._git("worktree", "add", "--detach", str(target), commit, what=f"cannot check out {side.revision}")
        self._worktrees.append(target)
        self.checkouts[side.label] = target

    def _git(self, *args: str, what: str) -> str:
        result = subprocess.run(["git", "-C", str(self.repo), *args], capture_output=True, text=True)
        if result.returncode != 0:
            detail = (result.stderr.strip().splitlines() or [""])[-1]
            raise SessionError(f"{what}{': ' + detail if detail else ''}")
        return result.stdout.strip()

    def run(self, side: Side, config_path: Path, results_dir: Path) -> Path:
        checkout = self.checkouts[side.label]
        env = dict(os.environ)
        env["PYTHONPATH"] = str(checkout) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        env.update(side.env)
        results_dir.mkdir(parents=True, exist_ok=True)
        result = subprocess.run([side.python, "-m", "bench", "run", "--config", str(config_path.resolve()),
                                 "--results-dir", str(results_dir.resolve()), "--quiet"],
                                cwd=checkout, env=env, capture_output=True, text=True, timeout=self.timeout_s)
        lines = result.stdout.strip().splitlines()
        if result.returncode != 0 or not lines or not lines[-1].endswith(".json"):
            tail = (result.stderr.strip().splitlines() or lines or ["no output"])[-1]
            raise SessionError(f"side {side.label} ({side.describe()}): bench run of {config_path.name} exited "
                               f"{result.returncode}: {tail}")
        return Path(lines[-1])

    def close(self) -> None:
        for target in self._worktrees:
            subprocess.run(["git", "-C", str(self.repo), "worktree", "remove", "--force", str(target)],
                           capture_output=True, text=True)
        self._worktrees.clear()


def parse_env(values: Sequence[str], flag: str) -> dict[str, str]:
    out = {}
    for value in values:
        key, sep, val = value.partition("=")
        if not sep or not key:
            raise UserError(f"{flag} {value!r}: expected KEY=VALUE")
        out[key] = val
    return out
