"""``python -m bench run``: run a sweep and write one results file (its path is the last line printed)."""

from __future__ import annotations

import argparse
import os
import secrets
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import __version__
from bench.analyze.derive import derive_run
from bench.commands import add_results_dir
from bench.config import BenchConfig, config_from_dict, default_config, resolve_threads
from bench.config_overrides import load_config_with_overrides
from bench.errors import UserError
from bench.report.terminal import format_progress, format_summary
from bench.store.results import PARTIAL_SUFFIX, RUN_KIND, SCHEMA_VERSION, CaseLog, ResultsError, finalize_run
from bench.store.schema import CaseRecord, RunHeader, run_id_stamp, utc_now


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", metavar="TOML",
                        help="sweep definition (default: configs/default.toml when a GPU is visible, "
                             "else configs/quick.toml)")
    add_results_dir(parser, "where the results file goes")
    parser.add_argument("--resume", metavar="PARTIAL",
                        help=f"continue an interrupted run from its {PARTIAL_SUFFIX} log; runs only missing cases")
    parser.add_argument("--quiet", action="store_true", help="no per-case progress lines")
    parser.add_argument("--list", action="store_true",
                        help="print the ids of the cases this run would run (after -k and --set) and exit")
    parser.add_argument("--dry-run", action="store_true",
                        help="plan the cases and estimate how long they take; run nothing")
    parser.add_argument("-k", dest="select", metavar="EXPR",
                        help='run only cases whose id matches, pytest style: words (substrings of case ids) '
                             'joined by and/or/not, e.g. -k "gpus=2 and not jit=true"')
    parser.add_argument("--set", dest="overrides", metavar="SECTION.KEY=VALUE", action="append", default=[],
                        help="override one config value for this run, parsed as TOML and validated like the "
                             "file, e.g. --set measure.rounds=10 --set train.global_batch=[256] (repeatable)")


class SetupRefused(UserError):
    """Every case would be skipped: the config asks for real GPUs that its backend cannot see, or none of its
    frameworks is installed here."""


@dataclass
class _Plan:
    config: BenchConfig
    planned: list[Any]  # bench.run.plan.PlannedCase, after -k
    selection: dict[str, Any]
    resumed: tuple[CaseLog, dict[str, Any], str, Path] | None = None  # log, data, run_id, results_dir
    # Backend or Keras flavour -> why its cases cannot run here (not installed; the install line): the sweep
    # records them as skipped without starting a worker.
    unavailable: dict[str, str] = field(default_factory=dict)


def run(args: argparse.Namespace) -> int:
    plan = _plan(args)
    if args.list:
        for case in plan.planned:
            print(case.case_id)
        print(f"{len(plan.planned)} case(s) from {plan.config.path or plan.config.name}", file=sys.stderr)
        return 0
    if args.dry_run:
        resumed = plan.resumed
        return _dry_run(plan.planned, plan.config, resumed[3] if resumed else Path(args.results_dir),
                        resumed[0].read()[1] if resumed else [])
    # A task of a scheduler's cluster (TF_CONFIG, KERAS_DISTRIBUTION_*, srun): only worker 0 writes results.
    member = _cluster_member(plan.config)
    if member is not None and not member.is_chief:
        if plan.resumed:
            raise UserError("--resume is for worker 0 of a cluster, which holds the results; start the other "
                            "tasks without it")
        return _run_peer(plan.config, member, {c.case_id for c in plan.planned})
    log, data, run_id, results_dir = plan.resumed or _start(args, plan)
    return _sweep(args, plan, log, data, run_id, results_dir, member)


def _plan(args: argparse.Namespace) -> _Plan:
    from bench.run.plan import plan_cases

    if args.resume:
        if args.overrides or args.select is not None:
            raise UserError("--resume continues a run exactly as it was planned (its config, --set overrides and "
                            "-k selection are in the log); drop --set/-k, or start a new run with them")
        log, config, data, run_id, results_dir, selection = _resume(Path(args.resume))
        return _Plan(config, _select(plan_cases(config), selection.get("k")), selection,
                     (log, data, run_id, results_dir))
    path = _default_config_path() if args.config is None else Path(args.config)
    config = load_config_with_overrides(path, args.overrides)
    every = plan_cases(config)
    planned = _select(every, args.select)
    return _Plan(config, planned, {"overrides": list(args.overrides), "k": args.select,
                                   "planned_cases": len(every), "selected_cases": len(planned)})


