"""pytest plugin for worker runs: reads the plan, configures devices first, parameterises cases.

Device configuration happens in ``pytest_configure`` — before collection imports any benchmark module,
hence before the framework initialises — because logical devices cannot be added afterwards.
"""

from __future__ import annotations

import os
import time
from typing import Any

import pytest

from bench.cases import suite_cases
from bench.config import config_from_dict
from bench.measure.worker_plan import WorkerPlan
from bench.process import write_event
from bench.store.results import CaseLog, jsonable
from bench.store.schema import CaseRecord, case_record


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--bench-plan", required=True, help="worker plan JSON written by bench.run.sweep")


def pytest_configure(config: pytest.Config) -> None:
    from bench.measure import devices

    plan = WorkerPlan.read(config.getoption("--bench-plan"))
    config._bench_plan = plan  # type: ignore[attr-defined]
    bench_config = config_from_dict(plan.config)
    config._bench_config = bench_config  # type: ignore[attr-defined]
    # Thread pools first: TensorFlow takes them only before its runtime starts (bench.measure.threads).
    from bench.measure.threads import apply_threads

    config._bench_threads = apply_threads(plan.backend, plan.threads)  # type: ignore[attr-defined]
    if plan.suite in ("train", "native") and plan.cluster:
        # One process of a multi-worker case: join the cluster first (bench.measure.distributed).
        from bench.measure import distributed

        config._bench_inventory = distributed.configure(plan)  # type: ignore[attr-defined]
    elif plan.suite in ("train", "native", "converge"):
        config._bench_inventory = devices.configure(  # type: ignore[attr-defined]
            plan.backend, plan.replicas, plan.simulate, bench_config.devices.logical_gpu_memory_mib)
    elif plan.suite == "cpu_predict":
        from bench.measure.cpu_predict import configure_worker

        config._bench_cpu_setup = configure_worker(plan.backend)  # type: ignore[attr-defined]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    plan: WorkerPlan = metafunc.config._bench_plan  # type: ignore[attr-defined]
    fixture = f"{plan.suite}_case"  # train_case, cpu_predict_case, native_case, converge_case
    if fixture in metafunc.fixturenames:
        by_id = {c.case_id: c for c in suite_cases(plan.suite, metafunc.config._bench_config)}  # type: ignore[attr-defined]
        cases = [by_id[i] for i in plan.case_ids if i in by_id]
        metafunc.parametrize(fixture, cases, ids=[c.case_id for c in cases])


@pytest.fixture(scope="session")
def bench_plan(request: pytest.FixtureRequest) -> WorkerPlan:
    return request.config._bench_plan  # type: ignore[attr-defined]


@pytest.fixture(scope="session")
def bench_config(request: pytest.FixtureRequest):
    return request.config._bench_config  # type: ignore[attr-defined]


@pytest.fixture(scope="session")
def inventory(request: pytest.FixtureRequest):
    return request.config._bench_inventory  # type: ignore[attr-defined]


@pytest.fixture(scope="session")
def cpu_setup(request: pytest.FixtureRequest):
    """What :func:`bench.measure.cpu_predict.configure_worker` returned (training device, stand-in flag...)."""
    return request.config._bench_cpu_setup  # type: ignore[attr-defined]


@pytest.fixture(scope="session")
def mnist(bench_plan: WorkerPlan):
    from bench.measure import data

    return data.load(data.DataSpec.from_dict(bench_plan.data))


@pytest.fixture(scope="session")
def control(request: pytest.FixtureRequest, bench_plan: WorkerPlan, bench_config):
    """The worker's control workload (bench.measure.control), or None with ``[control] enabled = false``."""
    if not bench_config.control.enabled:
        return None
    from bench.measure.control import Control, control_device

    inventory = getattr(request.config, "_bench_inventory", None)
    devices = list(inventory.logical) if inventory is not None else []
    return Control(bench_plan.backend, control_device(bench_plan.backend, devices), bench_config.control,
                   steps=bench_plan.control_steps)


@pytest.fixture(scope="session")
def units_for(bench_plan: WorkerPlan):
    """``units_for(case_id)``: the round length the case's first process calibrated, or None (calibrate here)."""
    units = bench_plan.units or {}
    return lambda case_id: units.get(case_id)


@pytest.fixture
def record_case(bench_plan: WorkerPlan, request: pytest.FixtureRequest, control):
    """Append a finished case to the run's log; tell the sweep which case is in flight.

    The control workload is timed right before the case (this fixture is set up last) and right after
    it (when the case hands over its record), in the same process on the same device. A cluster's
    non-chief worker has no log: worker 0 writes the case.
    """
    log = CaseLog(bench_plan.log_path) if bench_plan.log_path else None
    case_id = request.node.callspec.id if hasattr(request.node, "callspec") else request.node.name
    _progress(bench_plan, {"event": "start", "case_id": case_id})
    started_unix = time.time()
    before = control.sample() if control is not None else []

    def record(result: CaseRecord) -> None:
        data = result.to_dict()
        if control is not None and result.status != "skipped":
            # A new record with the control beside the case (records are frozen; the case log checks it).
            data["control"] = jsonable(control.record(before, control.sample()))
        if bench_plan.suite in ("train", "native") and not bench_plan.cluster:
            # Which process this is: the case log holds one record per (case, pass), merged at finalise.
            data["metrics"] = {**data.get("metrics", {}), "process": {
                "pass_index": bench_plan.pass_index, "pid": os.getpid(), "started_unix": started_unix,
                "position": bench_plan.case_ids.index(case_id) if case_id in bench_plan.case_ids else None,
                "threads": getattr(request.config, "_bench_threads", None)}}
        if case_id in bench_plan.retried:
            data["flags"] = {**data.get("flags", {}), "retried_after_crash": True}
        if data != result.to_dict():
            result = case_record(jsonable(data))
        if log is not None:
            log.append(result)
        _progress(bench_plan, {"event": "done", "case_id": result.case_id, "status": result.status})
        if result.status == "skipped":  # recorded with its reason, and shown as a pytest skip
            pytest.skip(result.reason)

    return record


def _progress(plan: WorkerPlan, event: dict[str, Any]) -> None:
    write_event(plan.progress_path, **event)
