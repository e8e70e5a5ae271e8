"""Which NVIDIA GPUs there are, and which of them a case's CUDA devices are, as NVML sees them.

NVML numbers GPUs in its own order; CUDA (and so TensorFlow and JAX) numbers only the GPUs left by
``CUDA_VISIBLE_DEVICES``, in the order set by ``CUDA_DEVICE_ORDER``. The two agree only by accident, so
devices are matched by UUID or PCI bus id and never by assuming NVML index == CUDA ordinal. Where CUDA's
order cannot be known from NVML (different GPU models under the default FASTEST_FIRST), the reference
says so (``ambiguous``) instead of guessing quietly.

``pynvml`` (nvidia-ml-py) is imported lazily and can be injected, so a CPU-only host and the tests never
need the real library.
"""

from __future__ import annotations

import importlib
import os
import re
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Any

from bench.errors import UserError

MIB = 1024 * 1024


class NvmlUnavailable(Exception):
    """NVML cannot be used here (no library, no driver, no GPU); ``str(exc)`` is the one-line reason."""


class GpuMappingError(UserError):
    """CUDA device ids that name no GPU, e.g. ``CUDA_VISIBLE_DEVICES`` empty or pointing at nothing."""


@dataclass(frozen=True)
class GpuRef:
    """One GPU (or MIG instance) a case runs on, as NVML knows it."""

    nvml_index: int  # of the physical GPU (the parent, for a MIG instance)
    uuid: str  # "GPU-…" or "MIG-…": what the monitor opens the device by
    name: str
    pci_bus_id: str  # as NVML writes it, e.g. "00000000:3B:00.0"
    cuda_ordinal: int | None  # the framework's device number; None if the GPU is not visible to CUDA
    # How the CUDA device was matched to NVML: "uuid", "pci_bus_id", "pci_order" (CUDA_DEVICE_ORDER=PCI_BUS_ID),
    # "identical_gpus" (FASTEST_FIRST among identical GPUs breaks ties by PCI bus id) or
    # "fastest_first_guess" (different models: compute capability, then bus id; CUDA does not promise it).
    matched_by: str = "pci_order"
    ambiguous: bool = False  # True when the CUDA ordinal -> GPU mapping is a guess

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# --------------------------------------------------------------------------- loading NVML


def load_nvml(nvml: Any = None) -> Any:
    """The injected module, else ``pynvml``; raises :class:`NvmlUnavailable` when it cannot be imported."""
    if nvml is not None:
        return nvml
    try:
        return importlib.import_module("pynvml")
    except ImportError as exc:
        raise NvmlUnavailable(f"pynvml is not importable ({exc}); install nvidia-ml-py") from None


def is_nvml_error(nvml: Any, exc: BaseException, name: str) -> bool:
    """``isinstance(exc, nvml.NVMLError_<name>)``, false where the module lacks that class."""
    cls = getattr(nvml, f"NVMLError_{name}", None)
    return isinstance(cls, type) and isinstance(exc, cls)


def nvml_error_type(nvml: Any) -> type[BaseException]:
    cls = getattr(nvml, "NVMLError", None)
    return cls if isinstance(cls, type) and issubclass(cls, BaseException) else _NoSuchError


class _NoSuchError(Exception):
    """Stands in for ``NVMLError`` in a module without one, so ``except`` clauses stay valid."""


_INIT_REASONS = {
    "LibraryNotFound": "NVML library (libnvidia-ml.so.1) not found: no NVIDIA driver on this host",
    "DriverNotLoaded": "NVIDIA driver is not loaded (nvmlInit: Driver Not Loaded)",
    "NoPermission": "no permission to open the NVIDIA devices (nvmlInit: Insufficient Permissions)",
    "LibRmVersionMismatch": "NVML library and kernel driver versions differ; reload the driver or reboot",
}


def init_failure_reason(nvml: Any, exc: BaseException) -> str:
    for name, reason in _INIT_REASONS.items():
        if is_nvml_error(nvml, exc, name):
            return reason
    return f"nvmlInit failed: {type(exc).__name__}: {exc}"


