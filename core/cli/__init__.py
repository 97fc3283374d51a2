"""TransferLab headless: python -m core COMMAND. Each module here registers its own commands."""
from __future__ import annotations

import argparse
import sys

from core.cli import data, insight, model, train
from core.training import config as cfg

# Each module adds its subcommands; a new capability adds its module to this tuple.
COMMAND_MODULES = (data, train, model, insight)


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return args.handler(args)
    except (cfg.ConfigError, ValueError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="python -m core", description="TransferLab, headless.")
    sub = root.add_subparsers(required=True, metavar="command")
    for module in COMMAND_MODULES:
        module.register(sub)
    return root
