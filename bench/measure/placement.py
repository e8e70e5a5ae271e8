"""Where did TensorFlow run the maths? Read from TensorFlow's own device-placement log.

``tf.debugging.set_log_device_placement(True)`` makes TensorFlow's placer write one line per node when a
function is instantiated, e.g. ``... placer.cc:162] mnist_mlp/dense/MatMul: (MatMul): /job:.../device:CPU:1``
(https://www.tensorflow.org/api_docs/python/tf/debugging/set_log_device_placement: "also logs the placement
of ops inside tf.function when the function is called"). The lines are written by the C++ runtime to file
descriptor 2 (only with ``TF_CPP_MIN_LOG_LEVEL=0``), so :func:`capture_fd` swaps fd 2 itself with
``os.dup2``; replacing ``sys.stderr`` would see nothing.

Why MatMul lines and not the function line: ``Executing op __inference_one_step_on_data_distributed_N in
device .../CPU:0`` only says where the *outer* function was dispatched. A model built under a
``tf.distribute`` strategy on the training device shows exactly that line for CPU:0 while its MatMuls run
on the training device (verified on TF 2.21 with a logical CPU:1 standing in for the GPU). An
XLA-compiled predict (``jit_compile=True``) has no per-op lines at all: its MatMuls live inside the
compiled cluster, whose call node (``StatefulPartitionedCall`` inside the predict function) is placed on
the device XLA compiles for; that node is the evidence then, and it is labelled ``xla_cluster``.

JAX and torch have no placement log; there the evidence is the device of the predict step's own
outputs, read before Keras turns them into numpy (:func:`output_evidence`). On JAX a jitted function runs
where its committed inputs live, or else on the default device that ``keras.device`` sets
(``jax.default_device``: "the default device for JAX operations and jit'd function calls",
https://docs.jax.dev/en/latest/_autosummary/jax.default_device.html), and its outputs are left on the
device it ran on, so ``jax.Array.devices()`` of the outputs names the device XLA executed on
(https://docs.jax.dev/en/latest/_autosummary/jax.Array.committed.html). A torch op writes its result on
the device of its operands (``torch.Tensor.device``), and mixing devices raises. Device names of the
three frameworks are compared in one spelling (:func:`short_device`): ``CPU:0``, ``GPU:1``.

Pure standard library, so the parser is unit-tested on captured sample lines without TensorFlow.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

# "<node>: (<op type>): <device>", with or without the absl prefix ("I0000 ... placer.cc:162] ").
_PLACER_LINE = re.compile(r"^(?:.*?placer\.cc:\d+\]\s+)?(?P<node>\S+): \((?P<op>\w+)\): (?P<device>/\S+)\s*$")
_EXECUTED_FUNCTION = re.compile(r"Executing op (?P<fn>__inference_\S+) in device (?P<device>/\S+)")
_DEVICE = re.compile(r"device:(?P<kind>[A-Za-z_]+):(?P<index>\d+)", re.IGNORECASE)
# JAX ("cpu:1", "cuda:0", "TFRT_CPU_1", "CpuDevice(id=1)") and torch ("cpu", "cuda:0") spellings.
_SHORT_DEVICE = re.compile(r"^(?P<kind>cpu|gpu|cuda|rocm|tpu)(?::(?P<index>\d+))?$", re.IGNORECASE)
_TFRT_DEVICE = re.compile(r"^TFRT_(?P<kind>[A-Za-z]+)_(?P<index>\d+)$", re.IGNORECASE)
_REPR_DEVICE = re.compile(r"^(?P<kind>cpu|gpu|cuda|rocm|tpu)Device\(id=(?P<index>\d+)", re.IGNORECASE)
_GPU_KINDS = {"CUDA": "GPU", "ROCM": "GPU"}
NO_PLACER_LINES = ("no MatMul or XLA-cluster placer lines were captured "
                   "(placement logging needs TF_CPP_MIN_LOG_LEVEL=0 before TensorFlow starts)")
OUTPUT_SOURCES = {"output_arrays": "jax.Array.devices()", "output_tensors": "torch.Tensor.device"}
# Node types that run an XLA-compiled function body (the whole cluster runs on that node's device).
_CLUSTER_OPS = frozenset({"StatefulPartitionedCall", "PartitionedCall", "XlaLaunch", "_XlaRun", "_XlaCompile"})


@dataclass(frozen=True)
class PlacedOp:
    node: str
    op: str
    device: str


@dataclass(frozen=True)
class Evidence:
    """Where the compute of one captured call ran, and which log lines prove it."""

    source: str | None  # "MatMul", "xla_cluster", "output_arrays" (JAX), "output_tensors" (torch) or None
    devices: tuple[str, ...]  # full device names, sorted
    proof: tuple[str, ...]  # a few of the placer lines (or per-batch output devices) the devices came from
    function_devices: tuple[str, ...]  # where the outer function was dispatched (for contrast only)
    missing: str = NO_PLACER_LINES  # why there is no evidence, when source is None

    def on(self, device: str) -> bool:
        """True only if there is evidence and every compute node ran on ``device``."""
        return bool(self.devices) and all(same_device(d, device) for d in self.devices)


def parse_placer_lines(text: str) -> list[PlacedOp]:
    """Every placer line in ``text`` (other log lines are ignored)."""
    ops = []
    for line in text.splitlines():
        match = _PLACER_LINE.match(line.strip())
        if match:
            ops.append(PlacedOp(match["node"], match["op"], match["device"]))
    return ops


def compute_evidence(text: str, max_proof: int = 3) -> Evidence:
    """MatMul placements if any were logged, else the XLA cluster call nodes, else nothing."""
    ops = parse_placer_lines(text)
    source = "MatMul"
    chosen = [op for op in ops if "MatMul" in op.op]
    if not chosen:
        source = "xla_cluster"
        chosen = [op for op in ops if op.op in _CLUSTER_OPS]
    functions = tuple(sorted({m["device"] for m in _EXECUTED_FUNCTION.finditer(text)}))
    if not chosen:
        return Evidence(None, (), (), functions)
    proof = tuple(f"{op.node}: ({op.op}): {op.device}" for op in chosen[:max_proof])
    return Evidence(source, tuple(sorted({op.device for op in chosen})), proof, functions)


def output_devices(outputs: Any) -> tuple[str, ...]:
    """Device names of every array in a (nested) predict-step output, duck-typed.

    ``jax.Array.devices()`` (the set of devices holding the array) or ``torch.Tensor.device``. numpy
    arrays are skipped: numpy 2 reports ``device == "cpu"`` for them, which would be a false proof.
    """
    found: set[str] = set()
    stack = [outputs]
    while stack:
        item = stack.pop()
        if isinstance(item, Mapping):
            stack.extend(item.values())
        elif isinstance(item, (list, tuple)):
            stack.extend(item)
        elif type(item).__module__.split(".")[0] == "numpy":
            continue
        elif callable(getattr(item, "devices", None)):
            found.update(str(d) for d in item.devices())
        elif getattr(item, "device", None) is not None:
            found.add(str(item.device))
    return tuple(sorted(found))


def output_evidence(source: str, batch_devices: list[tuple[str, ...]], max_proof: int = 3) -> Evidence:
    """Evidence from the devices of each predict batch's outputs (JAX arrays or torch tensors)."""
    how = OUTPUT_SOURCES[source]
    devices = tuple(sorted({d for batch in batch_devices for d in batch}))
    if not devices:
        return Evidence(None, (), (), (), missing=f"the predict step returned no outputs to read {how} from")
    proof = tuple(f"batch {i} outputs: {', '.join(batch)} ({how})" for i, batch in enumerate(batch_devices[:max_proof]))
    return Evidence(source, devices, proof, ())