@contextmanager
def nvml_session(nvml: Any = None) -> Iterator[Any]:
    """``nvmlInit`` ... ``nvmlShutdown``, balanced; yields the module. Raises :class:`NvmlUnavailable`."""
    module = load_nvml(nvml)
    try:
        module.nvmlInit()
    except Exception as exc:  # OSError from ctypes, NVMLError_*: all mean "no NVML here"
        raise NvmlUnavailable(init_failure_reason(module, exc)) from None
    try:
        yield module
    finally:
        try:
            module.nvmlShutdown()
        except Exception:  # noqa: S110 - nothing useful to do: the results do not depend on it
            pass


def text(value: Any) -> str:
    """pynvml returns ``str`` on Python 3, but ctypes struct fields (``busId``) stay ``bytes``."""
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


_BUS_ID = re.compile(r"(?:([0-9a-f]{1,8}):)?([0-9a-f]{1,2}):([0-9a-f]{1,2})(?:\.([0-7]))?")


def bus_key(bus_id: str) -> tuple[int, int, int, int] | None:
    """``00000000:3B:00.0`` (NVML), ``0000:3b:00.0`` (CUDA, JAX) and ``3b:00.0`` compare equal."""
    match = _BUS_ID.fullmatch(bus_id.strip().lower())
    if not match:
        return None
    domain, bus, device, function = match.groups()
    return int(domain or "0", 16), int(bus, 16), int(device, 16), int(function or "0", 16)


# --------------------------------------------------------------------------- enumeration


@dataclass(frozen=True)
class _Device:
    index: int
    handle: Any
    uuid: str
    name: str
    pci_bus_id: str

    @property
    def order_key(self) -> tuple[Any, ...]:
        key = bus_key(self.pci_bus_id)
        return (key is None, key or (), self.index)


def _devices(nvml: Any) -> list[_Device]:
    found = []
    for index in range(nvml.nvmlDeviceGetCount()):
        handle = nvml.nvmlDeviceGetHandleByIndex(index)
        found.append(
            _Device(
                index=index,
                handle=handle,
                uuid=text(nvml.nvmlDeviceGetUUID(handle)),
                name=text(nvml.nvmlDeviceGetName(handle)),
                pci_bus_id=text(nvml.nvmlDeviceGetPciInfo(handle).busId),
            )
        )
    return found


def _enumerate(nvml: Any) -> list[_Device]:
    try:
        devices = _devices(nvml)
    except nvml_error_type(nvml) as exc:
        raise NvmlUnavailable(f"cannot list GPUs through NVML: {exc}") from None
    if not devices:
        raise NvmlUnavailable("NVML is loaded but reports no GPU")
    return devices


# --------------------------------------------------------------------------- CUDA ordinal -> NVML device


def resolve_gpus(
    cuda_ordinals: Sequence[int | str], *, nvml: Any = None, env: Mapping[str, str] = os.environ
) -> list[GpuRef]:
    """Map the framework's CUDA device ordinals (or explicit ``GPU-``/``MIG-`` UUIDs or PCI bus ids) to NVML.

    Raises :class:`NvmlUnavailable` without NVML or GPUs and :class:`GpuMappingError` for ids naming no GPU.
    """
    with nvml_session(nvml) as module:
        return resolve_in_session(module, cuda_ordinals, env)


def resolve_in_session(nvml: Any, cuda_ordinals: Sequence[int | str], env: Mapping[str, str]) -> list[GpuRef]:
    """:func:`resolve_gpus` for a caller that already holds ``nvmlInit``."""
    devices = _enumerate(nvml)
    visible, description = _cuda_visible(nvml, devices, env)
    refs = []
    for item in cuda_ordinals:
        if isinstance(item, bool) or not isinstance(item, (int, str)):
            raise TypeError(f"a GPU is named by a CUDA ordinal (int), a UUID or a PCI bus id (str), not {item!r}")
        if isinstance(item, int):
            if not 0 <= item < len(visible):
                if not visible:
                    raise GpuMappingError(
                        f"no GPU is visible to CUDA: {description}; unset CUDA_VISIBLE_DEVICES or list GPU "
                        "indices or UUIDs from `nvidia-smi -L`"
                    )
                raise GpuMappingError(
                    f"CUDA device {item} does not exist: {description} leaves {len(visible)} GPU(s) visible to CUDA"
                )
            refs.append(visible[item])
        else:
            refs.append(_by_explicit_id(nvml, item, devices, visible))
    return refs


