"""MNIST loading: explicit npz, validation of bad files, the deterministic synthetic fallback."""

from __future__ import annotations

import numpy as np
import pytest

from bench.config import DataSettings
from bench.measure import data


def _write_npz(path, n_train=100, n_test=20, shape=(28, 28), dtype=np.uint8, **override):
    rng = np.random.default_rng(0)
    arrays = {
        "x_train": rng.integers(0, 256, size=(n_train, *shape)).astype(dtype),
        "y_train": rng.integers(0, 10, size=n_train).astype(np.uint8),
        "x_test": rng.integers(0, 256, size=(n_test, *shape)).astype(dtype),
        "y_test": rng.integers(0, 10, size=n_test).astype(np.uint8),
    }
    arrays.update(override)
    arrays = {k: v for k, v in arrays.items() if v is not None}
    np.savez(path, **arrays)
    return path


def test_npz_path_is_used_and_scaled(tmp_path):
    path = _write_npz(tmp_path / "mnist.npz")
    spec = data.resolve(DataSettings(path=str(path)), seed=0)
    assert spec.source == "npz" and not spec.synthetic and spec.sha256
    mnist = data.load(spec)
    assert mnist.x_train.shape == (100, 784) and mnist.x_train.dtype == np.float32
    assert 0.0 <= mnist.x_train.min() and mnist.x_train.max() <= 1.0
    assert mnist.y_test.dtype == np.int32


def test_keras_cache_is_used_when_checksum_matches(tmp_path, monkeypatch):
    cache = tmp_path / "datasets" / "mnist.npz"
    cache.parent.mkdir()
    _write_npz(cache)
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    monkeypatch.setattr(data, "MNIST_SHA256", data._sha256(cache))

    def no_network(*args, **kwargs):
        raise AssertionError("the network was used although MNIST is cached")

    monkeypatch.setattr(data.urllib.request, "urlopen", no_network)
    spec = data.resolve(DataSettings(), seed=0)
    assert spec.source == "mnist" and spec.path == str(cache)
    assert data.load(spec).x_train.shape == (100, 784)


