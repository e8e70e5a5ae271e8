"""Joining TensorFlow's or JAX's distributed runtime inside one worker process of a multi-worker case.

:func:`configure` runs first thing in the process (the benchmark plugin calls it before anything touches a
device) and joins the cluster the way a user's script does:

- TensorFlow: ``MultiWorkerMirroredStrategy`` from ``TF_CONFIG`` (its default ``TFConfigClusterResolver``)
  or from ``SlurmClusterResolver`` under ``srun``. The coordination service is configured first with the
  config's heartbeat timeout, exactly as the strategy would configure it itself
  (tensorflow/python/distribute/collective_all_reduce_strategy.py, ``_initialize_multi_worker``, which
  skips its own set-up when one exists); the collectives get
  ``CommunicationOptions(timeout_seconds=peer_timeout_s)``.
- JAX: ``jax.distributed.initialize`` with the arguments ``keras.distribution.initialize()`` derives from
  ``KERAS_DISTRIBUTION_*`` (keras/src/distribution/distribution_lib.py ``initialize`` →
  keras/src/backend/jax/distribution_lib.py ``initialize``: the first address is the coordinator), called
  directly because Keras' wrapper cannot pass ``initialization_timeout`` and ``heartbeat_timeout_seconds``,
  the bounds this suite promises. Without an address (SLURM) JAX detects the cluster itself. Keras'
  wrapper also agrees on one random seed across processes (``initialize_rng``); here every process sets
  the config's seed before building the model, which gives the same weights.

Numbers travel over the frameworks' own collectives, never files or sockets of ours, so the same code
works across hosts: TensorFlow ``all_gather`` in the strategy's replica context, JAX
``multihost_utils.process_allgather`` (gloo on CPUs: ``jax_cpu_collectives_implementation``). The
rendezvous all-gathers each worker's config, data, versions and case list; :func:`find_mismatch` names
the first worker that differs, and in what. Progress events (``joining``, ``ready``, ``join_failed``) go to
the launcher's progress file (bench.run.launcher).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import re
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from bench.measure import flavour
from bench.measure.devices import DeviceInventory
from bench.measure.records import key_line
from bench.process import write_event

if TYPE_CHECKING:
    from bench.measure.worker_plan import WorkerPlan


class ClusterMismatch(RuntimeError):
    """Workers of one cluster disagree on what they run (config, data, versions, cases)."""


# --------------------------------------------------------------------------- the cluster in this process


@dataclass
class Cluster:
    """This process's view of the cluster it joined; ``gather_rows`` is the framework's all-gather."""

    backend: str
    index: int
    size: int
    source: str  # "local", "TF_CONFIG", "KERAS_DISTRIBUTION", "SLURM"
    gather_rows: Callable[[np.ndarray], np.ndarray]
    strategy: Any = None  # TensorFlow's MultiWorkerMirroredStrategy
    peers: list[dict[str, Any]] = field(default_factory=list)  # rendezvous payloads, worker order
    mismatch: str | None = None
    rendezvous_s: float = 0.0
    progress_path: str = ""  # the launcher's progress file of this worker (tracebacks of failed cases go there)

    def all_gather(self, obj: Any) -> list[Any]:
        """Every worker's ``obj`` (JSON-able), in worker order."""
        return all_gather_json(self.gather_rows, obj)

    def describe(self) -> dict[str, Any]:
        return {"source": self.source, "workers": self.size, "rendezvous_s": self.rendezvous_s,
                "members": [{k: p.get(k) for k in ("worker", "host", "pid", "devices")} for p in self.peers]}


@dataclass
class ClusterInventory(DeviceInventory):
    """The device inventory of a worker process that joined a cluster (what the benchmark gets)."""

    cluster: Cluster | None = None


def all_gather_json(gather_rows: Callable[[np.ndarray], np.ndarray], obj: Any) -> list[Any]:
    """All-gather a JSON value through a collective that gathers equal-length int32 rows.

    Exact (bytes, not floats: JAX without x64 would round float64 to float32) and two collectives: the
    lengths, then the padded payloads. A TensorFlow worker with several replicas contributes one row per
    replica; rows are deduplicated by their ``worker`` key.
    """
    payload = np.frombuffer(json.dumps(obj, sort_keys=True).encode(), dtype=np.uint8).astype(np.int32)
    longest = int(np.max(gather_rows(np.array([payload.size], dtype=np.int32))))
    padded = np.full(longest, -1, dtype=np.int32)
    padded[:payload.size] = payload
    rows = gather_rows(padded)
    values, seen = [], set()
    for row in np.asarray(rows):
        value = json.loads(bytes(int(b) for b in row if b >= 0).decode())
        key = value.get("worker") if isinstance(value, dict) else None
        if key is None or key not in seen:
            values.append(value)
            seen.add(key)
    return sorted(values, key=lambda v: v.get("worker", 0) if isinstance(v, dict) else 0)


def emit(plan: WorkerPlan, event: str, **fields: Any) -> None:
    emit_to(plan.progress_path, event, **fields)


