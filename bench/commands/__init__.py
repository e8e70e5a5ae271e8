"""One module per subcommand of ``python -m bench``: ``configure(parser)`` and ``run(args) -> int``.

Options several subcommands share are defined once, here.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from bench.store.results import DEFAULT_RESULTS_DIR


def add_results_dir(parser: argparse.ArgumentParser, purpose: str) -> None:
    """``--results-dir DIR`` (a :class:`~pathlib.Path`, default ``results/``), ``purpose`` saying what for."""
    parser.add_argument("--results-dir", type=Path, default=DEFAULT_RESULTS_DIR, metavar="DIR",
                        help=f"{purpose} (default: {DEFAULT_RESULTS_DIR}/)")
