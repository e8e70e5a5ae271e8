"""nox sessions: each one installs the project into its own virtualenv and calls ``python -m bench``.

``nox -s bench -- ARGS`` is exactly ``python -m bench run ARGS`` inside that environment, followed by
the HTML report of the run it just wrote.
"""

from __future__ import annotations

import glob
import os
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import nox

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - nox on Python 3.10 brings tomli
    import tomli as tomllib

nox.options.sessions = ["tests", "lint"]
nox.options.reuse_existing_virtualenvs = True


def _option(args: list[str], name: str, default: str) -> str:
    for i, arg in enumerate(args):
        if arg == name and i + 1 < len(args):
            return args[i + 1]
        if arg.startswith(name + "="):
            return arg.split("=", 1)[1]
    return default


def _nvidia_driver() -> str | None:
    """The NVIDIA driver version when a GPU is visible (NVML through nvidia-ml-py, else nvidia-smi), else None."""
    try:
        import pynvml  # only where nox itself runs with nvidia-ml-py installed

        pynvml.nvmlInit()
        try:
            if pynvml.nvmlDeviceGetCount() > 0:
                version = pynvml.nvmlSystemGetDriverVersion()
                return version.decode() if isinstance(version, bytes) else str(version)
            return None
        finally:
            pynvml.nvmlShutdown()
    except Exception:  # noqa: BLE001 - no library, no driver, no GPU: ask nvidia-smi
        pass
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return None
    try:
        out = subprocess.run([smi, "--query-gpu=driver_version", "--format=csv,noheader"], capture_output=True,
                             text=True, timeout=60)
    except (OSError, subprocess.SubprocessError):
        return None
    versions = [line.strip() for line in out.stdout.splitlines() if line.strip()]
    return versions[0] if out.returncode == 0 and versions else None


TORCH_CPU_INDEX = "https://download.pytorch.org/whl/cpu"


def _config_needs(args: list[str], default_config: str) -> tuple[set[str], set[str]]:
    """The backends and Keras flavours of the sweep ``python -m bench run ARGS`` would run: read from its TOML
    (``[train]``, its ``[[train.add]]`` tables, ``[converge]``) and ``--set *.backend=`` / ``*.keras=``, without
    the project installed (nox's own Python). Defaults as bench/config.py: TensorFlow and Keras 3."""
    path = Path(_option(args, "--config", default_config))
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError):
        return set(), set()  # `bench run` reports the bad file in one line
    for i, arg in enumerate(args):
        text = args[i + 1] if arg == "--set" and i + 1 < len(args) else arg[6:] if arg.startswith("--set=") else ""
        key, _, value = text.partition("=")
        section, _, name = key.strip().partition(".")
        if name in ("backend", "keras") and section in ("train", "converge"):
            try:
                raw.setdefault(section, {})[name] = tomllib.loads(f"v = {value}")["v"]
            except tomllib.TOMLDecodeError:
                raw.setdefault(section, {})[name] = [value]
    suites = set(raw.get("suites", ["train"]))
    train = raw.get("train", {}) if suites & {"train", "native", "cpu_predict"} else None
    tables = [*([train, *train.get("add", [])] if train is not None else []),
              *([raw.get("converge", {})] if "converge" in suites else [])]
    base = train or {}
    backends = {b for table in tables for b in table.get("backend", base.get("backend", ["tensorflow"]))}
    flavours = {k for table in tables for k in table.get("keras", base.get("keras", ["keras3"]))}
    return backends, flavours