def test_offline_falls_back_to_synthetic_and_says_so(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    seen = {}

    def offline(url, timeout):
        seen["timeout"] = timeout
        raise OSError("Name or service not known")

    monkeypatch.setattr(data.urllib.request, "urlopen", offline)
    spec = data.resolve(DataSettings(download_timeout_s=1.5), seed=0)
    assert seen["timeout"] == 1.5  # a download is always bounded
    assert spec.source == "synthetic" and spec.synthetic
    assert "download failed" in spec.note and "synthetic" in spec.note


def test_source_mnist_offline_is_a_user_error(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    monkeypatch.setattr(data.urllib.request, "urlopen", lambda *a, **k: (_ for _ in ()).throw(OSError("offline")))
    with pytest.raises(data.DataError, match="MNIST download failed"):
        data.resolve(DataSettings(source="mnist", download_timeout_s=1), seed=0)


def test_synthetic_is_deterministic_and_mnist_shaped():
    spec = data.DataSpec("synthetic", None, None, "test", seed=3)
    a, b = data.load(spec), data.load(spec)
    assert a.x_train.shape == (60_000, 784) and a.x_test.shape == (10_000, 784)
    assert np.array_equal(a.x_train[:100], b.x_train[:100]) and np.array_equal(a.y_test, b.y_test)
    assert sorted(np.unique(a.y_train)) == list(range(10))
    assert 0.0 <= a.x_train.min() and a.x_train.max() <= 1.0


def test_synthetic_is_learnable_but_not_trivial():
    """A linear classifier fitted by least squares separates it well above chance, below perfection."""
    mnist = data.load(data.DataSpec("synthetic", None, None, "test", seed=0))
    x, y = mnist.x_train[:20_000], mnist.y_train[:20_000]
    onehot = np.eye(10, dtype=np.float32)[y]
    xb = np.hstack([x, np.ones((len(x), 1), np.float32)])
    w, *_ = np.linalg.lstsq(xb, onehot, rcond=None)
    xt = np.hstack([mnist.x_test, np.ones((len(mnist.x_test), 1), np.float32)])
    accuracy = float(np.mean(np.argmax(xt @ w, axis=1) == mnist.y_test))
    assert 0.5 < accuracy < 0.995


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"x_test": None}, "missing arrays x_test"),
        ({"shape": (20, 20)}, "expected (N, 28, 28) or (N, 784)"),
        ({"y_train": np.zeros(7, np.uint8)}, "y_train has shape (7,)"),
        ({"y_train": np.full(100, 12, np.uint8)}, "labels outside 0-9"),
        ({"y_test": np.zeros(20, np.float32)}, "expected integer labels"),
        ({"x_train": np.array(["a"] * 100 * 784).reshape(100, 784)}, "expected uint8 pixels or floats"),
    ],
)
def test_bad_npz_contents(tmp_path, kwargs, message):
    path = _write_npz(tmp_path / "bad.npz", **kwargs)
    with pytest.raises(data.DataError) as err:
        data.validate_npz(path)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_truncated_npz(tmp_path):
    path = _write_npz(tmp_path / "m.npz")
    blob = path.read_bytes()
    path.write_bytes(blob[: len(blob) // 2])
    with pytest.raises(data.DataError, match="unreadable or truncated"):
        data.validate_npz(path)


def test_missing_and_wrong_suffix(tmp_path):
    with pytest.raises(data.DataError, match="data file not found"):
        data.validate_npz(tmp_path / "nope.npz")
    other = tmp_path / "mnist.csv"
    other.write_text("1,2,3")
    with pytest.raises(data.DataError, match="is not an .npz"):
        data.validate_npz(other)


# --------------------------------------------------------------------------- MNIST recognised by content


def _canonical(monkeypatch, tmp_path):
    """A tiny stand-in for the canonical arrays: its per-array sha256 and shapes become "MNIST's"."""
    path = _write_npz(tmp_path / "canonical.npz", n_train=30, n_test=10)
    with np.load(path) as npz:
        arrays = {k: npz[k] for k in npz.files}
    monkeypatch.setattr(data, "MNIST_ARRAY_SHA256", {
        k: data.hashlib.sha256(np.ascontiguousarray(v).tobytes()).hexdigest() for k, v in arrays.items()})
    monkeypatch.setattr(data, "MNIST_ARRAY_SHAPES", {k: v.shape for k, v in arrays.items()})
    return arrays


def _offline(monkeypatch):
    def no_network(*args, **kwargs):
        raise OSError("offline")

    monkeypatch.setattr(data.urllib.request, "urlopen", no_network)


def test_a_copy_with_the_canonical_arrays_is_mnist_whatever_its_bytes(tmp_path, monkeypatch):
    arrays = _canonical(monkeypatch, tmp_path)
    copy = tmp_path / "copy.npz"
    np.savez_compressed(copy, **arrays)  # other zip metadata and compression: other file bytes
    assert data._sha256(copy) != data._sha256(tmp_path / "canonical.npz")

    by_path = data.resolve(DataSettings(path=str(copy)), seed=0)
    assert (by_path.source, by_path.identified_by, by_path.synthetic) == ("mnist", "array_sha256", False)
    assert data.resolve(DataSettings(source="mnist", path=str(copy)), seed=0).source == "mnist"

    cache = tmp_path / "home" / "datasets" / "mnist.npz"
    cache.parent.mkdir(parents=True)
    cache.write_bytes(copy.read_bytes())
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "home"))
    _offline(monkeypatch)  # recognised in the cache without a download
    cached = data.resolve(DataSettings(), seed=0)
    assert (cached.source, cached.path, cached.identified_by) == ("mnist", str(cache), "array_sha256")
    assert "not Keras' download" in cached.note and cached.to_dict()["identified_by"] == "array_sha256"
    assert data.DataSpec.from_dict(cached.to_dict()) == cached


def test_right_shape_other_content_stays_npz(tmp_path, monkeypatch):
    arrays = _canonical(monkeypatch, tmp_path)
    other = dict(arrays, x_test=arrays["x_test"] ^ np.uint8(1))  # one bit flipped in every test pixel
    path = tmp_path / "other.npz"
    np.savez(path, **other)
    spec = data.resolve(DataSettings(path=str(path)), seed=0)
    assert spec.source == "npz" and spec.identified_by is None
    with pytest.raises(data.DataError, match="is not MNIST") as err:
        data.resolve(DataSettings(source="mnist", path=str(path)), seed=0)
    assert "\n" not in str(err.value)
    # Float pixels with the canonical values are not the canonical arrays either (the layout is Keras' uint8).
    assert not data.is_canonical_mnist(dict(arrays, x_train=arrays["x_train"].astype(np.float32)))

    cache = tmp_path / "home" / "datasets" / "mnist.npz"
    cache.parent.mkdir(parents=True)
    cache.write_bytes(path.read_bytes())
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "home"))
    _offline(monkeypatch)
    assert data.resolve(DataSettings(), seed=0).source == "synthetic"  # not MNIST, and no download


def test_real_mnist_matches_the_published_array_checksums(real_mnist, tmp_path):
    arrays = data.validate_npz(data.Path(real_mnist.path))
    assert data.is_canonical_mnist(arrays)
    assert np.bincount(arrays["y_test"]).tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    changed = dict(arrays, y_test=arrays["y_test"].copy())
    changed["y_test"][0] = (changed["y_test"][0] + 1) % 10
    path = tmp_path / "mnist.npz"
    np.savez(path, **changed)
    assert data.resolve(DataSettings(path=str(path)), seed=0).source == "npz"
