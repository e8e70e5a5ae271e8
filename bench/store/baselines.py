"""Baselines: the runs a comparison is held against, and finding the runs to compare.

A baseline is a *history*: a folder ``results/baselines/<name>/`` of run documents, one per promoted run
(``python -m bench promote RUN --name NAME`` appends), which the between-run test judges a new run
against. A single run document (``results/baselines/<name>.json``, or any run file) still works as a
baseline for the round-level test. Promoting refuses runs whose numbers would mislead (incomplete,
synthetic data, simulated or stand-in devices) unless the caller says so, and always refuses a run with
an injected slowdown (``[faults] slowdown``).
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.store.results import RUN_KIND, ResultsError, load_run, run_created, write_json_atomic

BASELINES_DIR = "baselines"
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


def baselines_dir(results_dir: str | Path) -> Path:
    return Path(results_dir) / BASELINES_DIR


def list_baselines(results_dir: str | Path) -> list[str]:
    folder = baselines_dir(results_dir)
    if not folder.is_dir():
        return []
    return sorted({p.stem for p in folder.glob("*.json")} | {p.name for p in folder.iterdir() if p.is_dir()})


def check_name(name: str) -> str:
    if not NAME_PATTERN.match(name) or name.endswith(".json"):
        raise ResultsError(f"baseline name {name!r} is not usable: use letters, digits, '.', '_' or '-' "
                           "(no slashes, no .json), e.g. h100-tf2.21")
    return name


def resolve_run(spec: str, results_dir: str | Path) -> Path:
    """A run given as a path or as a run_id in the results folder."""
    path = Path(spec)
    if path.is_file():
        return path
    by_id = Path(results_dir) / f"{spec}.json"
    if "/" not in spec and by_id.is_file():
        return by_id
    raise ResultsError(f"results file not found: {spec} (give a path or a run_id in {results_dir}/)")


def newest_run(results_dir: str | Path) -> Path:
    """The newest run document in the results folder: by its ``created_utc``, among files of the run kind.

    Only documents whose ``kind`` says they are runs count, whatever their names: a comparison written
    next to them (``compare --json results/comparison.json``) or any other JSON is never picked, while a
    run copied under another name still is. Partial logs are not runs; an interrupted sweep's document
    (``complete: false``) is.
    """
    folder = Path(results_dir)
    stamped = []
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        created = run_created(path)
        if created is not None:
            stamped.append((created, path.name, path))
    if not stamped:
        raise ResultsError(f"no result files in {folder}/: no run documents (kind {RUN_KIND!r}) there; run "
                           "`python -m bench run` first, or name the run")
    return max(stamped)[2]


# --------------------------------------------------------------------------- histories


@dataclass(frozen=True)
class Baseline:
    """What ``compare`` was given as its baseline: one run, or a history of runs (oldest first)."""

    paths: tuple[Path, ...]
    name: str | None  # a baseline name under results/baselines/, else None
    location: Path  # the folder, the file, the folder of several files (else the first of them)
    history: bool  # a folder, or several files: judged with the between-run test


def _history_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.glob("*.json") if not p.name.startswith("."))


def resolve_baselines(specs: Sequence[str], results_dir: str | Path) -> Baseline:
    """A baseline given as a name, a folder of runs, a run file, or several run files / run_ids."""
    if len(specs) > 1:
        paths = tuple(resolve_run(spec, results_dir) for spec in specs)
        parents = {p.resolve().parent for p in paths}
        return Baseline(paths, None, parents.pop() if len(parents) == 1 else paths[0], True)
    spec = specs[0]
    path = Path(spec)
    if path.is_dir():
        files = _history_files(path)
        if not files:
            raise ResultsError(f"baseline history {path} holds no run documents (*.json); "
                               "fill it with python -m bench promote RUN --name NAME")
        return Baseline(tuple(files), None, path, True)
    if path.is_file():
        return Baseline((path,), None, path, False)
    if NAME_PATTERN.match(spec) and not spec.endswith(".json"):
        folder, single = baselines_dir(results_dir) / spec, baselines_dir(results_dir) / f"{spec}.json"
        if folder.is_dir():
            files = _history_files(folder)
            if not files:
                raise ResultsError(f"baseline history {folder} holds no run documents (*.json); "
                                   f"fill it with python -m bench promote RUN --name {spec}")
            return Baseline(tuple(files), spec, folder, True)
        if single.is_file():
            return Baseline((single,), spec, single, False)
        known = ", ".join(list_baselines(results_dir)) or "none yet"
        raise ResultsError(f"baseline not found: {spec!r} is neither a file nor {folder}/ (baselines: {known}); "
                           "create one with python -m bench promote RUN --name NAME")
    raise ResultsError(f"baseline file not found: {spec}")


def injected_slowdown(run: Mapping[str, Any]) -> str | None:
    """Why a run is a gate test rather than a measurement ([faults] slowdown), or None."""
    slowed = sum(bool((c.get("flags") or {}).get("injected_slowdown")) for c in run.get("cases") or [])
    fraction = ((run.get("config") or {}).get("faults") or {}).get("slowdown")
    if slowed or fraction:
        return f"injected slowdown ([faults] slowdown = {fraction}, {slowed} case(s) flagged injected_slowdown)"
    return None


def load_history(baseline: Baseline, window: int | None = None) -> list[tuple[dict[str, Any], Path]]:
    """The history's runs oldest first (by ``created_utc``), the newest ``window`` of them when given."""
    runs = []
    for path in baseline.paths:
        run = load_run(path)
        slowed = injected_slowdown(run)
        if slowed:
            raise ResultsError(f"{path}: {slowed}; a gate test cannot be part of a baseline, remove it from the history")
        runs.append((run, path))
    runs.sort(key=lambda item: (str(item[0].get("created_utc") or ""), str(item[1])))
    return runs[-window:] if window else runs


