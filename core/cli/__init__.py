"""TransferLab headless: python -m core COMMAND. Each module here registers its own commands.

Every failure a user can cause (a missing file or run, a bad option, data that cannot train, a device that is not
there) ends as one line on stderr and exit status 2; set TRANSFERLAB_DEBUG=1 to see the traceback instead.
Sentences are in the language of LANGUAGE / LC_ALL / LC_MESSAGES / LANG (zh_CN.UTF-8: Simplified Chinese).
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from core.cli import compare, dataset, insight, inspection, maintenance, model, serve, train
from core.i18n import _, from_environment, quoted, using
from core.training import config as cfg

# Each module adds its subcommands; a new capability adds its module to this tuple.
COMMAND_MODULES = (inspection, dataset, train, model, insight, compare, maintenance, serve)
USAGE_ERROR = 2


class UsageError(ValueError):
    """Something the user can fix in the command line; the message is the one line shown."""


def main(argv: list[str] | None = None) -> int:
    with using(from_environment()):
        return _main(argv)


def _main(argv: list[str] | None) -> int:
    args = parser().parse_args(argv)
    try:
        preflight(args)
        return args.handler(args)
    except KeyboardInterrupt:
        print(_("interrupted"), file=sys.stderr)
        return 130
    except Exception as error:  # noqa: BLE001 - the promise is one line, never a traceback
        if os.environ.get("TRANSFERLAB_DEBUG"):
            raise
        print(_("error: {message}").format(message=describe(error)), file=sys.stderr)
        return USAGE_ERROR


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, not the usage block
        # argparse's own words (e.g. "the following arguments are required") stay English: Python ships none other.
        self.exit(USAGE_ERROR, _("error: {message} (see {command} --help)").format(message=message, command=self.prog)
                  + "\n")


def parser() -> argparse.ArgumentParser:
    root = _Parser(prog="python -m core", description=_("TransferLab, headless."))
    sub = root.add_subparsers(required=True, metavar="command", dest="command")
    for module in COMMAND_MODULES:
        module.register(sub)
    return root


def preflight(args: argparse.Namespace) -> None:
    """Check what every command shares before any of them writes anything (a failed train leaves no run folder)."""
    if getattr(args, "top_k", 1) is not None and getattr(args, "top_k", 1) < 1:
        raise UsageError(_("--top-k must be 1 or more"))
    if getattr(args, "run", None) is not None and not (Path(args.run) / "config.json").is_file():
        raise UsageError(_("no run folder at {path} (a run folder holds config.json)").format(path=quoted(_shown(args.run))))
    if getattr(args, "data", None) is not None and not Path(args.data).exists():
        raise UsageError(_("no file or folder at {path}").format(path=quoted(_shown(args.data))))
    if getattr(args, "device", None) is not None:
        from core.training import devices

        devices.resolve(args.device)  # raises ConfigError with the sentence
    if args.command == "train":
        _check_trainable(Path(args.data), args.task, args.target)


def describe(error: BaseException) -> str:
    """One line for any failure: ours carry a sentence; the file system's say which file and what."""
    if isinstance(error, OSError) and error.strerror:
        where = f" ('{_shown(error.filename)}')" if error.filename else ""
        return f"{error.strerror}{where}"
    if isinstance(error, (UsageError, cfg.ConfigError, ValueError, LookupError)) and str(error):
        return " ".join(str(error).split())
    return _("unexpected {kind}: {message}").format(kind=type(error).__name__, message=" ".join(str(error).split())[:300])


def _check_trainable(data_path: Path, task: str | None = None, target: str = "") -> None:
    from core import paths
    from core.data.datasets import inspect_data

    report = inspect_data(data_path, paths.home(), task=task, target=target or None)  # remembered: training reads it
    if not report.trainable:
        raise UsageError(report.error or _("this data cannot be used for training"))


def _shown(path: object) -> str:
    text = str(path)
    return text if len(text) <= 120 else f"{text[:80]}...{text[-30:]}"