def _start(args: argparse.Namespace, plan: _Plan) -> tuple[CaseLog, dict[str, Any], str, Path]:
    """A new run: check the setup, resolve the data, write the log's header."""
    from bench.environment.fingerprint import check_cuda_visible_devices
    from bench.measure import data as data_mod

    note = check_cuda_visible_devices()
    if note:
        print(f"note: {note}", file=sys.stderr)
    results_dir = _writable_dir(Path(args.results_dir))
    run_id = _run_id(plan.config)
    # Before the data (which may be downloaded): a refused run should cost nothing more.
    keras_environments = _check_environments(plan.config, plan.planned)
    frameworks, findings, plan.unavailable = _check_setup(plan.config, plan.planned)
    spec = data_mod.resolve(plan.config.data, plan.config.measure.seed)
    if spec.synthetic and "converge" in plan.config.suites:
        # Test accuracy on synthetic data means nothing; refused before any case runs.
        raise data_mod.DataError(f"the converge suite needs real MNIST, but {spec.note}; put mnist.npz in the "
                                 f"Keras cache ({data_mod.keras_cache_path()}) or set [data] path")
    data = spec.to_dict()
    # Printed only now, so a bad data file is still the one line a user mistake gets.
    for line in findings:
        print(f"note: {line}", file=sys.stderr)
    for name, reason in plan.unavailable.items():
        count = sum(1 for c in plan.planned if name in (c.backend, c.keras))
        print(f"skipped: {count} {name} case(s): {reason}", file=sys.stderr)
    print(f"setup: {frameworks['verdict']['line']} (frameworks probed in {frameworks['probe']['wall_s']:.1f} s)",
          flush=True)
    header = _header(plan.config, data, run_id, frameworks, plan.selection, _threads(plan.config),
                     keras_environments)
    return CaseLog.create(results_dir / f"{run_id}{PARTIAL_SUFFIX}", header), data, run_id, results_dir


def _sweep(args: argparse.Namespace, plan: _Plan, log: CaseLog, data: dict[str, Any], run_id: str,
           results_dir: Path, member: Any = None) -> int:
    from bench.run.sweep import Sweep

    config = plan.config
    started = time.monotonic()
    out = sys.stdout
    done_before = 0  # measurements an interrupted run already made: they took none of this run's time

    def on_case(record: dict[str, Any], done: int, total: int) -> None:
        if not args.quiet:
            # Count only this invocation's measurements, so the ETA divides this run's time by this run's work.
            print(format_progress(record, done - done_before, total - done_before, time.monotonic() - started),
                  file=out, flush=True)

    # The threads the run started with (a resumed run keeps them), else resolved now for an older log.
    threads = log.read()[0].environment.threads or _threads(config)
    sweep = Sweep(config, data, log, results_dir / f"{run_id}.logs", on_case=on_case,
                  case_ids={c.case_id for c in plan.planned}, member=member, threads=threads,
                  unavailable=plan.unavailable)
    done_before, wanted = sweep.measurements
    if data["source"] == "synthetic":
        print(f"WARNING: synthetic data — {data['note']}. Accuracy numbers are not MNIST's.", file=out)
    m = config.measure
    print(f"run {run_id}: {len(sweep.remaining)} of {sweep.total} cases to run, {wanted - done_before} "
          f"measurement(s): train/native cases in {m.processes} process(es) each, {m.order} "
          f"(config {config.path or config.name}); threads intra_op {threads.get('intra_op')}, inter_op "
          f"{threads.get('inter_op')} ({threads.get('source')}); log {log.path}", file=out, flush=True)
    order = [c.case_id for c in sweep.planned]
    try:
        sweep.run()
    except KeyboardInterrupt:
        # What finished is a document too (complete: false), so it can be reported and compared now; the
        # log stays for --resume, which finalises the same file again when the run is complete.
        partial = finalize_run(log, results_dir / f"{run_id}.json", utc_now(), complete=False, order=order,
                               derive=_derive(config, log))
        made, wanted = sweep.measurements
        print(f"\ninterrupted: {made} of {wanted} measurements ({len(sweep.done)} of {sweep.total} cases complete) "
              f"are saved in {log.path} and in {partial} "
              f"(complete: false)\nresume with: python -m bench run --resume {log.path}", file=sys.stderr)
        return 130
    final = finalize_run(log, results_dir / f"{run_id}.json", utc_now(), order=order,
                         derive=_derive(config, log))
    from bench.store.results import load_run

    print(format_summary(load_run(final)), file=out)
    print(final, file=out)
    return 0