def _cuda_order(nvml: Any, devices: list[_Device], env: Mapping[str, str]) -> tuple[list[_Device], str, bool]:
    """The order CUDA numbers all GPUs in, before CUDA_VISIBLE_DEVICES; returns (order, matched_by, ambiguous)."""
    by_bus = sorted(devices, key=lambda d: d.order_key)
    if env.get("CUDA_DEVICE_ORDER", "").strip().upper() == "PCI_BUS_ID":
        return by_bus, "pci_order", False
    if len({d.name for d in devices}) == 1:
        # FASTEST_FIRST (CUDA's default) ranks by speed and breaks ties by PCI bus id: same model, bus order.
        return by_bus, "identical_gpus", False

    # Different models: CUDA only says it "guesses" the fastest first. Highest compute capability first
    # is what it does in practice, but that is not promised, so every ordinal is marked ambiguous.
    def capability(device: _Device) -> tuple[int, int]:
        try:
            major, minor = nvml.nvmlDeviceGetCudaComputeCapability(device.handle)
            return int(major), int(minor)
        except Exception:
            return (0, 0)

    fastest = sorted(by_bus, key=lambda d: tuple(-part for part in capability(d)))
    return fastest, "fastest_first_guess", True


def _cuda_visible(nvml: Any, devices: list[_Device], env: Mapping[str, str]) -> tuple[list[GpuRef], str]:
    """The GPUs CUDA numbers 0..N-1, after CUDA_VISIBLE_DEVICES, and a description for error messages."""
    order, matched_by, ambiguous = _cuda_order(nvml, devices, env)
    raw = env.get("CUDA_VISIBLE_DEVICES")
    if raw is None:
        return [_ref(d, ordinal, matched_by, ambiguous) for ordinal, d in enumerate(order)], "all GPUs"
    if not raw.strip():
        return [], "CUDA_VISIBLE_DEVICES is set but empty, which hides every GPU"
    visible: list[GpuRef] = []
    description = f"CUDA_VISIBLE_DEVICES={raw!r}"
    for token in (t.strip() for t in raw.split(",")):
        device, by = _visible_entry(nvml, token, order, devices, matched_by)
        if device is not None and device.uuid not in {ref.uuid for ref in visible}:
            # An index inherits the doubt of CUDA's base order; a UUID names its GPU exactly.
            visible.append(_ref(device, len(visible), by, ambiguous and by == matched_by))
            continue
        # CUDA stops at the first entry it cannot use and hides everything after it.
        what = "repeats a GPU" if device is not None else "names no GPU"
        description += f" (entry {token!r} {what}; CUDA ignores it and every entry after it)"
        break
    return visible, description


def _visible_entry(
    nvml: Any, token: str, order: list[_Device], devices: list[_Device], order_label: str
) -> tuple[_Device | None, str]:
    if re.fullmatch(r"[+-]?\d+", token):
        index = int(token)  # an index into CUDA's own order (CUDA_DEVICE_ORDER), not NVML's
        return (order[index] if 0 <= index < len(order) else None), order_label
    if token.upper().startswith("MIG-"):
        return _mig_device(nvml, token, devices), "uuid"
    if token.upper().startswith("GPU-"):
        return _by_uuid_prefix(devices, token), "uuid"
    return None, ""


def _by_uuid_prefix(devices: list[_Device], prefix: str) -> _Device | None:
    """CUDA accepts any prefix of a UUID that names exactly one GPU."""
    matches = [d for d in devices if d.uuid.lower().startswith(prefix.lower())]
    return matches[0] if len(matches) == 1 else None


