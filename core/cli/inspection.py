"""`inspect` and `backbones`: look at data and at the backbone catalogue."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from core import paths, tasks
from core.i18n import _
from core.models import backbones


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("inspect", help=_("check a dataset (.zip or folder) and print its report as JSON"))
    p.add_argument("data")
    p.add_argument("--task", choices=tasks.NAMES, default=None, help=_("read the data as this task (default: what it says)"))
    p.add_argument("--target", default="", metavar="COLUMN", help=_("the metadata column to read as the target"))
    p.set_defaults(handler=_inspect)
    sub.add_parser("backbones", help=_("list the backbones")).set_defaults(handler=_backbones)


def _inspect(args: argparse.Namespace) -> int:
    from core.data.archive import ArchiveRefused
    from core.data.datasets import inspect_data

    try:
        report = inspect_data(Path(args.data), paths.home(), task=args.task, target=args.target or None)
    except ArchiveRefused as error:
        print(json.dumps({"trainable": False, "error": str(error)}, ensure_ascii=False))
        print(str(error), file=sys.stderr)
        return 2
    print(json.dumps(report.to_json(), ensure_ascii=False, indent=2))
    if not report.trainable:
        print(report.error, file=sys.stderr)
        return 2
    return 0


def _backbones(args: argparse.Namespace) -> int:
    """The catalogue as a table; the weights column says where each backbone's weights are now."""
    rows = [("name", "params (M)", "GFLOPs", "ImageNet top-1", "input", "source", "weights")]
    for b in backbones.catalogue():
        where = backbones.weights_state(b.name)
        top1 = f"{b.imagenet_top1:.1f}" + (f" ({b.imagenet_how})" if b.imagenet_how else "")
        rows.append((b.name, f"{b.params_m}", f"{b.gflops}", top1, f"{b.input_size}", b.source, where))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())
    return 0
