"""``python -m bench run``: run a sweep and write one results file (its path is the last line printed)."""

from __future__ import annotations

import argparse
import os
import secrets
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from bench import __version__
from bench.config import BenchConfig, ConfigError, config_from_dict, load_config
from bench.errors import UserError
from bench.report.terminal import format_progress, format_summary
from bench.store.results import PARTIAL_SUFFIX, RUN_KIND, SCHEMA_VERSION, CaseLog, ResultsError, finalize_run

REPO_CONFIGS = Path(__file__).resolve().parents[2] / "configs"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", metavar="TOML",
                        help="sweep definition (default: configs/default.toml when a GPU is visible, "
                             "else configs/quick.toml)")
    parser.add_argument("--results-dir", metavar="DIR", default="results",
                        help="where the results file goes (default: results/)")
    parser.add_argument("--resume", metavar="PARTIAL",
                        help=f"continue an interrupted run from its {PARTIAL_SUFFIX} log; runs only missing cases")
    parser.add_argument("--quiet", action="store_true", help="no per-case progress lines")


def run(args: argparse.Namespace) -> int:
    if args.resume:
        log, config, data, run_id, results_dir = _resume(Path(args.resume))
    else:
        config = load_config(_default_config_path() if args.config is None else args.config)
        member = _cluster_member(config)
        if member is not None and not member.is_chief:
            return _run_peer(config, member)
        from bench.environment.fingerprint import check_cuda_visible_devices

        note = check_cuda_visible_devices()
        if note:
            print(f"note: {note}", file=sys.stderr)
        results_dir = _writable_dir(Path(args.results_dir))
        run_id = _run_id(config)
        from bench.measure import data as data_mod

        spec = data_mod.resolve(config.data, config.measure.seed)
        data = spec.to_dict()
        header = _header(config, data, run_id)
        log = CaseLog.create(results_dir / f"{run_id}{PARTIAL_SUFFIX}", header)

    from bench.run.sweep import Sweep

    started = time.monotonic()
    out = sys.stdout

    def on_case(record: dict[str, Any], done: int, total: int) -> None:
        if not args.quiet:
            print(format_progress(record, done, total, time.monotonic() - started), file=out, flush=True)

    member = _cluster_member(config) if args.resume else member
    sweep = Sweep(config, data, log, results_dir / f"{run_id}.logs", on_case=on_case, member=member)
    if data["source"] == "synthetic":
        print(f"WARNING: synthetic data — {data['note']}. Accuracy numbers are not MNIST's.", file=out)
    print(f"run {run_id}: {len(sweep.remaining)} of {sweep.total} cases to run "
          f"(config {config.path or config.name}); log {log.path}", file=out, flush=True)
    try:
        sweep.run()
    except KeyboardInterrupt:
        print(f"\ninterrupted: {len(sweep.done)} of {sweep.total} cases are saved in {log.path}\n"
              f"resume with: python -m bench run --resume {log.path}", file=sys.stderr)
        return 130
    final = finalize_run(log, results_dir / f"{run_id}.json", _utc_now(),
                         order=[c.case_id for c in sweep.planned], derive=lambda cases: _derive(config, cases))
    from bench.store.results import load_run

    print(format_summary(load_run(final)), file=out)
    print(final, file=out)
    return 0


def _derive(config: BenchConfig, cases: list[dict[str, Any]]) -> dict[str, Any]:
    """Cross-case results: Keras/native ratios on train cases, where the time goes (bench.analyze.bottleneck),
    the CPU-prediction ranking table."""
    derived: dict[str, Any] = {}
    if "native" in config.suites:
        from bench.analyze.derive import attach_native_ratios

        attach_native_ratios(cases)
    if "train" in config.suites:
        from bench.analyze.bottleneck import derive_tables

        # Keras 3 configurations in one process: a cluster's or Keras 2's throughput is another question
        # (derived["worker_scaling"] below), not a configuration of the same Keras.
        derived.update(derive_tables([c for c in cases if (c.get("params") or {}).get("workers", 1) == 1
                                      and (c.get("params") or {}).get("keras", "keras3") == "keras3"]))
    if "cpu_predict" in config.suites:
        from bench.analyze.derive import ranking

        derived["cpu_predict_ranking"] = ranking(cases)
    if any(c.get("suite") == "train" and (c.get("params") or {}).get("workers", 1) > 1 for c in cases):
        from bench.analyze.scaling import worker_scaling

        derived["worker_scaling"] = worker_scaling(cases)
    return derived


def _cluster_member(config: BenchConfig):
    """This task's place in a scheduler's cluster (TF_CONFIG, KERAS_DISTRIBUTION_*, srun), or None; its own
    port is checked here, so a clash is one line before the sweep (bench.run.cluster)."""
    from bench.run.cluster import check_own_port, detect

    member = detect(os.environ, config.cluster)
    if member is not None:
        check_own_port(member)
        print(f"cluster: this task is {member.describe()}", file=sys.stderr)
    return member


def _run_peer(config: BenchConfig, member: Any) -> int:
    """A non-chief task: its worker of every multi-worker case, no results file (worker 0 writes it)."""
    import tempfile

    from bench.measure import data as data_mod
    from bench.run.launcher import run_peer

    data = data_mod.resolve(config.data, config.measure.seed).to_dict()
    logs = Path(tempfile.mkdtemp(prefix=f"bench-worker{member.index}-"))
    return run_peer(config, data, member, logs, sys.stdout)


def _default_config_path() -> Path:
    from bench.environment.fingerprint import gpu_inventory

    name = "default.toml" if gpu_inventory().get("gpus") else "quick.toml"
    for base in (Path("configs"), REPO_CONFIGS):
        if (base / name).is_file():
            return base / name
    raise ConfigError(f"no --config given and configs/{name} not found; pass --config PATH")


def _writable_dir(path: Path) -> Path:
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ResultsError(f"cannot create results directory {path}: {exc.strerror}; choose another --results-dir") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise ResultsError(f"results directory {path} is not writable; choose another --results-dir")
    return path


def _run_id(config: BenchConfig) -> str:
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    safe = "".join(ch if ch.isalnum() or ch in "-_" else "-" for ch in config.name)
    return f"{stamp}-{safe}-{secrets.token_hex(3)}"


def _utc_now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _header(config: BenchConfig, data: dict[str, Any], run_id: str) -> dict[str, Any]:
    from bench.environment.fingerprint import fingerprint

    return {
        "kind": RUN_KIND,
        "schema_version": SCHEMA_VERSION,
        "run_id": run_id,
        "created_utc": _utc_now(),
        "tool": {"name": "keras-gpu-bench", "version": __version__},
        "config": config.to_dict(),
        "environment": fingerprint(config.sha256, config.measure.seed),
        "data": data,
    }


def _resume(path: Path) -> tuple[CaseLog, BenchConfig, dict[str, Any], str, Path]:
    if not path.name.endswith(PARTIAL_SUFFIX):
        raise UserError(f"--resume takes a {PARTIAL_SUFFIX} log from an interrupted run, got {path}")
    if not path.is_file():
        raise UserError(f"nothing to resume: {path} not found")
    log = CaseLog(path)
    log.repair()
    header, _ = log.read()
    if header.get("kind") != RUN_KIND or header.get("schema_version") != SCHEMA_VERSION:
        raise ResultsError(f"{path}: not a run log of this tool version (schema_version {header.get('schema_version')!r})")
    config = config_from_dict(header["config"])
    return log, config, header["data"], header["run_id"], path.parent
