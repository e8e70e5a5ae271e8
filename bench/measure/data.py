"""MNIST as the reference uses it: 784 floats in [0, 1], integer labels, 60 000 train / 10 000 test.

Resolution order for ``source = "auto"``: an explicit ``.npz`` path, Keras' cache
(``~/.keras/datasets/mnist.npz``), a bounded download into that cache, and — offline — a deterministic,
learnable synthetic set of the same shape. Which one was used travels with every result, because a
throughput number on synthetic data is still a throughput number but an accuracy number is not.

A file is MNIST (``source = "mnist"``) when its bytes are Keras' download, or when its four arrays are
the canonical MNIST arrays whatever the file's bytes (a copy re-saved by another tool, a CI cache): the
zip metadata of an ``.npz`` differs between writers while the arrays do not. Any other valid file is
``npz``.

Only numpy and the standard library here: the parent process resolves the source once (so a download
happens once, with a timeout) and worker processes load the arrays from the resolved spec.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import urllib.error
import urllib.request
import zipfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bench.config import DataSettings
from bench.errors import UserError

MNIST_URL = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/mnist.npz"
# keras.datasets.mnist.load_data() checks the same hash.
MNIST_SHA256 = "731c5ac602752760c8e48fbffcf8c3b850d9dc2a2aedcf2cc48468fc17b673d1"
# sha256 of each canonical MNIST array's raw bytes (``np.ascontiguousarray(a).tobytes()``), Keras' layout:
# uint8 pixels (N, 28, 28), uint8 labels (N,). Identical for every faithful copy of the data set.
MNIST_ARRAY_SHA256 = {
    "y_test": "ddeff807876a9661a1110d45c266c86239a3a1b7d37da0c3716a7a683c852ff5",
    "y_train": "1feba77c54802fa5339a11837ea4b2866434b83314ec45192930f1df69120c13",
    "x_test": "6d87418db22cc8025d05968bec9bd5c3932904b23485740db143a061a2c9d161",
    "x_train": "741c988805d008ac6e4c904b69001ba184c24b2c540a4ef403f4c71b676cf757",
}
MNIST_ARRAY_SHAPES = {"x_train": (60_000, 28, 28), "y_train": (60_000,), "x_test": (10_000, 28, 28),
                      "y_test": (10_000,)}
TRAIN_SAMPLES, TEST_SAMPLES, FEATURES, CLASSES = 60_000, 10_000, 784, 10
_KEYS = ("x_train", "y_train", "x_test", "y_test")


class DataError(UserError):
    """A data file that cannot be used."""


@dataclass(frozen=True)
class DataSpec:
    """Where the arrays come from; small enough to send to worker processes."""

    source: str  # "mnist" | "npz" | "synthetic"
    path: str | None
    sha256: str | None
    note: str
    seed: int
    # How a file was recognised as MNIST: "keras_file_sha256" (Keras' own download) or "array_sha256"
    # (the canonical arrays in another file); None for npz and synthetic data.
    identified_by: str | None = None

    @property
    def synthetic(self) -> bool:
        return self.source == "synthetic"

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.update(synthetic=self.synthetic, train_samples=TRAIN_SAMPLES, test_samples=TEST_SAMPLES)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DataSpec:
        return cls(d["source"], d.get("path"), d.get("sha256"), d.get("note", ""), d.get("seed", 0),
                   d.get("identified_by"))


@dataclass(frozen=True)
class Mnist:
    x_train: np.ndarray  # float32 (60000, 784) in [0, 1]
    y_train: np.ndarray  # int32 (60000,)
    x_test: np.ndarray
    y_test: np.ndarray
    spec: DataSpec


def keras_cache_path() -> Path:
    base = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    return Path(base) / "datasets" / "mnist.npz"


def resolve(settings: DataSettings, seed: int) -> DataSpec:
    """Decide the data source once, downloading (bounded by a timeout) if allowed and needed."""
    if settings.source == "synthetic":
        return DataSpec("synthetic", None, None, "synthetic data requested by the config", seed)
    if settings.path:
        path = Path(settings.path).expanduser()
        arrays = validate_npz(path)
        digest = _sha256(path)
        if digest == MNIST_SHA256:
            return DataSpec("mnist", str(path), digest, f"MNIST from {path}", seed, "keras_file_sha256")
        if is_canonical_mnist(arrays):
            return DataSpec("mnist", str(path), digest, f"MNIST from {path} (canonical MNIST arrays)", seed,
                            "array_sha256")
        if settings.source == "mnist":
            raise DataError(f"{path} is not MNIST: its arrays differ from the canonical MNIST arrays; "
                            "use [data] source = 'npz' to train on it anyway")
        return DataSpec("npz", str(path), digest, f"MNIST-shaped data from {path}", seed)
    cache = keras_cache_path()
    if cache.is_file():
        digest = _sha256(cache)
        if digest == MNIST_SHA256:
            return DataSpec("mnist", str(cache), digest, "MNIST from the Keras cache", seed, "keras_file_sha256")
        if _file_is_canonical_mnist(cache):
            return DataSpec("mnist", str(cache), digest,
                            "MNIST from the Keras cache (canonical MNIST arrays; the file is not Keras' download)",
                            seed, "array_sha256")
    try:
        _download(cache, settings.download_timeout_s)
    except (OSError, urllib.error.URLError, ValueError) as exc:
        reason = f"MNIST download failed ({_one_line(exc)})"
        if settings.source == "mnist":
            raise DataError(f"{reason}; set [data] path to a local mnist.npz or use source = 'synthetic'") from None
        return DataSpec("synthetic", None, None, f"{reason}: using deterministic synthetic MNIST-shaped data", seed)
    return DataSpec("mnist", str(cache), MNIST_SHA256, "MNIST downloaded into the Keras cache", seed,
                    "keras_file_sha256")


def load(spec: DataSpec) -> Mnist:
    """The arrays for a resolved spec, flattened and scaled as the reference does."""
    if spec.synthetic:
        return _synthetic(spec)
    arrays = validate_npz(Path(spec.path))
    return Mnist(
        x_train=_scale(arrays["x_train"]),
        y_train=arrays["y_train"].astype(np.int32),
        x_test=_scale(arrays["x_test"]),
        y_test=arrays["y_test"].astype(np.int32),
        spec=spec,
    )


def validate_npz(path: Path) -> dict[str, np.ndarray]:
    """Check an MNIST ``.npz`` thoroughly; every problem is one line naming the file and the fix."""
    if not path.exists():
        raise DataError(f"data file not found: {path}")
    if path.suffix != ".npz":
        raise DataError(f"data file {path} is not an .npz; give an mnist.npz with x_train, y_train, x_test, y_test")
    try:
        with np.load(path, allow_pickle=False) as npz:
            missing = [k for k in _KEYS if k not in npz.files]
            if missing:
                raise DataError(f"{path}: missing arrays {', '.join(missing)}; expected {', '.join(_KEYS)}")
            arrays = {k: npz[k] for k in _KEYS}
    except DataError:
        raise
    except (zipfile.BadZipFile, ValueError, EOFError, OSError) as exc:
        raise DataError(f"{path}: unreadable or truncated .npz ({_one_line(exc)}); re-download it") from None
    for split in ("train", "test"):
        x, y = arrays[f"x_{split}"], arrays[f"y_{split}"]
        if x.ndim not in (2, 3) or int(np.prod(x.shape[1:])) != FEATURES:
            raise DataError(f"{path}: x_{split} has shape {x.shape}; expected (N, 28, 28) or (N, 784)")
        if y.shape != (x.shape[0],):
            raise DataError(f"{path}: y_{split} has shape {y.shape}; expected ({x.shape[0]},) to match x_{split}")
        if not (np.issubdtype(x.dtype, np.integer) or np.issubdtype(x.dtype, np.floating)):
            raise DataError(f"{path}: x_{split} has dtype {x.dtype}; expected uint8 pixels or floats")
        if not np.issubdtype(y.dtype, np.integer):
            raise DataError(f"{path}: y_{split} has dtype {y.dtype}; expected integer labels 0-9")
        if y.size and (y.min() < 0 or y.max() >= CLASSES):
            raise DataError(f"{path}: y_{split} has labels outside 0-9")
    return arrays


def is_canonical_mnist(arrays: dict[str, np.ndarray]) -> bool:
    """True when all four arrays are, byte for byte, the canonical MNIST arrays (cheap checks first)."""
    for key, digest in MNIST_ARRAY_SHA256.items():
        array = arrays.get(key)
        if array is None or array.dtype != np.uint8 or array.shape != MNIST_ARRAY_SHAPES[key]:
            return False
        if hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest() != digest:
            return False
    return True


def _file_is_canonical_mnist(path: Path) -> bool:
    # A damaged or foreign file in the cache is not MNIST; resolution goes on to the download.
    try:
        return is_canonical_mnist(validate_npz(path))
    except DataError:
        return False


def _scale(x: np.ndarray) -> np.ndarray:
    x = x.reshape(x.shape[0], FEATURES).astype(np.float32)
    # uint8 pixels are scaled by 255 as in the reference; float files are assumed already in [0, 1].
    return x / np.float32(255.0) if x.max(initial=0.0) > 1.0 else x


def _synthetic(spec: DataSpec) -> Mnist:
    """MNIST-shaped and learnable, but not trivially: each class is a fixed sparse pattern, every image
    also carries a faded pattern of a random other class and pixel noise.

    Tuned so a least-squares linear classifier scores about 0.83 on it, close to what the same
    classifier scores on real MNIST (~0.85); the MLP learns it well within a few hundred steps, so the
    loss/accuracy sanity checks stay meaningful. Deterministic from the seed, uint8-quantised like real
    pixels, balanced labels.
    """
    rng = np.random.default_rng(spec.seed + 1234)
    prototypes = (rng.random((CLASSES, FEATURES)) < 0.15).astype(np.float32)

    def draw(n: int) -> tuple[np.ndarray, np.ndarray]:
        y = (np.arange(n) % CLASSES).astype(np.int32)
        rng.shuffle(y)
        distractor = rng.integers(0, CLASSES, size=n)
        intensity = rng.uniform(0.5, 1.0, size=(n, 1)).astype(np.float32)
        fade = rng.uniform(0.0, 0.9, size=(n, 1)).astype(np.float32)
        noise = rng.normal(0.0, 0.45, size=(n, FEATURES)).astype(np.float32)
        x = np.clip(prototypes[y] * intensity + prototypes[distractor] * fade + noise, 0.0, 1.0)
        return np.round(x * 255.0).astype(np.uint8), y

    x_train, y_train = draw(TRAIN_SAMPLES)
    x_test, y_test = draw(TEST_SAMPLES)
    return Mnist(_scale(x_train), y_train, _scale(x_test), y_test, spec)


def _download(dest: Path, timeout_s: float) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(MNIST_URL, timeout=timeout_s) as response:
            shutil.copyfileobj(response, out)
        if _sha256(Path(tmp)) != MNIST_SHA256:
            raise ValueError("checksum mismatch")
        os.replace(tmp, dest)
    finally:
        Path(tmp).unlink(missing_ok=True)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"[:200]