def _install_bench(session: nox.Session) -> None:
    """The project, and what the sweep's config needs: GPU builds when an NVIDIA GPU is visible, CPU ones otherwise.

    Drivers >= 580 support CUDA 13 and get the ``gpu-cuda13`` extra (TensorFlow, JAX's and PyTorch's CUDA 13
    wheels), older ones ``gpu`` (CUDA 12; torch then from PyTorch's cu126 index when the config uses it);
    TensorFlow's ``and-cuda`` wheels are CUDA 12 in both. Without a GPU: the project (TensorFlow, Keras 3),
    plus JAX, torch and tf_keras only when the config (``--config``, else the default one) uses them — torch as
    the CPU build from PyTorch's own index, since PyPI's torch is a CUDA build of several GB; ``BENCH_TORCH``
    names another requirement for it (e.g. ``torch==2.13.0`` where pip finds that CPU wheel locally).
    ``BENCH_INSTALL=cpu``, ``gpu`` or ``gpu-cuda13`` overrides the choice.
    """
    choice = os.environ.get("BENCH_INSTALL", "auto")
    if choice == "auto":
        driver = _nvidia_driver()
        if driver is None:
            choice = "cpu"
        else:
            major = driver.split(".")[0]
            choice = "gpu-cuda13" if major.isdigit() and int(major) >= 580 else "gpu"
        session.log(f"NVIDIA driver: {driver or 'none'} -> installing {'the CPU packages' if choice == 'cpu' else '.[' + choice + ']'}"
                    " (BENCH_INSTALL=cpu|gpu|gpu-cuda13 overrides)")
    if choice not in ("cpu", "gpu", "gpu-cuda13"):
        session.error(f"BENCH_INSTALL={choice!r}: choose auto, cpu, gpu or gpu-cuda13")
    default = "configs/quick.toml" if choice == "cpu" else "configs/default.toml"
    backends, flavours = _config_needs(list(session.posargs), default)
    extras = ([] if choice == "cpu" else [choice]) + (["legacy"] if "tf_keras" in flavours else [])
    project = f".[{','.join(extras)}]" if extras else "."
    session.log(f"the sweep uses {', '.join(sorted(backends)) or 'an unreadable config'}"
                f"{' and tf_keras' if 'tf_keras' in flavours else ''}: installing {project}"
                + "".join(f" + {b}" for b in sorted(backends - {"tensorflow"})))
    session.install("-e", project)
    if choice == "cpu" and "jax" in backends:
        session.install("jax")
    if "torch" in backends and choice != "gpu-cuda13":  # the cuda13 extra has PyPI's torch, a CUDA 13 build
        torch = os.environ.get("BENCH_TORCH")
        if torch:
            session.install(*torch.split())
        else:
            index = TORCH_CPU_INDEX if choice == "cpu" else "https://download.pytorch.org/whl/cu126"
            session.install("torch", "--index-url", index)


@nox.session
def bench(session: nox.Session) -> None:
    """Run a benchmark sweep (default config: configs/default.toml with a GPU, else configs/quick.toml), write results/<run>.json, then build report/index.html. Installs what the config's backends need, GPU builds when an NVIDIA GPU is visible. Arguments after -- go to `python -m bench run`."""
    _install_bench(session)
    session.run("python", "-m", "bench", "run", *session.posargs)
    results_dir = _option(session.posargs, "--results-dir", "results")
    session.run("python", "-m", "bench", "report", "--results-dir", results_dir)


@nox.session
def doctor(session: nox.Session) -> None:
    """Check the GPU setup `nox -s bench` installs: GPUs, each framework's CUDA/cuDNN and the GPUs it sees, a verdict (fails when the GPU sweep cannot run). Arguments after -- go to `python -m bench doctor`."""
    _install_bench(session)
    session.run("python", "-m", "bench", "doctor", *session.posargs)


@nox.session
def tests(session: nox.Session) -> None:
    """Run the test suite on the CPU (real TensorFlow with tiny configs; GPU-only tests skip with their reason). Arguments after -- go to pytest."""
    session.install("-e", ".[test,legacy]")  # legacy: tf_keras, for the Keras 2 and multi-worker tests
    # Keras' other backends for the cross-backend tests, CPU builds: torch 2.13.0 is the CPU wheel
    # this project's machines carry; a bare "torch" would pull a multi-GB CUDA build.
    session.install("jax", "torch==2.13.0")
    # Exit code 5 (no tests collected) is a failure here: a green run must have tested something.
    session.run("python", "-m", "pytest", *(session.posargs or ["tests", "-ra"]), success_codes=[0])


