"""nox sessions: each one installs the project into its own virtualenv and calls ``python -m bench``.

``nox -s bench -- ARGS`` is exactly ``python -m bench run ARGS`` inside that environment, followed by
the HTML report of the run it just wrote.
"""

from __future__ import annotations

import nox

nox.options.sessions = ["tests", "lint"]
nox.options.reuse_existing_virtualenvs = True


def _option(args: list[str], name: str, default: str) -> str:
    for i, arg in enumerate(args):
        if arg == name and i + 1 < len(args):
            return args[i + 1]
        if arg.startswith(name + "="):
            return arg.split("=", 1)[1]
    return default


@nox.session
def bench(session: nox.Session) -> None:
    """Run a benchmark sweep (default config: configs/default.toml with a GPU, else configs/quick.toml), write results/<run>.json, then build report/index.html. Arguments after -- go to `python -m bench run`."""
    session.install("-e", ".")
    session.run("python", "-m", "bench", "run", *session.posargs)
    results_dir = _option(session.posargs, "--results-dir", "results")
    session.run("python", "-m", "bench", "report", "--results-dir", results_dir)


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
_READER_DEPS = ("numpy", "scipy>=1.10", "pandas>=2", "matplotlib>=3.7", "jinja2>=3.1")


@nox.session
def compare(session: nox.Session) -> None:
    """Compare a run with a baseline (`nox -s compare -- BASELINE [CURRENT]`); exit 1 on a significant regression, 2 on bad input."""
    session.install(*_READER_DEPS)
    session.install("--no-deps", "-e", ".")
    session.run("python", "-m", "bench", "compare", *session.posargs)


@nox.session
def report(session: nox.Session) -> None:
    """Build report/index.html from result files (`nox -s report -- [RESULTS ...]`)."""
    session.install(*_READER_DEPS)
    session.install("--no-deps", "-e", ".")
    session.run("python", "-m", "bench", "report", *session.posargs)