def _derive(config: BenchConfig, log: CaseLog) -> Any:
    """``finalize_run``'s derive step, with the run's header (environment, data, run_id), which the first
    screen's answers (the doctor's verdict, the GPU model behind MFU) come from."""
    header = log.read()[0].to_dict()
    return lambda cases: derive_run(config.suites, cases, header)


def _select(planned: list[Any], expression: str | None) -> list[Any]:
    if expression is None:
        return planned
    from bench.run.select import select_cases

    return select_cases(planned, expression)


def _dry_run(planned: list[Any], config: BenchConfig, results_dir: Path, finished: list[CaseRecord]) -> int:
    from bench.environment.fingerprint import gpu_inventory
    from bench.run.estimate import estimate, format_estimate, previous_durations

    done = {c.case_id for c in finished}
    todo = [c for c in planned if c.case_id not in done]
    visible = len(gpu_inventory().get("gpus") or [])
    previous, previous_run = previous_durations(results_dir, config)
    print(format_estimate(estimate(todo, config, visible, previous, previous_run), config, visible))
    if done:
        print(f"({len(done)} case(s) already finished in the log are not counted)")
    return 0


def _check_setup(config: BenchConfig, planned: list[Any]) -> tuple[dict[str, Any], list[str], dict[str, str]]:
    """Probe the run's backends once (their facts go into the results file); refuse a sweep that would only skip.

    A config that asks for real GPUs (``[devices] simulate = false``) on a machine where NVML sees GPUs
    but the backend sees none would record every case as skipped: stop before the sweep with the
    doctor's verdict instead (exit 2), and write nothing. A framework (or tf_keras) that is not installed
    makes its cases ``skipped`` with the install line; when that is every case, the run is refused the same
    way. Returns the facts, the lines worth a note and what cannot run here (backend or flavour -> reason).
    """
    from bench.environment.doctor import judge
    from bench.environment.fingerprint import gpu_inventory
    from bench.environment.frameworks import collect

    backends = list(dict.fromkeys(c.backend for c in planned))
    inventory = gpu_inventory()
    frameworks = collect(backends)
    verdict = judge(config, frameworks, inventory, os.environ, backends)
    frameworks["verdict"] = verdict.to_dict()
    where = config.path or config.name
    if verdict.gpus_unseen:
        raise SetupRefused(f"{verdict.gpus_unseen[0].line}; {where} asks for real GPUs ([devices] simulate = false) "
                           f"so every case would be skipped, and nothing was run (python -m bench doctor --config "
                           f"{where} explains; --set devices.simulate=true runs on simulated devices instead)")
    unavailable = _not_installed(planned, frameworks, inventory)
    if planned and all(c.backend in unavailable or c.keras in unavailable for c in planned):
        reasons = "; ".join(dict.fromkeys(unavailable[c.backend if c.backend in unavailable else c.keras]
                                          for c in planned))
        raise SetupRefused(f"none of the {len(planned)} case(s) of {where} can run here: {reasons} (or: nox -s bench "
                           f"-- --config {where}, which installs what a config needs)")
    return frameworks, [f.line for f in verdict.findings if f.level in ("problem", "warning")], unavailable


def _not_installed(planned: list[Any], frameworks: dict[str, Any], inventory: dict[str, Any]) -> dict[str, str]:
    """Backend (its probe found no installation) or Keras flavour (tf_keras missing) -> the skip reason, which
    is the install line."""
    from bench.environment.doctor import install_hint
    from bench.environment.frameworks import LABELS
    from bench.measure.flavour import DEFAULT, unsupported

    found = {backend: f"{LABELS[backend]} is not installed: {install_hint(backend, inventory)}"
             for backend in dict.fromkeys(c.backend for c in planned)
             if (frameworks.get(backend) or {}).get("status") == "not_installed"}
    for flavour in dict.fromkeys(c.keras for c in planned if c.backend == "tensorflow" and c.backend not in found):
        reason = unsupported("tensorflow", flavour) if flavour != DEFAULT else None
        if reason is not None:
            found[flavour] = reason
    return found


