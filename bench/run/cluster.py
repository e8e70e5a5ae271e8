"""Where a multi-worker case's processes come from: the scheduler's cluster, or the local launcher's.

Pure and framework-free (the sweep's parent process never imports TensorFlow). Users launch multi-worker
jobs in one of three ways, and every task then runs the same ``python -m bench run ...``:

- ``TF_CONFIG`` (TensorFlow's own convention, what ``MultiWorkerMirroredStrategy()`` reads): a JSON
  ``{"cluster": {"chief": [...], "worker": ["host:port", ...]}, "task": {"type": "worker", "index": i}}``;
- ``KERAS_DISTRIBUTION_JOB_ADDRESSES`` / ``_NUM_PROCESSES`` / ``_PROCESS_ID`` (what
  ``keras.distribution.initialize()`` reads, keras/src/distribution/distribution_lib.py);
- a SLURM job step (``srun``) of 2+ tasks: ``SLURM_PROCID`` and ``SLURM_STEP_NUM_TASKS`` say who is who;
  the addresses are resolved inside the worker by the frameworks themselves
  (``tf.distribute.cluster_resolver.SlurmClusterResolver``, ``jax.distributed.initialize()``'s SLURM
  detection), so no hostlist parsing is duplicated here.

:func:`detect` turns that environment into a :class:`ClusterMember` (this task's index, the cluster size).
Without one, a case with ``workers = N`` gets a local cluster: N processes on free loopback ports
(:func:`local_addresses`), each given the environment a scheduler would have given it
(:func:`worker_environment`). Task 0 is the chief: only its worker appends results, only its ``bench run``
writes the results file. Bad cluster input found here (unreadable ``TF_CONFIG``, a port already taken) is
a :class:`ClusterError`: one line and exit code 2 before the sweep starts.
"""

from __future__ import annotations

import contextlib
import errno
import json
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from bench.cases import WORKER_INPUTS
from bench.config import ClusterSettings
from bench.errors import UserError
from bench.measure.flavour import unsupported

TF_CONFIG = "TF_CONFIG"
KERAS_ADDRESSES = "KERAS_DISTRIBUTION_JOB_ADDRESSES"
KERAS_NUM_PROCESSES = "KERAS_DISTRIBUTION_NUM_PROCESSES"
KERAS_PROCESS_ID = "KERAS_DISTRIBUTION_PROCESS_ID"
# Variables that describe a cluster; removed from a local launcher's workers before its own are set, so an
# inherited TF_CONFIG cannot make a loopback worker dial a real cluster.
CLUSTER_VARS = (TF_CONFIG, KERAS_ADDRESSES, KERAS_NUM_PROCESSES, KERAS_PROCESS_ID)
# The jobs MultiWorkerMirroredStrategy trains with, in task order (multi_worker_util: the chief is task 0).
TF_JOBS = ("chief", "worker")
BACKENDS_WITH_WORKERS = ("tensorflow", "jax")


class ClusterError(UserError):
    """The scheduler's cluster description cannot be used as given."""


@dataclass(frozen=True)
class ClusterMember:
    """This task's place in a cluster the scheduler formed; index 0 is the chief."""

    source: str  # "TF_CONFIG", "KERAS_DISTRIBUTION" or "SLURM"
    index: int
    size: int
    # host:port per task in index order; only the coordinator's for KERAS_DISTRIBUTION_JOB_ADDRESSES that
    # name one; empty for SLURM, whose addresses the frameworks resolve themselves.
    addresses: tuple[str, ...] = ()

    @property
    def is_chief(self) -> bool:
        return self.index == 0

    @property
    def every_address(self) -> bool:
        return len(self.addresses) == self.size

    def describe(self) -> str:
        where = f" ({self.addresses[self.index]})" if self.every_address else ""
        return f"worker {self.index} of {self.size}{where}, from {self.source}"


def detect(env: Mapping[str, str], settings: ClusterSettings) -> ClusterMember | None:
    """The cluster the environment describes, or None (then multi-worker cases use the local launcher)."""
    if settings.launcher == "local":
        return None
    if env.get(TF_CONFIG, "").strip():
        return from_tf_config(env[TF_CONFIG])
    if any(env.get(var) for var in (KERAS_NUM_PROCESSES, KERAS_PROCESS_ID)):
        return from_keras_env(env)
    return from_slurm(env)


