"""The command line: the only module that touches argparse and sys.argv.

Each subcommand lives in ``bench/commands/<name>.py`` with ``configure(parser)`` and ``run(args) -> int``
(asv's ``commands/`` layout), so the folder lists what the tool can do.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from types import ModuleType

from bench import __version__
from bench.errors import EXIT_USAGE, UserError

# Workflow order: measure, then look at the numbers.
COMMANDS = {
    "run": "Run a sweep (training throughput, CPU prediction) and write one results file.",
    "compare": "Compare a run with a baseline; exit 1 on a significant regression.",
    "promote": "Append a run to the baseline history results/baselines/<name>/ for later comparisons.",
    "report": "Build the self-contained HTML report from result files.",
    "doctor": "Check this machine's GPU setup (NVML, TensorFlow, JAX, torch, CUDA, Keras); exit 1 if the GPU sweep cannot run.",
    "ab": "Run two environments or commits case by case, alternately, and compare them (exit 1 on a regression).",
    "export": "Write a run or comparison for CI tools (github-action-benchmark, Markdown step summary).",
}


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line and exit 2, as for every user mistake
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m bench", description=__doc__.splitlines()[0] if __doc__ else None)
    parser.description = (
        "Benchmarks for a Keras/TensorFlow GPU setup: MNIST MLP training throughput across GPU count, "
        "global batch, mixed precision and XLA; NVML utilisation; CPU prediction after GPU training."
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name, help_text in COMMANDS.items():
        module = _command_module(name)
        command_parser = sub.add_parser(name, help=help_text, description=help_text)
        module.configure(command_parser)
        command_parser.set_defaults(_run=module.run)
    return parser


def _command_module(name: str) -> ModuleType:
    """A listed subcommand's module; its absence is a broken installation, never a command quietly gone."""
    module_name = f"bench.commands.{name}"
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name == module_name:
            raise ModuleNotFoundError(
                f"the '{name}' subcommand's module {module_name} is missing: keras-gpu-bench is installed "
                "without part of its package (a packaging bug); reinstall it", name=module_name,
            ) from None
        raise


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "_run", None):
        parser.print_help()
        return EXIT_USAGE
    try:
        return int(args._run(args) or 0)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