def _check_environments(config: BenchConfig, planned: list[Any]) -> list[dict[str, Any]] | None:
    """Every [environments] entry the planned cases use: its folder exists and Keras imports there (else one
    line, exit 2); what each resolved to is printed and kept for the header."""
    from bench.environment.keras_envs import notes, resolve

    resolved = resolve(config, planned)
    for env in resolved or []:
        version = "" if env["keras_version"] in env["label"] else f" (Keras {env['keras_version']})"
        print(f"environment {env['name']}: {env['label']}{version}", flush=True)
    for line in notes(resolved):
        print(f"note: {line}", file=sys.stderr)
    return resolved


def _cluster_member(config: BenchConfig):
    """This task's place in a scheduler's cluster (TF_CONFIG, KERAS_DISTRIBUTION_*, srun), or None; its own
    port is checked here, so a clash is one line before the sweep (bench.run.cluster)."""
    from bench.run.cluster import check_own_port, detect

    member = detect(os.environ, config.cluster)
    if member is not None:
        check_own_port(member)
        print(f"cluster: this task is {member.describe()}", file=sys.stderr)
    return member


def _run_peer(config: BenchConfig, member: Any, case_ids: set[str]) -> int:
    """A non-chief task: its worker of every multi-worker case, no results file (worker 0 writes it)."""
    import tempfile

    from bench.measure import data as data_mod
    from bench.run.launcher import run_peer

    data = data_mod.resolve(config.data, config.measure.seed).to_dict()
    logs = Path(tempfile.mkdtemp(prefix=f"bench-worker{member.index}-"))
    return run_peer(config, data, member, logs, sys.stdout, case_ids)


def _default_config_path() -> Path:
    from bench.environment.fingerprint import gpu_inventory

    return default_config("default.toml" if gpu_inventory().get("gpus") else "quick.toml")


def _writable_dir(path: Path) -> Path:
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ResultsError(f"cannot create results directory {path}: {exc.strerror}; choose another --results-dir") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise ResultsError(f"results directory {path} is not writable; choose another --results-dir")
    return path


def _run_id(config: BenchConfig) -> str:
    safe = "".join(ch if ch.isalnum() or ch in "-_" else "-" for ch in config.name)
    return f"{run_id_stamp()}-{safe}-{secrets.token_hex(3)}"


def _threads(config: BenchConfig) -> dict[str, Any]:
    """``[threads]`` resolved for this machine (bench.config.resolve_threads)."""
    from bench.environment.fingerprint import gpu_inventory

    return resolve_threads(config.threads, bool(gpu_inventory().get("gpus")))


def _header(config: BenchConfig, data: dict[str, Any], run_id: str, frameworks: dict[str, Any],
            selection: dict[str, Any], threads: dict[str, Any],
            keras_environments: list[dict[str, Any]] | None = None) -> RunHeader:
    from bench.environment.fingerprint import fingerprint

    environment = fingerprint(config.sha256, config.measure.seed)
    environment["frameworks"] = frameworks
    environment["threads"] = threads
    if keras_environments is not None:
        environment["keras_environments"] = keras_environments
    return RunHeader.model_validate({
        "kind": RUN_KIND,
        "schema_version": SCHEMA_VERSION,
        "run_id": run_id,
        "created_utc": utc_now(),
        "tool": {"name": "keras-gpu-bench", "version": __version__},
        "config": config.to_dict(),
        "selection": selection,
        "environment": environment,
        "data": data,
    })


def _resume(path: Path) -> tuple[CaseLog, BenchConfig, dict[str, Any], str, Path, dict[str, Any]]:
    if not path.name.endswith(PARTIAL_SUFFIX):
        raise UserError(f"--resume takes a {PARTIAL_SUFFIX} log from an interrupted run, got {path}")
    if not path.is_file():
        raise UserError(f"nothing to resume: {path} not found")
    log = CaseLog(path)
    log.repair()
    header, _ = log.read()
    # Appending this version's records to an older log would mix versions in one file.
    if log.written_version() != SCHEMA_VERSION:
        raise ResultsError(f"{path}: written by another version of this tool (schema_version "
                           f"{log.written_version()!r}, this one writes {SCHEMA_VERSION}); it can be reported "
                           "(python -m bench report), not resumed")
    config = config_from_dict(header.config)
    # Logs written before -k existed have no selection: they planned every case.
    return log, config, header.data.to_dict(), header.run_id, path.parent, dict(header.selection or {})