def emit_to(path: str, event: str, **fields: Any) -> None:
    """A progress event for the sweep's launcher (bench.run.launcher), same file and format as the plugin's."""
    write_event(path, event, **fields)


def configure(plan: WorkerPlan) -> ClusterInventory:
    """Join the cluster, then fix this process's devices; called by the benchmark plugin before anything else.

    Events for the launcher: ``joining`` (about to contact the peers), ``ready`` (the rendezvous
    all-gather came back from every worker) or ``join_failed`` (with the key line).
    """
    spec = plan.cluster or {}
    emit(plan, "joining", worker=spec.get("index"))
    t0 = time.monotonic()
    try:
        if plan.backend == "tensorflow":
            inventory, strategy, gather, local = _join_tensorflow(plan)
        elif plan.backend == "jax":
            inventory, gather, local = _join_jax(plan)
            strategy = None
        else:
            raise ValueError(f"no multi-worker runtime for backend {plan.backend!r}")
        cluster = Cluster(plan.backend, int(spec.get("index", 0)), int(spec.get("size", 1)),
                          str(spec.get("source", "local")), gather, strategy, progress_path=plan.progress_path)
        cluster.peers = cluster.all_gather(_rendezvous_payload(plan, cluster.index, local))
    except Exception as exc:
        emit(plan, "join_failed", message=cluster_message(exc), type=type(exc).__name__)
        raise
    cluster.rendezvous_s = time.monotonic() - t0
    cluster.mismatch = find_mismatch(cluster.peers)
    emit(plan, "ready", rendezvous_s=cluster.rendezvous_s,
          peers=[{k: p.get(k) for k in ("worker", "host", "pid")} for p in cluster.peers])
    return ClusterInventory(**{f.name: getattr(inventory, f.name) for f in dataclasses.fields(DeviceInventory)},
                            cluster=cluster)


def _join_tensorflow(plan: WorkerPlan) -> tuple[DeviceInventory, Any, Callable[[np.ndarray], np.ndarray], list[str]]:
    import tensorflow as tf

    from bench.measure import devices

    spec = plan.cluster or {}
    if spec.get("source") == "SLURM":
        # GPUs per task come from SLURM (--gpus-per-task sets CUDA_VISIBLE_DEVICES for each task); the resolver
        # is told not to reassign them, and a GPU count per node it never checks against nvidia-smi.
        resolver = tf.distribute.cluster_resolver.SlurmClusterResolver(
            port_base=int(spec.get("port_base", 8888)), gpus_per_node=1024, gpus_per_task=max(1, plan.replicas),
            auto_set_gpu=False)
    else:
        resolver = tf.distribute.cluster_resolver.TFConfigClusterResolver()
    from bench.config import config_from_dict

    memory_mib = config_from_dict(plan.config).devices.logical_gpu_memory_mib  # as the one-process path passes it
    inventory = devices.configure("tensorflow", plan.replicas, plan.simulate, memory_mib)  # before the context
    _configure_coordination(resolver, float(spec.get("connect_timeout_s", 120)), float(spec.get("peer_timeout_s", 60)))
    options = tf.distribute.experimental.CommunicationOptions(timeout_seconds=float(spec.get("peer_timeout_s", 60)))
    strategy = tf.distribute.MultiWorkerMirroredStrategy(cluster_resolver=resolver, communication_options=options)

    @tf.function
    def gather(row: Any) -> Any:
        return tf.distribute.get_replica_context().all_gather(row[None, :], axis=0)

    def gather_rows(row: np.ndarray) -> np.ndarray:
        out = strategy.run(gather, args=(tf.constant(row, dtype=tf.int32),))
        return strategy.experimental_local_results(out)[0].numpy()

    return inventory, strategy, gather_rows, list(strategy.extended.worker_devices)


def _configure_coordination(resolver: Any, connect_timeout_s: float, peer_timeout_s: float) -> None:
    """TensorFlow's coordination service with this config's timeouts, set up exactly as the strategy would
    (it skips its own set-up when one is configured). Private TensorFlow API: if it moved, the strategy's
    defaults apply and the launcher's own bounds still hold."""
    try:
        from tensorflow.compiler.xla.tsl.protobuf import coordination_config_pb2
        from tensorflow.python.distribute import multi_worker_util
        from tensorflow.python.eager import context

        cluster_spec = resolver.cluster_spec()
        jobs = [coordination_config_pb2.CoordinatedJob(name=job, num_tasks=cluster_spec.num_tasks(job))
                for job in ("chief", "worker") if job in cluster_spec.jobs]
        context.context().configure_coordination_service(
            service_type="standalone", service_leader=multi_worker_util.coordination_leader(cluster_spec),
            coordinated_jobs=jobs, cluster_register_timeout_in_ms=int(connect_timeout_s * 1000),
            heartbeat_timeout_in_ms=int(peer_timeout_s * 1000),
            shutdown_barrier_timeout_in_ms=int(peer_timeout_s * 1000))
    except (ImportError, AttributeError, TypeError):
        pass


