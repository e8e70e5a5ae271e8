"""What `nox -s bench -- --config X` installs is read from X (noxfile._config_needs), without the project installed."""

from __future__ import annotations

import pytest

from tests.conftest import REPO

noxfile = pytest.importorskip("noxfile", reason="nox is not installed (pip install -e .[test] brings it)")


@pytest.mark.parametrize(("config", "backends", "flavours"), [
    ("configs/quick.toml", {"tensorflow"}, {"keras3"}),
    ("configs/converge.toml", {"jax"}, {"keras3"}),  # [converge] backend, not [train]'s default
    ("configs/multiworker.toml", {"tensorflow", "jax"}, {"keras3", "tf_keras"}),
    ("configs/backends.toml", {"tensorflow", "jax", "torch"}, {"keras3"}),
])
def test_the_config_names_what_to_install(config, backends, flavours, monkeypatch):
    monkeypatch.chdir(REPO)
    assert noxfile._config_needs(["--config", config], "configs/quick.toml") == (backends, flavours)


def test_set_overrides_and_the_default_config(monkeypatch):
    monkeypatch.chdir(REPO)
    assert noxfile._config_needs(["--config=configs/quick.toml", "--set", 'train.backend=["jax", "torch"]'], "") == (
        {"jax", "torch"}, {"keras3"})
    assert noxfile._config_needs(["--set", "train.keras=tf_keras"], "configs/quick.toml") == (
        {"tensorflow"}, {"tf_keras"})
    # A file that cannot be read installs only the project; `bench run` then says what is wrong in one line.
    assert noxfile._config_needs(["--config", "configs/missing.toml"], "configs/quick.toml") == (set(), set())