def short_device(name: str) -> str:
    """One spelling for every framework's device names; unknown forms are returned as given.

    ``/job:localhost/replica:0/task:0/device:CPU:1`` and JAX's ``cpu:1`` -> ``CPU:1``; torch's ``cpu``
    (CPU tensors carry no index) -> ``CPU:0``; ``cuda:0`` / ``gpu:0`` -> ``GPU:0``.
    """
    text = str(name).strip()
    match = _DEVICE.search(text) or _SHORT_DEVICE.match(text) or _TFRT_DEVICE.match(text) or _REPR_DEVICE.match(text)
    if not match:
        return text
    kind = match["kind"].upper()
    return f"{_GPU_KINDS.get(kind, kind)}:{match['index'] or 0}"


def same_device(a: str, b: str) -> bool:
    return short_device(a) == short_device(b)


@contextlib.contextmanager
def capture_fd(fd: int = 2) -> Iterator[list[str]]:
    """Redirect file descriptor ``fd`` into a temporary file; the yielded list gets its text on exit.

    The C++ runtime writes to the descriptor, not to Python's ``sys.stderr``; pytest's own fd capture
    sits underneath and is restored untouched afterwards.
    """
    out: list[str] = []
    sys.stderr.flush()
    saved = os.dup(fd)
    with tempfile.TemporaryFile(mode="w+b") as tmp:
        os.dup2(tmp.fileno(), fd)
        try:
            yield out
        finally:
            sys.stderr.flush()
            os.dup2(saved, fd)
            os.close(saved)
            tmp.seek(0)
            out.append(tmp.read().decode("utf-8", errors="replace"))
