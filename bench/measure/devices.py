"""Devices and distribution strategies, per backend, inside a worker process.

A worker serves one device layout. Logical devices (and, for JAX, the host device count) must be fixed
before the framework initialises, which is why the parent starts one process per layout and calls
:func:`configure` first thing in that process.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from bench.config import DeviceSettings
from bench.measure.records import CaseSkipped


@dataclass
class DeviceInventory:
    """What the worker's framework sees after configuration."""

    backend: str
    kind: str  # "gpu" or "cpu": the kind of device replicas run on
    physical_gpus: int
    logical: list[str] = field(default_factory=list)  # device names usable as replicas
    simulated: bool = False
    note: str = ""


@dataclass
class Placement:
    """How one case is spread over devices."""

    strategy_name: str
    devices: list[str]
    replicas: int
    kind: str
    simulated: bool
    scope: Any  # context manager to build and compile under
    cuda_ordinals: list[int]  # for NVML: which CUDA devices the case uses

    def describe(self) -> dict[str, Any]:
        return {
            "strategy": self.strategy_name,
            "devices": self.devices,
            "replicas": self.replicas,
            "kind": self.kind,
            "simulated": self.simulated,
        }


def configure(backend: str, replicas: int, simulate: bool,
              logical_gpu_memory_mib: int = DeviceSettings().logical_gpu_memory_mib) -> DeviceInventory:
    """Fix the device layout for this process; call before anything else touches the framework.

    ``logical_gpu_memory_mib`` is ``[devices] logical_gpu_memory_mib``: TensorFlow's logical GPUs need a limit.
    """
    if backend == "tensorflow":
        return _configure_tf(replicas, simulate, logical_gpu_memory_mib)
    if backend == "jax":
        return _configure_jax(replicas, simulate)
    if backend == "torch":
        return _configure_torch(simulate)
    raise ValueError(f"unknown backend {backend!r}")


def require_devices(inventory: DeviceInventory, gpus: int) -> list[str]:
    """The first ``gpus`` usable devices, or :class:`CaseSkipped` saying how many there are and what to do."""
    if gpus > len(inventory.logical):
        hint = "" if inventory.simulated else "; set [devices] simulate = true to carve logical devices"
        raise CaseSkipped(
            f"asks for {gpus} GPU(s) but {inventory.physical_gpus} visible"
            f"{' (' + inventory.note + ')' if inventory.note else ''}{hint}"
        )
    return inventory.logical[:gpus]


def place(inventory: DeviceInventory, gpus: int) -> Placement:
    """The strategy for a case asking for ``gpus`` replicas, or :class:`CaseSkipped` with the reason."""
    if inventory.backend == "torch" and gpus > 1:
        raise CaseSkipped("Keras 3 has no multi-device data parallelism for the torch backend "
                          "(keras.distribution supports JAX only)")
    devices = require_devices(inventory, gpus)
    simulated = inventory.simulated
    ordinals = [] if inventory.kind == "cpu" else ([0] * gpus if simulated else list(range(gpus)))
    if inventory.backend == "tensorflow":
        import tensorflow as tf

        strategy = tf.distribute.MirroredStrategy(devices)
        return Placement("MirroredStrategy", devices, strategy.num_replicas_in_sync, inventory.kind, simulated,
                         strategy.scope(), ordinals)
    if inventory.backend == "jax":
        import jax
        import keras

        if gpus == 1:
            # One device: no distribution, exactly what a single-GPU JAX user runs.
            return Placement("none (single device)", devices, 1, inventory.kind, simulated,
                             contextlib.nullcontext(), ordinals)
        wanted = [d for d in jax.devices() if str(d) in devices]
        distribution = keras.distribution.DataParallel(devices=wanted)
        return Placement("keras.distribution.DataParallel", devices, gpus, inventory.kind, simulated,
                         distribution_scope(distribution), ordinals)
    return Placement("none (single device)", devices, 1, inventory.kind, simulated,
                     contextlib.nullcontext(), ordinals)


@contextlib.contextmanager
def distribution_scope(distribution: Any) -> Iterator[None]:
    """Keras' global distribution set to ``distribution`` for the block, restored after it (thread-local on JAX)."""
    import keras

    previous = keras.distribution.distribution()
    keras.distribution.set_distribution(distribution)
    try:
        yield
    finally:
        keras.distribution.set_distribution(previous)


def _configure_tf(replicas: int, simulate: bool, logical_gpu_memory_mib: int) -> DeviceInventory:
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    for gpu in gpus:
        # Grow memory on demand so one case's allocator does not starve the next.
        with contextlib.suppress(RuntimeError, ValueError):
            tf.config.experimental.set_memory_growth(gpu, True)
    if gpus:
        if simulate and replicas > len(gpus):
            # Carve logical GPUs out of GPU 0; memory limits are mandatory for logical GPUs.
            tf.config.set_logical_device_configuration(
                gpus[0], [tf.config.LogicalDeviceConfiguration(memory_limit=logical_gpu_memory_mib)] * replicas
            )
            names = [f"/gpu:{i}" for i in range(replicas)]
            return DeviceInventory("tensorflow", "gpu", len(gpus), names, True,
                                   f"{replicas} logical GPUs carved from GPU 0")
        return DeviceInventory("tensorflow", "gpu", len(gpus), [f"/gpu:{i}" for i in range(len(gpus))])
    if not simulate:
        return DeviceInventory("tensorflow", "cpu", 0, [], False, "no GPU visible to TensorFlow")
    cpus = tf.config.list_physical_devices("CPU")
    tf.config.set_logical_device_configuration(cpus[0], [tf.config.LogicalDeviceConfiguration()] * replicas)
    return DeviceInventory("tensorflow", "cpu", 0, [f"/cpu:{i}" for i in range(replicas)], True,
                           f"no GPU visible: {replicas} logical CPU device(s) stand in")


def _configure_jax(replicas: int, simulate: bool) -> DeviceInventory:
    # XLA_FLAGS (--xla_force_host_platform_device_count) is set by the parent before this process started.
    import jax

    gpus = [d for d in jax.devices() if d.platform == "gpu"]
    if gpus:
        return DeviceInventory("jax", "gpu", len(gpus), [str(d) for d in gpus])
    cpus = jax.devices("cpu")
    if not simulate:
        return DeviceInventory("jax", "cpu", 0, [], False, "no GPU visible to JAX")
    return DeviceInventory("jax", "cpu", 0, [str(d) for d in cpus[:replicas]], True,
                           f"no GPU visible: {min(replicas, len(cpus))} host device(s) stand in")


def _configure_torch(simulate: bool) -> DeviceInventory:
    import torch

    n = torch.cuda.device_count()
    if n:
        return DeviceInventory("torch", "gpu", n, [f"cuda:{i}" for i in range(n)])
    if not simulate:
        return DeviceInventory("torch", "cpu", 0, [], False, "no GPU visible to torch")
    return DeviceInventory("torch", "cpu", 0, ["cpu"], True, "no GPU visible: the CPU stands in")