@nox.session
def lint(session: nox.Session) -> None:
    """Check style and common bugs with ruff."""
    session.install("ruff")
    session.run("ruff", "check", "bench", "tests", "noxfile.py")


# Compare and report read result files only: no TensorFlow in their environments.
_READER_DEPS = ("numpy", "scipy>=1.10", "pandas>=2", "matplotlib>=3.7", "jinja2>=3.1", "pydantic>=2.7")


@nox.session
def compare(session: nox.Session) -> None:
    """Compare a run with a baseline (`nox -s compare -- BASELINE... [CURRENT]`); nox exits 0 no regression, 1 regression, 2 bad input."""
    session.install(*_READER_DEPS)
    session.install("--no-deps", "-e", ".")
    _run_keeping_exit_code(session, "python", "-m", "bench", "compare", *session.posargs)


def _run_keeping_exit_code(session: nox.Session, *args: str) -> None:
    """Run the command; on exit 1 or 2 make nox itself exit with that code.

    nox reports every failed session as exit 1, which would turn compare's "bad input" (2) into a
    regression (1) for CI. SystemExit is not an Exception, so nox does not catch it and its process
    exits with the command's own code; other sessions queued after this one do not run then.
    """
    try:
        session.run(*args)
    except nox.command.CommandFailed as exc:
        code = getattr(exc, "return_code", None)
        if code in (1, 2):
            session.log(f"{args[3] if len(args) > 3 else args[0]} exited {code}: nox exits {code} too")
            raise SystemExit(code) from None
        raise


@nox.session
def export(session: nox.Session) -> None:
    """Write a run (or a comparison) for CI tools (`nox -s export -- [SOURCE] --format github-action-benchmark|markdown`)."""
    session.install(*_READER_DEPS)
    session.install("--no-deps", "-e", ".")
    _run_keeping_exit_code(session, "python", "-m", "bench", "export", *session.posargs)


@nox.session
def report(session: nox.Session) -> None:
    """Build report/index.html from result files (`nox -s report -- [RESULTS ...]`)."""
    session.install(*_READER_DEPS)
    session.install("--no-deps", "-e", ".")
    session.run("python", "-m", "bench", "report", *session.posargs)


# ----------------------------------------------------------------------------- the GPU machine, rehearsed

DEVICE_PACKAGES = Path(__file__).resolve().parent / "scripts" / "device_packages.toml"


def _device_python() -> str:
    """A working interpreter of the GPU machine's Python version (3.12), else that version for nox to find.

    pyenv's shims answer ``python3.12`` even where that version is not selected (and then fail), so the
    versions pyenv installed are looked at directly too.
    """
    version = tomllib.loads(DEVICE_PACKAGES.read_text(encoding="utf-8"))["machine"]["python"]
    candidates = [shutil.which(f"python{version}") or ""]
    candidates += sorted(glob.glob(os.path.expanduser(f"~/.pyenv/versions/{version}*/bin/python{version}")), reverse=True)
    for candidate in filter(None, candidates):
        try:
            subprocess.run([candidate, "--version"], check=True, capture_output=True, timeout=30)
        except (OSError, subprocess.SubprocessError):
            continue
        return candidate
    return version


# The sweep the device script runs, shrunk for a 2-core CPU: gpu-jax.toml itself (so its plan and its settings
# are checked too) on simulated devices, batch 256 float32 (3 train and 2 native cases), short rounds.
REHEARSAL_ARGS = ("--set", "devices.simulate=true", "--set", "measure.rounds=2", "--set", "measure.min_round_s=0.05",
                  "--set", "measure.warmup_steps=2", "--set", "measure.max_steps_per_round=20",
                  "--set", "control.rounds=2", "-k", "batch=256/ and float32")
CONVERGE_REHEARSAL_ARGS = ("--set", "devices.simulate=true", "--set", "converge.seeds=1", "--set", "converge.max_epochs=1",
                           "-k", "batch=256/ and float32")