def from_tf_config(text: str) -> ClusterMember:
    try:
        spec = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ClusterError(f"TF_CONFIG is not valid JSON ({exc.msg} at column {exc.colno}); expected "
                           '{"cluster": {"worker": ["host:port", ...]}, "task": {"type": "worker", "index": 0}}') from None
    cluster = spec.get("cluster") if isinstance(spec, dict) else None
    task = spec.get("task") if isinstance(spec, dict) else None
    if not isinstance(cluster, dict) or not isinstance(task, dict):
        raise ClusterError('TF_CONFIG needs "cluster" and "task" objects, e.g. {"cluster": {"worker": '
                           '["10.0.0.1:2222", "10.0.0.2:2222"]}, "task": {"type": "worker", "index": 0}}')
    others = sorted(set(cluster) - set(TF_JOBS))
    if others:
        raise ClusterError(f"TF_CONFIG: job {others[0]!r} is not one MultiWorkerMirroredStrategy trains with "
                           "(it uses 'chief' and 'worker'; 'ps' and 'evaluator' belong to other strategies)")
    addresses: list[str] = []
    offsets: dict[str, int] = {}
    for job in TF_JOBS:
        tasks = cluster.get(job, [])
        if not isinstance(tasks, list) or not all(isinstance(a, str) and _port(a) is not None for a in tasks):
            raise ClusterError(f"TF_CONFIG: cluster.{job} must be a list of 'host:port' strings, got {tasks!r}")
        offsets[job] = len(addresses)
        addresses += tasks
    if len(cluster.get("chief", [])) > 1:
        raise ClusterError("TF_CONFIG: at most one chief task")
    if not addresses:
        raise ClusterError("TF_CONFIG: the cluster lists no worker")
    kind, index = task.get("type"), task.get("index")
    if kind not in TF_JOBS or isinstance(index, bool) or not isinstance(index, int):
        raise ClusterError(f"TF_CONFIG: task must be {{'type': 'chief' or 'worker', 'index': N}}, got {task!r}")
    if not 0 <= index < len(cluster.get(kind, [])):
        raise ClusterError(f"TF_CONFIG: task {kind} {index} is not in the cluster "
                           f"({len(cluster.get(kind, []))} {kind} task(s) listed)")
    if len(set(addresses)) != len(addresses):
        raise ClusterError(f"TF_CONFIG: an address is listed twice: {addresses}")
    return ClusterMember("TF_CONFIG", offsets[kind] + index, len(addresses), tuple(addresses))


def from_keras_env(env: Mapping[str, str]) -> ClusterMember:
    def number(var: str) -> int:
        try:
            return int(env.get(var, ""))
        except ValueError:
            raise ClusterError(f"{var} must be an integer, got {env.get(var)!r}") from None

    size, index = number(KERAS_NUM_PROCESSES), number(KERAS_PROCESS_ID)
    if size < 1 or not 0 <= index < size:
        raise ClusterError(f"{KERAS_PROCESS_ID}={index} must lie in [0, {KERAS_NUM_PROCESSES}={size})")
    addresses = tuple(a.strip() for a in env.get(KERAS_ADDRESSES, "").split(",") if a.strip())
    if not addresses:
        raise ClusterError(f"{KERAS_ADDRESSES} is empty: give the coordinator's host:port (or every worker's)")
    if len(addresses) not in (1, size):
        raise ClusterError(f"{KERAS_ADDRESSES} lists {len(addresses)} addresses for {size} processes "
                           "(give the coordinator only, or one per process)")
    bad = [a for a in addresses if _port(a) is None]
    if bad:
        raise ClusterError(f"{KERAS_ADDRESSES}: {bad[0]!r} is not host:port")
    return ClusterMember("KERAS_DISTRIBUTION", index, size, addresses)


def from_slurm(env: Mapping[str, str]) -> ClusterMember | None:
    """A job step of 2+ tasks (``srun``); an allocation's shell (``salloc``, ``sbatch``'s batch step) is one
    task, which runs the sweep with the local launcher like any single machine."""
    if "SLURM_PROCID" not in env:
        return None
    tasks = env.get("SLURM_STEP_NUM_TASKS") or env.get("SLURM_NTASKS") or "1"
    try:
        size, index = int(tasks), int(env["SLURM_PROCID"])
    except ValueError:
        raise ClusterError(f"SLURM_PROCID={env['SLURM_PROCID']!r} / SLURM_STEP_NUM_TASKS={tasks!r} are not "
                           "integers") from None
    if size < 2:
        return None
    return ClusterMember("SLURM", index, size)


# --------------------------------------------------------------------------- what a case may ask of a cluster


