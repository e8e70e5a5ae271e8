"""``python -m bench doctor``: can this machine run the GPU sweep? GPUs, frameworks, CUDA, a verdict.

Exit 0 when the config (default: configs/default.toml, the GPU sweep) can run, 1 when not, with the
fix in one line; 2 for bad input. No framework is imported here: each is probed in its own process.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from bench.config import ConfigError, default_config
from bench.config_overrides import load_config_with_overrides
from bench.errors import EXIT_OK

EXIT_NOT_READY = 1


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", metavar="TOML",
                        help="the sweep to judge (default: configs/default.toml, the GPU sweep)")
    parser.add_argument("--timeout", metavar="S", type=float, default=None,
                        help="seconds each framework may take to import and list its GPUs (default: 180)")
    parser.add_argument("--json", action="store_true",
                        help="print the facts and the verdict as JSON instead of the screen")


def run(args: argparse.Namespace) -> int:
    from bench.environment import frameworks as fw
    from bench.environment.doctor import judge
    from bench.environment.fingerprint import gpu_inventory
    from bench.environment.screen import format_screen

    path = Path(args.config) if args.config else default_config("default.toml")
    config = load_config_with_overrides(path)
    timeout_s = fw.DEFAULT_TIMEOUT_S if args.timeout is None else args.timeout
    if timeout_s <= 0:
        raise ConfigError(f"--timeout must be positive, got {timeout_s:g}")
    inventory = gpu_inventory()
    facts = fw.collect(fw.FRAMEWORKS, timeout_s=timeout_s)
    verdict = judge(config, facts, inventory, os.environ)
    if args.json:
        print(json.dumps({"config": str(path), "inventory": inventory, "frameworks": facts,
                          "verdict": verdict.to_dict()}, indent=2, sort_keys=True))
    else:
        print(format_screen(str(path), inventory, facts, verdict))
    sys.stdout.flush()
    return EXIT_OK if verdict.runnable else EXIT_NOT_READY