# --------------------------------------------------------------------------- promoting


def doubts(run: Mapping[str, Any]) -> list[str]:
    """Why a run would make a misleading baseline (empty when it is fine)."""
    cases = run.get("cases") or []
    data = run.get("data") or {}
    found = []
    if run.get("complete") is not True:
        found.append("incomplete run (complete = false; finish it with python -m bench run --resume)")
    synthetic = sum(bool((c.get("flags") or {}).get("synthetic_data")) or c.get("data_source") == "synthetic"
                    for c in cases)
    if data.get("synthetic") or data.get("source") == "synthetic" or synthetic:
        found.append("synthetic data instead of MNIST")
    simulated = sum(bool((c.get("flags") or {}).get("simulated") or (c.get("devices") or {}).get("simulated"))
                    for c in cases)
    if simulated:
        found.append(f"simulated devices in {simulated} case(s)")
    stand_in = sum(bool((c.get("flags") or {}).get("stand_in_device")) for c in cases)
    if stand_in:
        found.append(f"a logical CPU stood in for the GPU in {stand_in} case(s)")
    if not any(c.get("status") == "ok" for c in cases):
        found.append("no case finished ok")
    return found


@dataclass(frozen=True)
class Promotion:
    path: Path
    run_id: str | None
    replaced: bool
    doubts: tuple[str, ...]
    history_runs: int = 1  # runs in the history after this promotion
    migrated: Path | None = None  # a single-run baseline NAME.json moved into the new history


def promote(run_path: str | Path, name: str, results_dir: str | Path, force: bool = False,
            allow_doubtful: bool = False, reset: bool = False) -> Promotion:
    """Append a run document to the history ``results/baselines/<name>/`` (as ``<run_id>.json``).

    A single-run baseline ``<name>.json`` from before histories existed becomes the history's first run.
    ``reset`` empties the history first (a new runner, a new setup); ``force`` replaces this run if it is
    already there.
    """
    check_name(name)
    run = load_run(run_path)
    slowed = injected_slowdown(run)
    if slowed:
        raise ResultsError(f"refusing to promote {run_path}: {slowed}; such a run tests the gate and is never a "
                           "baseline (no flag overrides this)")
    found = doubts(run)
    if found and not allow_doubtful:
        raise ResultsError(f"refusing to promote {run_path}: {'; '.join(found)}; a baseline should be a complete "
                           "run on real GPUs with MNIST (pass --allow-doubtful to promote it anyway)")
    folder = baselines_dir(results_dir) / name
    single = baselines_dir(results_dir) / f"{name}.json"
    run_id = str(run.get("run_id") or Path(run_path).stem)
    target = folder / f"{run_id}.json"
    replaced = target.exists()
    if replaced and not force and not reset:
        raise ResultsError(f"{target} already exists (run {run_id} is in history {name}); pass --force to replace it")
    migrated = None
    try:
        folder.mkdir(parents=True, exist_ok=True)
        if reset:
            for old in _history_files(folder):
                old.unlink()
            single.unlink(missing_ok=True)
        elif single.is_file():
            old_run = load_run(single)
            migrated = folder / f"{old_run.get('run_id') or 'baseline'}.json"
            shutil.move(str(single), str(migrated))
    except OSError as exc:
        raise ResultsError(f"cannot update {folder}: {exc.strerror or exc}") from None
    write_json_atomic(target, run)
    return Promotion(target, run.get("run_id"), replaced, tuple(found), len(_history_files(folder)), migrated)
