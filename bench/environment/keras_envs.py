"""The Python environments a run's train cases use (``[environments.<name>]``): checked and probed before the sweep.

An environment is a folder put first on a worker's PYTHONPATH — typically another Keras installed there with
``pip install --target DIR keras-nightly --no-deps`` (``scripts/prepare_keras_nightly.sh``) — so two Keras
versions are measured by the same tool, each in its own worker processes, and never share one PYTHONPATH.

The parent checks every environment the planned cases use before anything else runs: a folder that does not
exist, or a Keras that does not import there, is one line and exit code 2, not a sweep of failed cases. Each
is probed in a child process exactly as a worker would start (``framework_env`` for the case's backend, the
folder first on PYTHONPATH): ``import keras`` and its ``__version__``. The resolved environments (name, label,
folder, Keras version, whether it is a development build) go into the run's header
(``environment.keras_environments``). Framework-free in this process, like the rest of the parent.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterable, Mapping
from typing import Any

from bench.config import DEFAULT_ENVIRONMENT, BenchConfig
from bench.errors import UserError
from bench.measure.worker_plan import framework_env

PROBE_TIMEOUT_S = 180.0
_PROBE = ("import keras; print('keras_version=' + str(keras.__version__)); "
          "print('keras_path=' + str(getattr(keras, '__file__', '') or ''))")


class KerasEnvironmentError(UserError):
    """An [environments] entry that cannot be used here (missing folder, Keras that does not import)."""


def is_development(version: str) -> bool:
    """PEP 440 development releases (``3.16.0.dev2026102704``) and nightlies say so in their version."""
    return "dev" in version


def used_environments(planned: Iterable[Any]) -> dict[str, tuple[str | None, str]]:
    """Environment name -> (its absolute folder or None, the backend of its first case), in plan order."""
    found: dict[str, tuple[str | None, str]] = {}
    for case in planned:
        if case.suite == "train":
            found.setdefault(case.environment, (case.pythonpath, case.backend))
    return found


def resolve(config: BenchConfig, planned: Iterable[Any], base_env: Mapping[str, str] | None = None,
            timeout_s: float = PROBE_TIMEOUT_S) -> list[dict[str, Any]] | None:
    """The run's environments, checked and probed (raises :class:`KerasEnvironmentError`), or None when every
    planned case runs in the default one (nothing to probe: a run without the axis costs nothing more)."""
    used = used_environments(planned)
    if set(used) <= {DEFAULT_ENVIRONMENT}:
        return None
    where = config.path or config.name
    for name, (path, _) in used.items():
        if path is not None and not os.path.isdir(path):
            given = config.environments[name].pythonpath
            raise KerasEnvironmentError(f"{where}: [environments.{name}] pythonpath {given!r} is not a folder here "
                                    f"({path}); create it (e.g. scripts/prepare_keras_nightly.sh) or fix the path")
    # Concurrently: each probe imports a framework, which takes seconds.
    probes = {name: _start_probe(path, backend, base_env) for name, (path, backend) in used.items()}
    resolved = []
    for name, proc in probes.items():
        path = used[name][0]
        version, keras_path = _finish_probe(name, path, proc, timeout_s, where)
        settings = config.environments.get(name)
        label = (settings.label if settings is not None and settings.label else
                 f"Keras {version}" + (", development build" if is_development(version) else "")
                 + (" (the tool's own Python)" if name == DEFAULT_ENVIRONMENT else ""))
        resolved.append({
            "name": name, "label": label,
            "pythonpath": settings.pythonpath if settings is not None else None,
            "pythonpath_resolved": path,
            "keras_version": version, "development": is_development(version), "keras_path": keras_path or None,
        })
    return resolved


def notes(resolved: list[dict[str, Any]] | None) -> list[str]:
    """Lines worth a note: an environment whose Keras did not come from its own folder (it shadows nothing)."""
    lines = []
    for env in resolved or []:
        folder, where = env["pythonpath_resolved"], env.get("keras_path") or ""
        if folder and not os.path.abspath(where).startswith(os.path.join(folder, "")):
            lines.append(f"environment {env['name']}: keras {env['keras_version']} was imported from {where}, not "
                         f"from {folder}: its cases run the default Keras")
    return lines


def _start_probe(path: str | None, backend: str, base_env: Mapping[str, str] | None) -> subprocess.Popen:
    env = framework_env(backend, base_env)
    if path:
        env["PYTHONPATH"] = os.pathsep.join(p for p in (path, env.get("PYTHONPATH", "")) if p)
    return subprocess.Popen([sys.executable, "-c", _PROBE], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)


def _finish_probe(name: str, path: str | None, proc: subprocess.Popen, timeout_s: float,
                  where: str) -> tuple[str, str]:
    try:
        out, err = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise KerasEnvironmentError(f"{where}: environment {name}: `import keras` did not finish within "
                                f"{timeout_s:g} s") from None
    said = dict(ln.split("=", 1) for ln in out.splitlines() if ln.startswith(("keras_version=", "keras_path=")))
    if proc.returncode != 0 or not said.get("keras_version"):
        errors = [ln.strip() for ln in err.splitlines() if ln.strip()]
        why = next((ln for ln in reversed(errors) if "Error" in ln or "error" in ln), errors[-1] if errors else
                   f"exit code {proc.returncode}")
        folder = f" with {path} first on PYTHONPATH" if path else ""
        raise KerasEnvironmentError(f"{where}: environment {name}: Keras does not import{folder}: {why[:200]}")
    return said["keras_version"], said.get("keras_path", "")