def _mig_device(nvml: Any, token: str, devices: list[_Device]) -> _Device | None:
    """``MIG-<uuid>`` (R470+) or ``MIG-<GPU uuid>/<GPU instance>/<compute instance>`` -> the MIG instance."""
    try:
        old_form = re.fullmatch(r"MIG-(GPU-[0-9a-fA-F-]+)/(\d+)/(\d+)", token)
        if old_form:
            parent = _by_uuid_prefix(devices, old_form.group(1))
            if parent is None:
                return None
            wanted = (int(old_form.group(2)), int(old_form.group(3)))
            for slot in range(nvml.nvmlDeviceGetMaxMigDeviceCount(parent.handle)):
                try:
                    handle = nvml.nvmlDeviceGetMigDeviceHandleByIndex(parent.handle, slot)
                except nvml_error_type(nvml):
                    continue  # empty slot
                ids = (nvml.nvmlDeviceGetGpuInstanceId(handle), nvml.nvmlDeviceGetComputeInstanceId(handle))
                if ids == wanted:
                    return _mig_record(nvml, handle, parent)
            return None
        handle = nvml.nvmlDeviceGetHandleByUUID(token)
        parent_uuid = text(nvml.nvmlDeviceGetUUID(nvml.nvmlDeviceGetDeviceHandleFromMigDeviceHandle(handle)))
        parent = next((d for d in devices if d.uuid == parent_uuid), None)
        return _mig_record(nvml, handle, parent) if parent is not None else None
    except nvml_error_type(nvml):
        return None


def _mig_record(nvml: Any, handle: Any, parent: _Device) -> _Device:
    return _Device(
        index=parent.index,
        handle=handle,
        uuid=text(nvml.nvmlDeviceGetUUID(handle)),
        name=text(nvml.nvmlDeviceGetName(handle)),
        pci_bus_id=parent.pci_bus_id,
    )


def _by_explicit_id(nvml: Any, item: str, devices: list[_Device], visible: list[GpuRef]) -> GpuRef:
    token = item.strip()
    if token.upper().startswith("MIG-"):
        device, by = _mig_device(nvml, token, devices), "uuid"
    elif token.upper().startswith("GPU-"):
        device, by = _by_uuid_prefix(devices, token), "uuid"
    elif (key := bus_key(token)) is not None:
        device = next((d for d in devices if bus_key(d.pci_bus_id) == key), None)
        by = "pci_bus_id"
    else:
        raise GpuMappingError(
            f"{item!r} is not a CUDA ordinal, a GPU UUID (GPU-…, MIG-…) or a PCI bus id (0000:3b:00.0)"
        )
    if device is None:
        raise GpuMappingError(f"no GPU matches {item!r} (see `nvidia-smi -L` and `nvidia-smi -q | grep Bus`)")
    ordinal = next((ref.cuda_ordinal for ref in visible if ref.uuid == device.uuid), None)
    return _ref(device, ordinal, by, False)


def _ref(device: _Device, ordinal: int | None, matched_by: str, ambiguous: bool) -> GpuRef:
    return GpuRef(
        nvml_index=device.index,
        uuid=device.uuid,
        name=device.name,
        pci_bus_id=device.pci_bus_id,
        cuda_ordinal=ordinal,
        matched_by=matched_by,
        ambiguous=ambiguous,
    )


# --------------------------------------------------------------------------- environment fingerprint


def gpu_inventory(nvml: Any = None) -> dict[str, Any]:
    """GPUs, driver and CUDA driver version for ``environment``; empty ``gpus`` and a reason without NVML."""
    result: dict[str, Any] = {"gpus": [], "driver_version": None, "cuda_driver_version": None}
    try:
        with nvml_session(nvml) as module:
            result["driver_version"] = _optional(module, lambda: text(module.nvmlSystemGetDriverVersion()))
            result["cuda_driver_version"] = _optional(
                module, lambda: _cuda_version(module.nvmlSystemGetCudaDriverVersion())
            )
            devices = _enumerate(module)
            result["gpus"] = [
                {
                    "index": d.index,
                    "name": d.name,
                    "uuid": d.uuid,
                    "pci_bus_id": d.pci_bus_id,
                    "memory_total_mib": _optional(
                        module, lambda d=d: int(module.nvmlDeviceGetMemoryInfo(d.handle).total) // MIB
                    ),
                }
                for d in devices
            ]
    except NvmlUnavailable as exc:
        return {**result, "nvml": str(exc)}
    return {**result, "nvml": "ok"}


def _optional(nvml: Any, read: Any) -> Any:
    """One inventory field: None where this driver or GPU cannot give it."""
    try:
        return read()
    except nvml_error_type(nvml):
        return None


def _cuda_version(value: int) -> str:
    """NVML encodes CUDA 12.4 as 12040."""
    return f"{value // 1000}.{value % 1000 // 10}"
