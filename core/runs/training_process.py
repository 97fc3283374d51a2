"""The training process of one run, seen from the job thread that supervises it: how it is started, what it
inherits, how long a stop request is given, and how its exit becomes the run's final state when the process
could not record one itself (it crashed, or was killed)."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from core.runs.folder import Run
from core.runs.status import FINAL_STATES, process_start
from core.runs.worker import SERVER_PID_ENV, SERVER_START_ENV
from core.training import starts
from core.training.events import RUN_CANCELLED, RUN_FAILED, EventLog

ROOT = Path(__file__).resolve().parents[2]  # the folder holding the `core` package
CANCEL_GRACE_S = 60.0  # a run that ignores its stop file this long is terminated (e.g. stuck in a collective)
LOG_TAIL_CHARS = 4000


def command(run_dir: Path, work_dir: Path, slots: tuple[str, ...]) -> list[str]:
    worker = ["-m", "core.runs.worker", str(run_dir), "--work-dir", str(work_dir)]
    if len(slots) > 1:  # every GPU: PyTorch's own launcher, one process per GPU, DDP inside fit()
        return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={len(slots)}",
                *worker]
    return [sys.executable, *worker]


def environment_for(slots: tuple[str, ...]) -> dict[str, str]:
    """The child's environment: `core` importable however the server was started; only its GPU(s) visible; the
    server named, so the child ends with it (core.runs.worker)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [env.get("PYTHONPATH")])])
    env["PYTHONUNBUFFERED"] = "1"
    # OpenMP threads that spin while they wait collapse when anything else (page views, browsers) wants the
    # same cores: measured 79 epochs/min alone against 3 with five tabs open. Waiting threads sleep instead.
    env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    env[SERVER_PID_ENV], env[SERVER_START_ENV] = str(os.getpid()), process_start(os.getpid()) or ""
    gpus = [slot.split(":")[1] for slot in slots if slot.startswith("cuda:")]
    if gpus:
        env["CUDA_VISIBLE_DEVICES"] = ",".join(gpus)
    return env


def start(run: Run, argv: list[str], env: dict[str, str]) -> subprocess.Popen:
    """The process, in a session of its own (a cancel that must kill it kills its whole group), logging to the run."""
    with run.worker_log.open("ab") as log:
        return subprocess.Popen(argv, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True)


def remember_cold_start(run: Run, since: float | None) -> None:
    """A run that started a new process (none was waiting): how long that process took to begin training, for the
    time estimate of the next cold start (core.training.estimate)."""
    started = run.status().get("started") if since is not None else None
    if isinstance(started, (int, float)) and started > since:
        starts.remember_process_start(started - since)


def wait(process: subprocess.Popen, run: Run) -> int:
    """Wait for the training process; one that ignores its stop file for CANCEL_GRACE_S is terminated."""
    stop_seen: float | None = None
    while True:
        try:
            return process.wait(timeout=1.0)
        except subprocess.TimeoutExpired:
            pass
        if stop_seen is None and run.stop.is_set():
            stop_seen = time.monotonic()
        if stop_seen is not None and time.monotonic() - stop_seen > CANCEL_GRACE_S:
            late = time.monotonic() - stop_seen > CANCEL_GRACE_S + 10
            try:
                os.killpg(process.pid, signal.SIGKILL if late else signal.SIGTERM)
            except ProcessLookupError:
                pass


def outcome(run: Run, exit_code: int) -> str:
    """The run's final state: what the process recorded, or failed with the reason it died."""
    recorded = run.status()
    if recorded.get("state") in FINAL_STATES:
        return recorded["state"]
    if exit_code == 0 and run.stop.is_set():
        return record_end(run, "cancelled", RUN_CANCELLED, "Cancelled by the user.")
    return record_end(run, "failed", RUN_FAILED, explain_exit(exit_code), details=log_tail(run))


def explain_exit(exit_code: int) -> str:
    if exit_code < 0:
        name = signal.Signals(-exit_code).name if -exit_code in signal.valid_signals() else str(-exit_code)
        if -exit_code == signal.SIGKILL:
            return (f"The training process was killed by the operating system (signal {name}), most often because "
                    "the computer ran out of memory. Try a smaller batch size, a smaller image size or a smaller "
                    "backbone.")
        return f"The training process was stopped by signal {name} before it finished."
    return (f"The training process ended unexpectedly (exit code {exit_code}) before it finished. The technical "
            "details show its last words.")


def record_end(run: Run, state: str, kind: str, message: str, **fields: str) -> str:
    """Written by the job thread only when no training process is writing (never started, or gone)."""
    run.set_status(state, message=message, finished=time.time(), **fields)
    EventLog(run.metrics_file).emit(kind, message=message, **fields)
    return state


def log_tail(run: Run) -> str:
    try:
        return run.worker_log.read_text(encoding="utf-8", errors="replace")[-LOG_TAIL_CHARS:]
    except OSError:
        return ""