REHEARSAL_ENV = {"BENCH_PROFILE_BATCHES": "256", "BENCH_PROFILE_STEPS": "10", "BENCH_PROFILE_PRECISIONS": "float32",
                 "BENCH_VERDICT_BATCHES": "256", "BENCH_MAX_S": "300"}


@nox.session(python=_device_python())
def device_rehearsal(session: nox.Session) -> None:
    """Run scripts/device_run.sh end to end on the CPU as the GPU machine would: only its packages plus the carried wheels, a copy of the tracked tree, a fresh $OUT; check what comes back."""
    started = time.monotonic()
    packages = tomllib.loads(DEVICE_PACKAGES.read_text(encoding="utf-8"))
    repo = Path(__file__).resolve().parent
    tmp = Path(session.create_tmp()).resolve()
    for old in ("tree", "out", "out-converge", "site", "site-nightly", "results", "results-converge", "keras-home"):
        shutil.rmtree(tmp / old, ignore_errors=True)
    tree, out = tmp / "tree", tmp / "out"
    # The machine's packages the code imports (CPU builds from PyPI), nothing else: no pip install -e of the
    # project, no pydantic, no Keras, no TensorFlow.
    session.install(*packages["rehearsal"]["install"])
    # The tree as the device tool ships it: tracked files, no .git, no ../shared; plus the carried folders.
    files = subprocess.run(["git", "ls-files", "-z"], cwd=repo, capture_output=True, text=True, check=True).stdout
    for name in filter(None, files.split("\0")):
        if (repo / name).is_file():
            (tree / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(repo / name, tree / name)
    # Exactly the wheels scripts/device_wheels.py downloads for the machine; the nightly only where the config
    # knows [environments] (the mechanism that runs a second Keras beside the first).
    nightly = "    environments:" in (repo / "bench" / "config.py").read_text(encoding="utf-8")
    session.run("python", str(repo / "scripts" / "device_wheels.py"), "--dest", str(tree / ".whl"),
                "--nightly-dest", str(tree / ".whl-nightly"), *([] if nightly else ["--no-nightly"]),
                "--python-version", packages["machine"]["python"])
    env = {**REHEARSAL_ENV, "OUT": str(out), "BENCH_SITE": str(tmp / "site"), "BENCH_RESULTS": str(tmp / "results"),
           "KERAS_HOME": str(tmp / "keras-home"), "PYTHONPATH": ""}
    session.chdir(tree)
    console = tmp / "console.log"
    script = " ".join(["bash scripts/device_run.sh configs/gpu-jax.toml", *(shlex.quote(a) for a in REHEARSAL_ARGS)])
    session.run("bash", "-o", "pipefail", "-c", f"{script} 2>&1 | tee {console}", env=env, external=True)
    check = [str(repo / "scripts" / "device_rehearsal_check.py")]
    session.run("python", *check, str(out), str(console), env={"PYTHONPATH": f"{tmp / 'site'}:{tree}"})
    # The time-to-accuracy script too: one seed, one epoch (the suite refuses synthetic data: real MNIST only).
    if (tree / ".whl" / "mnist.npz").is_file():
        out = tmp / "out-converge"
        script = " ".join(["bash scripts/device_converge.sh configs/converge.toml",
                           *(shlex.quote(a) for a in CONVERGE_REHEARSAL_ARGS)])
        session.run("bash", "-o", "pipefail", "-c", f"{script} 2>&1 | tee {console}",
                    env={**env, "OUT": str(out), "BENCH_RESULTS": str(tmp / "results-converge")}, external=True)
        session.run("python", *check, "--converge", str(out), str(console),
                    env={"PYTHONPATH": f"{tmp / 'site'}:{tree}"})
    else:
        session.warn("no ../shared/data/mnist.npz: scripts/device_converge.sh (real MNIST only) is not rehearsed")
    session.log(f"device rehearsal passed in {time.monotonic() - started:.0f} s")

