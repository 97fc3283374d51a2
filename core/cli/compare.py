"""`compare`: every backbone available here, measured on your data by cross-validation; prints the leaderboard.

It runs as a job of the same job manager as training (a worker process, the fair queue), like `train`."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from core import paths
from core.models import backbones
from core.training.config import DEVICES, RANGES
from core.training.events import COMPARE_PROGRESS, TERMINAL_KINDS


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("compare", help="compare the backbones available here on your data (cross-validated "
                                       "frozen features); prints the leaderboard as JSON")
    p.add_argument("--data", required=True)
    p.add_argument("--backbones", default="", metavar="A,B", help="comma-separated names (default: every backbone "
                   "whose weights are on this computer; nothing is downloaded)")
    p.add_argument("--folds", type=int, default=5, help="2 to 20; below 10 images a class: leave-one-out instead")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", choices=DEVICES, default="auto")
    p.add_argument("--image-size", type=int, default=None, help="default: each backbone's own input size")
    p.add_argument("--out", default="comparisons", help="where the comparison's folder goes")
    p.set_defaults(handler=_compare)


def _compare(args: argparse.Namespace) -> int:
    from core.cli import UsageError
    from core.runs.compare_job import CompareRequest, result
    from core.runs.jobs import JobManager

    low, high = RANGES["image_size"]
    if args.image_size is not None and not low <= args.image_size <= high:
        raise UsageError(f"--image-size must be between {low:g} and {high:g}")
    names = [n.strip() for n in args.backbones.split(",") if n.strip()]
    unknown = [n for n in names if n not in backbones.NAMES]
    if unknown:  # said now, before a job is queued for it
        raise UsageError(f"There is no backbone '{unknown[0]}'; choose from: {', '.join(backbones.NAMES)}.")
    request = CompareRequest(str(Path(args.data).resolve()), names, args.folds, args.seed, args.device,
                             args.image_size, data_name=Path(args.data).name)
    manager = JobManager(paths.home())
    job = manager.submit_compare(request, Path(args.out), owner=str(Path(args.out).resolve()))
    tail = job.run.tail()
    try:
        while not job.wait(0.3):
            _print(tail.read())
    except KeyboardInterrupt:
        print("cancelling...", file=sys.stderr)
        manager.cancel(job.id)
        job.wait()
    _print(tail.read_to_end())
    board = result(job.run_dir)
    if board is not None and board.get("refusal"):
        raise UsageError(board["refusal"])
    if board is None:
        raise UsageError(job.run.status().get("message") or "the comparison ended without a result")
    print(json.dumps({"folder": str(job.run_dir), **board}))
    return 130 if board.get("cancelled") else 0


def _print(records: list[dict]) -> None:
    for record in records:
        if record["event"] == COMPARE_PROGRESS and record.get("stage") in ("features", "done"):
            if record["stage"] == "features" and record.get("done"):
                continue  # one line a backbone, not one a batch
            print(f"[{record['step'] + 1}/{record['steps']}] {record['backbone']}: {record['stage']}", file=sys.stderr)
        elif record["event"] in TERMINAL_KINDS:
            print(record.get("message", record["event"]), file=sys.stderr)
