"""Baselines: run documents kept as ``results/baselines/<name>.json``, and finding the runs to compare.

A baseline is whatever a comparison is held against in CI, so promoting one refuses runs whose numbers
would mislead (incomplete, synthetic data, simulated or stand-in devices) unless the caller says so.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
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
    return sorted(p.stem for p in folder.glob("*.json")) if folder.is_dir() else []


def check_name(name: str) -> str:
    if not NAME_PATTERN.match(name) or name.endswith(".json"):
        raise ResultsError(f"baseline name {name!r} is not usable: use letters, digits, '.', '_' or '-' "
                           "(no slashes, no .json), e.g. h100-tf2.21")
    return name


def resolve_baseline(spec: str, results_dir: str | Path) -> tuple[Path, str | None]:
    """A baseline given as a path or as a name under ``results/baselines``: (path, name or None)."""
    path = Path(spec)
    if path.is_file():
        return path, None
    if NAME_PATTERN.match(spec) and not spec.endswith(".json"):
        named = baselines_dir(results_dir) / f"{spec}.json"
        if named.is_file():
            return named, spec
        known = ", ".join(list_baselines(results_dir)) or "none yet"
        raise ResultsError(f"baseline not found: {spec!r} is neither a file nor {named} (baselines: {known}); "
                           "create one with python -m bench promote RUN --name NAME")
    raise ResultsError(f"baseline file not found: {spec}")


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


def promote(run_path: str | Path, name: str, results_dir: str | Path, force: bool = False,
            allow_doubtful: bool = False) -> Promotion:
    """Copy a run document to ``results/baselines/<name>.json``."""
    check_name(name)
    run = load_run(run_path)
    found = doubts(run)
    if found and not allow_doubtful:
        raise ResultsError(f"refusing to promote {run_path}: {'; '.join(found)}; a baseline should be a complete "
                           "run on real GPUs with MNIST (pass --allow-doubtful to promote it anyway)")
    target = baselines_dir(results_dir) / f"{name}.json"
    replaced = target.exists()
    if replaced and not force:
        raise ResultsError(f"{target} already exists; pass --force to replace it")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ResultsError(f"cannot create {target.parent}: {exc.strerror or exc}") from None
    write_json_atomic(target, run)
    return Promotion(target, run.get("run_id"), replaced, tuple(found))
