"""The training process: `python -m core.runs.worker RUN_DIR [--work-dir DIR]`.

Started by the job thread (core.runs.jobs), one process per run, so that the web server's page views never
compete with training for the interpreter and a crash here never takes the server down. It reads the run's
config.json, trains, and reports only through the run folder (metrics.jsonl, status.json, the model files).
Stopping is the run's STOP file, checked every batch by every process of the run (torchrun included).
Imports stay lean: no streamlit, nothing the run does not need.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

WORKER_NICENESS = 5


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m core.runs.worker")
    parser.add_argument("run_dir", type=Path, nargs="?")
    parser.add_argument("--work-dir", type=Path, default=None, help="default: $TRANSFERLAB_HOME")
    parser.add_argument("--standby", action="store_true",
                        help="import everything, then wait for the run folder on stdin (core.runs.standby)")
    args = parser.parse_args(argv)
    try:  # the web server answers first, training takes every cycle it leaves (it needs few: it only reads files)
        os.nice(WORKER_NICENESS)
    except OSError:
        pass
    if args.standby:
        args.run_dir = _wait_for_a_run()
        if args.run_dir is None:
            return 0  # the server went away before it needed this process
    if args.run_dir is None:
        parser.error("the run folder is missing")

    from core import paths
    from core.models.features import FeatureCache
    from core.runs import pipeline as runner
    from core.training import distributed
    from core.training.events import EventLog
    from core.runs.folder import METRICS, Run

    run = Run(args.run_dir)
    work_dir = args.work_dir or paths.home()
    if distributed.is_distributed():  # "Use all N GPUs": torchrun started one of these per GPU; DDP inside
        from core.runs import launcher as ddp

        return ddp.train_existing(run.path, work_dir)
    main_process = distributed.is_main()
    events = EventLog(run.file(METRICS) if main_process else None)  # only rank 0 writes the event log
    # On disk, so it stays effective from one process to the next; scoped to the runs' folder (one workspace), so
    # a new workspace never learns from the cache that another one trained on the same images.
    cache = FeatureCache(work_dir / "feature-cache").scoped(str(run.path.parent.resolve()))
    state = runner.execute(run.train_config(), run.path, events, run.stop, work_dir, cache)
    print(f"run {run.id}: {state}", file=sys.stderr)
    # Non-zero on failure: under torchrun that ends the other ranks at once instead of leaving them waiting.
    return 0 if state in ("finished", "cancelled") else 1


def _wait_for_a_run() -> Path | None:
    """Do the slow imports now, then sleep until the job manager names a run folder; from then on everything this
    process prints goes to that run's worker log, as if it had been started for it."""
    import core.insight.trust  # noqa: F401 - what a run imports later: torch, torchvision, sklearn
    import core.runs.pipeline  # noqa: F401
    import core.training.augmented_views  # noqa: F401
    from core.runs.folder import WORKER_LOG

    line = sys.stdin.readline().strip()
    if not line:
        return None
    log = os.open(Path(line) / WORKER_LOG, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    os.dup2(log, 1)
    os.dup2(log, 2)
    os.close(log)
    return Path(line)


if __name__ == "__main__":
    sys.exit(main())
