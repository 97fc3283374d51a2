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
import threading
import time
from pathlib import Path

WORKER_NICENESS = 5
SERVER_PID_ENV, SERVER_START_ENV = "TRANSFERLAB_SERVER_PID", "TRANSFERLAB_SERVER_PID_START"
WATCH_INTERVAL_S = 1.0
EXIT_SERVER_GONE = 75


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m core.runs.worker")
    parser.add_argument("run_dir", type=Path, nargs="?")
    parser.add_argument("--work-dir", type=Path, default=None, help="default: $TRANSFERLAB_HOME")
    parser.add_argument("--standby", action="store_true",
                        help="import everything, then wait for the run folder on stdin (core.runs.standby)")
    parser.add_argument("--ready-file", type=Path, default=None,
                        help="with --standby: created (empty) once the imports are done")
    args = parser.parse_args(argv)
    try:  # the web server answers first, training takes every cycle it leaves (it needs few: it only reads files)
        os.nice(WORKER_NICENESS)
    except OSError:
        pass
    if args.standby:
        args.run_dir = _wait_for_a_run(args.ready_file)
        if args.run_dir is None:
            return 0  # the server went away before it needed this process
    if args.run_dir is None:
        parser.error("the run folder is missing")

    from core import paths
    from core.runs import compare_job
    from core.runs.pipeline import start_run
    from core.training import distributed

    _end_with_the_server()
    work_dir = args.work_dir or paths.home()
    if compare_job.is_compare(args.run_dir):  # a comparison of backbones, queued like a run
        state = compare_job.execute(args.run_dir, work_dir)
        print(f"comparison {Path(args.run_dir).name}: {state}", file=sys.stderr)
        return 0 if state in ("finished", "cancelled") else 1
    if distributed.is_distributed():  # "Use all N GPUs": torchrun started one of these per GPU; DDP inside
        from core.runs import launcher

        return launcher.train_existing(args.run_dir, work_dir)
    state = start_run(args.run_dir, work_dir)
    print(f"run {Path(args.run_dir).name}: {state}", file=sys.stderr)
    return 0 if state in ("finished", "cancelled") else 1


def _end_with_the_server() -> None:
    """A training process must not outlive the server that started it (a killed server's orphan would train on,
    unknown to the restarted server, beside its next job). The job manager names itself in the environment; a
    thread here checks once a second that it is still there, and ends this process when it is not: the run then
    reads as interrupted. (A parent-death signal would fire when the thread that started us ends, not the server.)"""
    from core.runs.status import process_alive

    pid, started = os.environ.get(SERVER_PID_ENV), os.environ.get(SERVER_START_ENV) or None
    if not (pid and pid.isdigit()):
        return

    def watch() -> None:
        while process_alive(int(pid), started):
            time.sleep(WATCH_INTERVAL_S)
        print("The server that started this training is gone: stopping.", file=sys.stderr, flush=True)
        os._exit(EXIT_SERVER_GONE)

    threading.Thread(target=watch, name="transferlab-server-watch", daemon=True).start()


def _wait_for_a_run(ready_file: Path | None) -> Path | None:
    """Do the slow imports now, then sleep until the job manager names a run folder; from then on everything this
    process prints goes to that run's worker log, as if it had been started for it."""
    import core.runs.pipeline  # noqa: F401 - what a run imports later: torch, torchvision, sklearn
    from core.runs.folder import WORKER_LOG

    if ready_file is not None:
        try:
            ready_file.touch()
        except OSError:  # its folder went with the server's work folder: nothing waits for the marker
            pass
    line = sys.stdin.readline().strip()
    if not line:
        return None
    log = os.open(Path(line) / WORKER_LOG, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    os.dup2(log, 1)
    os.dup2(log, 2)
    os.close(log)
    return Path(line)


if __name__ == "__main__":
    # Everything the run leaves is on disk by now (each file written whole, closed). The interpreter's own teardown
    # of torch and scikit-learn took 2-3 s on 2 CPU cores, and the next queued run waited for it: skip it.
    exit_code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(exit_code)
