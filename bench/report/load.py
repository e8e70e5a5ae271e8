"""Result files -> one :class:`RunData` per run: the document, its ``derived`` tables and per-suite DataFrames.

Reads run documents (``results/<run_id>.json``) and, so an interrupted sweep can be looked at before it is
resumed, crash-safe case logs (``<run_id>.partial.jsonl``, shown as incomplete runs), both through the
store's one loader, ``bench.store.results.load_run``. A document whose ``derived`` block is missing or was
written by older derivation rules (a partial log, an old file) goes through the same analysis a finished
run gets (:func:`bench.analyze.current.with_current_derived`): the report never computes a number itself.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from bench.analyze.current import with_current_derived
from bench.analyze.frames import Frames
from bench.analyze.frames import backends as backends
from bench.analyze.frames import compiler as compiler
from bench.analyze.frames import compilers as compilers
from bench.analyze.frames import is_false as is_false
from bench.analyze.frames import is_true as is_true
from bench.analyze.frames import jit_param_label as jit_param_label
from bench.analyze.reference import context
from bench.store.results import DEFAULT_RESULTS_DIR as DEFAULT_RESULTS_DIR
from bench.store.results import load_run


@dataclass(frozen=True)
class RunData:
    """One result file as the report sees it."""

    path: Path
    document: dict[str, Any]
    train: pd.DataFrame  # the one-process Keras 3 sweep: what the training charts and tables read
    cpu_predict: pd.DataFrame
    native: pd.DataFrame
    file_sha256: str
    file_bytes: int
    # Train cases off that sweep — workers > 1 or keras = tf_keras — drawn by bench.report.multiworker only, so
    # no chart pairs a cluster's or Keras 2's number with a one-process Keras 3 one.
    train_extra: pd.DataFrame = field(default_factory=pd.DataFrame)
    # True when ``derived`` was computed here because the file had none or an older one.
    rederived: bool = False
    # This run beside the committed reference runs on the same GPU and backend (bench.analyze.reference).
    reference: dict[str, Any] | None = None

    @property
    def run_id(self) -> str:
        return str(self.document.get("run_id") or self.path.stem)

    @property
    def config(self) -> dict[str, Any]:
        return self.document.get("config") or {}

    @property
    def environment(self) -> dict[str, Any]:
        return self.document.get("environment") or {}

    @property
    def derived(self) -> dict[str, Any]:
        return self.document.get("derived") or {}

    @property
    def cv_threshold(self) -> float:
        return float((self.config.get("measure") or {}).get("cv_threshold", 0.05))


def load_runs(paths: list[Path], references: list[Path] | None = None) -> list[RunData]:
    """The runs, each with a current ``derived`` block and, when ``references`` (the committed reference
    runs) are given, its reference context."""
    reference_docs = [load_run(p) for p in references or []]
    runs = []
    for path in paths:
        path = Path(path)
        document, rederived = with_current_derived(load_run(path))  # a .json document or a .partial.jsonl log
        raw = path.read_bytes()
        frames = Frames(document)
        runs.append(RunData(
            path=path, document=document, train=frames.train, train_extra=frames.train_extra,
            cpu_predict=frames.cpu_predict, native=frames.native,
            file_sha256=hashlib.sha256(raw).hexdigest(), file_bytes=len(raw), rederived=rederived,
            reference=context(document, reference_docs) if references is not None else None,
        ))
    return runs