def skip_reason(params: Mapping[str, Any], member: ClusterMember | None) -> str | None:
    """Why a ``workers > 1`` train case (its ``params``) cannot run here — a skipped result, decided before
    any process starts — or None."""
    backend, workers = params["backend"], int(params.get("workers", 1))
    flavour_reason = unsupported(backend, params.get("keras", "keras3"))
    if flavour_reason is not None:
        return flavour_reason
    if backend not in BACKENDS_WITH_WORKERS:
        return (f"Keras has no multi-process data parallelism on {backend} (keras.distribution runs on JAX; "
                "TensorFlow has tf.distribute)")
    feed = params.get("input", "device")
    if feed not in WORKER_INPUTS[backend]:
        return (f"input {feed} is not offered with workers > 1 on {backend}; choose "
                f"{' or '.join(WORKER_INPUTS[backend])} (bench.measure.multiworker says why)")
    if member is None:
        return None
    if workers != member.size:
        return (f"the cluster ({member.source}) has {member.size} workers and this case asks for {workers}; "
                "list the cluster's size in [train] workers, or run it on one machine with "
                "[cluster] launcher = 'local'")
    if backend == "tensorflow" and member.source == "KERAS_DISTRIBUTION" and not member.every_address:
        return (f"{KERAS_ADDRESSES} names only the coordinator; TensorFlow needs every worker's host:port "
                "(list them all, or launch with TF_CONFIG or srun)")
    return None


# --------------------------------------------------------------------------- environments and ports


def worker_environment(backend: str, index: int, addresses: tuple[str, ...], member: ClusterMember | None,
                       base: Mapping[str, str]) -> dict[str, str]:
    """The environment of worker ``index``'s process, as a launcher would set it for that backend.

    Local launcher (``member`` None): ``TF_CONFIG`` for TensorFlow, ``KERAS_DISTRIBUTION_*`` for JAX, over an
    environment without inherited cluster variables. Scheduler's cluster: passed through; what one framework
    needs is derived from the other's variables (JAX's coordinator is task 0 of ``TF_CONFIG``; TensorFlow's
    ``TF_CONFIG`` is built from a full ``KERAS_DISTRIBUTION_JOB_ADDRESSES``); SLURM needs nothing added.
    """
    env = dict(base)
    source = "local" if member is None else member.source
    if member is None:
        for var in CLUSTER_VARS:
            env.pop(var, None)
    if source == "SLURM":
        return env
    if backend == "tensorflow" and source in ("local", "KERAS_DISTRIBUTION"):
        env[TF_CONFIG] = json.dumps({"cluster": {"worker": list(addresses)},
                                     "task": {"type": "worker", "index": index}})
    elif backend == "jax" and source in ("local", "TF_CONFIG"):
        env.update({KERAS_ADDRESSES: ",".join(addresses), KERAS_NUM_PROCESSES: str(len(addresses)),
                    KERAS_PROCESS_ID: str(index)})
    return env


def local_addresses(host: str, count: int) -> tuple[str, ...]:
    """``count`` distinct free ports on ``host``: all are held open together, so none is handed out twice,
    then released for the workers to bind (a port taken in between fails that worker's start, with its line)."""
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sockets.append(sock)
            try:
                sock.bind((host, 0))
            except OSError as exc:
                raise ClusterError(f"[cluster] host = {host!r}: cannot listen there ({exc.strerror}); "
                                   "use 127.0.0.1 or an address of this machine") from None
        return tuple(f"{host}:{sock.getsockname()[1]}" for sock in sockets)
    finally:
        for sock in sockets:
            sock.close()


def port_in_use(port: int) -> bool:
    """True when something on this machine listens on ``port`` (all interfaces, as gRPC binds it).

    SO_REUSEADDR mirrors gRPC's own bind: a port left in TIME_WAIT by the previous case's worker is free.
    """
    with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("", port))
        except OSError as exc:
            return exc.errno == errno.EADDRINUSE
    return False


def check_own_port(member: ClusterMember) -> None:
    """Refuse to start when the port this task will listen on is taken on this machine.

    ``TF_CONFIG``: every task's TensorFlow server binds its own address. ``KERAS_DISTRIBUTION_*``: only
    process 0 binds (JAX's coordinator, the first address). Checked before the sweep so the clash costs one
    line, not a worker that cannot start its server while its peers wait for it.
    """
    if member.source == "TF_CONFIG":
        address = member.addresses[member.index]
    elif member.source == "KERAS_DISTRIBUTION" and member.index == 0 and member.addresses:
        address = member.addresses[0]
    else:
        return
    port = _port(address)
    if port is not None and port_in_use(port):
        raise ClusterError(f"port {port} ({address}, worker {member.index} in {member.source}) is already in use "
                           "on this machine: another job or an earlier run still holds it; stop it or give this "
                           "worker another port")


def _port(address: str) -> int | None:
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        return None
    return int(port)
