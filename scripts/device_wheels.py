"""Download exactly the wheels the device run carries to the lent GPU machine, from scripts/device_packages.toml.

The GPU machine has no network and no Keras, pydantic or tomli-w (scripts/device_packages.toml, [machine]); they
travel as wheels in ``.whl/`` (``[carried]``), the development build of Keras in ``.whl-nightly/``
(``[nightly]``), and real MNIST as ``.whl/mnist.npz`` when ``../shared/data/mnist.npz`` is there. Every wheel's
own requirements are checked against the machine's packages and the carried ones (right name, right version),
so a carried wheel cannot arrive without something it needs.

    python3 scripts/device_wheels.py                       # .whl/ and .whl-nightly/ for the GPU machine (cp312)
    python3 scripts/device_wheels.py --no-nightly --python-version 3.11 --dest /tmp/w   # for another Python

Exit 0 with the files listed; 1 when pip cannot download one or a requirement is missing; 2 for bad arguments.
Needs only pip (``packaging`` where installed, else pip's own copy).
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

REPO = Path(__file__).resolve().parents[1]
PACKAGES = REPO / "scripts" / "device_packages.toml"
MNIST = REPO.parent / "shared" / "data" / "mnist.npz"
CARRY_LIMIT_MIB = 64  # the device tool carries at most 64 MiB per call, the working tree included


def normalize(name: str) -> str:
    """PEP 503: ``Typing_Extensions`` and ``typing-extensions`` are one distribution."""
    return re.sub(r"[-_.]+", "-", name).lower()


def load_packages(path: Path = PACKAGES) -> dict:
    with open(path, "rb") as fh:
        return tomllib.load(fh)


def pins(table: dict[str, str]) -> list[str]:
    return [f"{name}=={version}" for name, version in table.items()]


def download(requirements: list[str], dest: Path, python_version: str, platforms: list[str]) -> list[Path]:
    """``pip download --no-deps --only-binary`` for that Python and platform into ``dest``, emptied of wheels
    first: two versions of one package in a folder stop the whole ``pip install`` there."""
    dest.mkdir(parents=True, exist_ok=True)
    for old in dest.glob("*.whl"):
        old.unlink()
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--disable-pip-version-check",
               "--python-version", python_version, "--implementation", "cp", "-d", str(dest)]
    for platform in platforms:
        command += ["--platform", platform]
    proc = subprocess.run(command + requirements, capture_output=True, text=True)
    if proc.returncode != 0:
        last = [ln for ln in proc.stderr.splitlines() if ln.strip()][-1:] or ["(no output)"]
        raise SystemExit(f"pip download failed for {dest.name}/: {last[0]}")
    return sorted(dest.glob("*.whl"))


def wheel_requirements(wheel: Path) -> list[str]:
    """The ``Requires-Dist`` lines of a wheel's METADATA."""
    with zipfile.ZipFile(wheel) as archive:
        metadata = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
        text = archive.read(metadata).decode("utf-8")
    return [line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("Requires-Dist:")]


def missing_requirements(wheels: list[Path], machine: set[str], carried: dict[str, str],
                         python_version: str) -> list[str]:
    """Each requirement (extras left out, markers evaluated for that Python on Linux) that neither the machine
    nor a carried wheel of a matching version satisfies, as one line per problem."""
    try:
        from packaging.requirements import Requirement
        from packaging.version import Version
    except ModuleNotFoundError:  # a bare virtualenv: pip carries its own copy
        from pip._vendor.packaging.requirements import Requirement
        from pip._vendor.packaging.version import Version

    environment = {"python_version": python_version, "python_full_version": f"{python_version}.0",
                   "platform_system": "Linux", "sys_platform": "linux", "os_name": "posix",
                   "platform_machine": "x86_64", "implementation_name": "cpython", "extra": ""}
    carried = {normalize(k): v for k, v in carried.items()}
    problems = []
    for wheel in wheels:
        for line in wheel_requirements(wheel):
            requirement = Requirement(line)
            if requirement.marker is not None and not requirement.marker.evaluate(environment):
                continue
            name = normalize(requirement.name)
            if name in carried:
                if not requirement.specifier.contains(Version(carried[name]), prereleases=True):
                    problems.append(f"{wheel.name} needs {line}, but {name} {carried[name]} is carried")
            elif name not in machine:
                problems.append(f"{wheel.name} needs {line}: neither on the GPU machine nor carried "
                                f"(add it to [carried] in {PACKAGES.relative_to(REPO)})")
    return problems


def main(argv: list[str] | None = None) -> int:
    packages = load_packages()
    machine = packages["machine"]
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dest", type=Path, default=REPO / ".whl", help="the carried wheels (default .whl/)")
    parser.add_argument("--nightly-dest", type=Path, default=REPO / ".whl-nightly",
                        help="keras-nightly's wheel (default .whl-nightly/)")
    parser.add_argument("--no-nightly", action="store_true", help="leave keras-nightly out")
    parser.add_argument("--mnist", type=Path, default=MNIST,
                        help=f"mnist.npz to carry as DEST/mnist.npz when it exists (default {MNIST})")
    parser.add_argument("--python-version", default=machine["python"],
                        help=f"the target Python (default {machine['python']}, the GPU machine's)")
    parser.add_argument("--platform", action="append", dest="platforms",
                        help="a pip platform tag, repeatable (default: the GPU machine's, manylinux x86_64)")
    args = parser.parse_args(argv)
    platforms = args.platforms or list(machine["platforms"])
    on_machine = {normalize(n) for n in machine["packages"]}

    wheels = download(pins(packages["carried"]), args.dest, args.python_version, platforms)
    if not args.no_nightly:
        wheels += download(pins(packages["nightly"]), args.nightly_dest, args.python_version, platforms)
    problems = missing_requirements(wheels, on_machine, packages["carried"], args.python_version)
    mnist = args.dest / "mnist.npz"
    if args.mnist.is_file():
        shutil.copyfile(args.mnist, mnist)
    elif mnist.exists():
        mnist.unlink()  # a stale copy would be carried as if it were asked for
    files = [*wheels, *([mnist] if mnist.exists() else [])]
    total = sum(f.stat().st_size for f in files)
    for f in files:
        print(f"{f.stat().st_size / 2**20:7.2f} MiB  {f.relative_to(f.parent.parent)}")
    print(f"{total / 2**20:7.2f} MiB in all (the device tool carries {CARRY_LIMIT_MIB} MiB per call, the working "
          f"tree included); {'real MNIST included' if mnist.exists() else 'no mnist.npz: the run will use synthetic data'}")
    for problem in problems:
        print(f"error: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