def _join_jax(plan: WorkerPlan) -> tuple[DeviceInventory, Callable[[np.ndarray], np.ndarray], list[str]]:
    import jax
    from jax.experimental import multihost_utils

    from bench.measure import devices

    spec = plan.cluster or {}
    addresses = os.environ.get("KERAS_DISTRIBUTION_JOB_ADDRESSES", "")
    processes = os.environ.get("KERAS_DISTRIBUTION_NUM_PROCESSES")
    process_id = os.environ.get("KERAS_DISTRIBUTION_PROCESS_ID")
    # What keras.distribution.initialize() derives from the same variables: the first address is the coordinator.
    jax.distributed.initialize(
        coordinator_address=addresses.split(",")[0] if addresses else None,
        num_processes=int(processes) if processes else None,
        process_id=int(process_id) if process_id else None,
        initialization_timeout=max(1, math.ceil(float(spec.get("connect_timeout_s", 120)))),
        heartbeat_timeout_seconds=max(1, math.ceil(float(spec.get("peer_timeout_s", 60)))),
        shutdown_timeout_seconds=max(1, math.ceil(float(spec.get("peer_timeout_s", 60)))),
    )
    inventory = devices.configure("jax", plan.replicas, plan.simulate)

    def gather_rows(row: np.ndarray) -> np.ndarray:
        return np.asarray(multihost_utils.process_allgather(row.astype(np.int32)))

    return inventory, gather_rows, [str(d) for d in jax.local_devices()]


def _rendezvous_payload(plan: WorkerPlan, index: int, local_devices: list[str]) -> dict[str, Any]:
    """What must be equal on every worker (config, data, versions, cases) plus who this worker is."""
    from bench import __version__

    config = {k: v for k, v in plan.config.items() if k not in ("path", "sha256")}
    return {
        "worker": index, "host": socket.gethostname(), "pid": os.getpid(), "devices": local_devices,
        "config": config, "config_sha256": hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest(),
        "data": {k: plan.data.get(k) for k in ("source", "sha256", "seed")},
        "case_ids": list(plan.case_ids), "keras": [flavour.name(), flavour.version()],
        "versions": _versions(plan.backend), "bench": __version__,
    }


def _versions(backend: str) -> dict[str, str]:
    from importlib import metadata

    names = {"tensorflow": ("tensorflow",), "jax": ("jax", "jaxlib")}.get(backend, ())
    out = {}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "?"
    return out


def find_mismatch(peers: list[dict[str, Any]]) -> str | None:
    """One line naming the first worker that differs from worker 0, and in what; None when all agree."""
    if not peers:
        return None
    chief = peers[0]
    for peer in peers[1:]:
        who = f"worker {peer.get('worker')} ({peer.get('host')}) and worker {chief.get('worker')} ({chief.get('host')})"
        if peer.get("config_sha256") != chief.get("config_sha256"):
            key = _first_difference(chief.get("config"), peer.get("config"))
            return (f"mismatched configs: {who} run different sweeps (first difference: {key}); every worker must "
                    "run the same config file")
        for name, what in (("case_ids", "cases"), ("data", "data"), ("keras", "Keras"), ("versions", "framework versions"),
                           ("bench", "keras-gpu-bench versions")):
            if peer.get(name) != chief.get(name):
                return (f"mismatched {what}: {who} differ ({peer.get(name)} vs {chief.get(name)}); every worker must "
                        "run the same installation, data and sweep")
    return None


def _first_difference(a: Any, b: Any, prefix: str = "") -> str:
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b)):
            if a.get(key) != b.get(key):
                return _first_difference(a.get(key), b.get(key), f"{prefix}.{key}" if prefix else key)
    return f"{prefix} = {json.dumps(b)} vs {json.dumps(a)}"


# --------------------------------------------------------------------------- messages


def cluster_message(exc: BaseException, limit: int = 400) -> str:
    """One line for an error of a distributed runtime: multi-line values folded (``PerReplica:{...}``), the
    line that names an unhealthy task joined with the task, TensorFlow's ``{{function_node ...}}`` dropped."""
    text = re.sub(r"PerReplica:\{.*?\}\)", "PerReplica:{...})", str(exc), flags=re.S)
    text = re.sub(r"\{\{function_node [^}]*\}\}\s*", "", text)
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    for i, line in enumerate(lines):
        if "unhealthy" in line and i + 1 < len(lines):
            return f"{line} {lines[i + 1]}"[:limit]
    return key_line(text, limit) or type(exc).__name__


def one_line_error(exc: Exception) -> Exception:
    """The same exception type with :func:`cluster_message` as its message, so the record's key line
    (bench.measure.records.key_line) is the informative one; the original when it cannot be rebuilt."""
    message = cluster_message(exc)
    if message == str(exc):
        return exc
    for args in ((message,), (None, None, message)):  # plain exceptions; tf.errors.OpError(node_def, op, message)
        try:
            return type(exc)(*args)
        except Exception:  # noqa: BLE001 - any constructor signature we cannot call
            continue
    return exc
