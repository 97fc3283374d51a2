"""Background jobs: a queue per device (the CPU, or each GPU: cuda:0, cuda:1, ...), one training process per run.

Plain Python: the app keeps one JobManager per server process (st.cache_resource), the CLI makes its own. A job
thread starts the run's training process (`python -m core.runs.worker RUN_DIR`, or torchrun for a run on every
GPU), waits for it and turns a crash into a failed run with a sentence. The process reports only through the run
folder; the server only reads it, so watching a run never slows it down.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from core.runs import folder as runs
from core.training.config import ConfigError, TrainConfig
from core.training.events import RUN_CANCELLED, RUN_FAILED, EventLog
from core.runs.folder import METRICS, WORKER_LOG, Run
from core.runs.standby import Standby

ROOT = Path(__file__).resolve().parents[2]  # the folder holding the `core` package
CANCEL_GRACE_S = 60.0  # a run that ignores its stop file this long is terminated (e.g. stuck in a collective)
LOG_TAIL_CHARS = 4000


@dataclass
class Job:
    id: str
    run_dir: Path
    config: TrainConfig
    slots: tuple[str, ...]  # the devices it needs: ("cpu",), ("cuda:1",), or every GPU for a torchrun launch
    state: str = "queued"
    pid: int | None = None
    done: threading.Event = field(default_factory=threading.Event)

    @property
    def run(self) -> Run:
        return Run(self.run_dir)

    @property
    def device_label(self) -> str:
        return describe_slots(self.slots)

    def wait(self, timeout: float | None = None) -> bool:
        return self.done.wait(timeout)


def describe_slots(slots: tuple[str, ...]) -> str:
    if len(slots) > 1:
        return f"all {len(slots)} GPUs"
    slot = slots[0]
    if slot.startswith("cuda:"):
        return f"GPU {slot.split(':')[1]}"
    return {"cpu": "the CPU", "mps": "the Apple GPU"}.get(slot, slot)


class JobManager:
    def __init__(self, work_dir: Path, gpu_count: int | None = None, mps: bool | None = None,
                 standby: bool = False) -> None:
        """standby: keep a training process per device imported and waiting (core.runs.standby), for a
        server that will run many jobs; the CLI, running one, does without."""
        from core.training import devices

        self.work_dir = Path(work_dir)
        if gpu_count is None:
            import torch

            gpu_count = torch.cuda.device_count()
        self.gpus = [f"cuda:{i}" for i in range(gpu_count)]
        self.mps = devices._mps_available() if mps is None else mps
        self._jobs: dict[str, Job] = {}
        self._active: list[Job] = []  # queued and running jobs, in the order they were submitted
        self._lock = threading.Lock()
        self.standby = Standby(self.work_dir) if standby else None
        if self.standby is not None:
            for slot in self.gpus or (["mps"] if self.mps else ["cpu"]):
                self.standby.start(slot, self.environment_for((slot,)))

    def submit(self, config: TrainConfig, runs_root: Path, all_gpus: bool = False) -> Job:
        """Create the run folder and queue the job on its device. Raises ConfigError at once for a device that
        is not there, rather than failing later in the training process."""
        slots = self._slots_for(config.device, all_gpus)
        run_dir = runs.create(Path(runs_root), config)
        job = Job(run_dir.name, run_dir, config, slots)
        Run(run_dir).set_status("queued", device=job.device_label)
        with self._lock:
            self._jobs[job.id] = job
            self._active.append(job)
            self._dispatch()
        return job

    def get(self, job_id: str) -> Job | None:
        with self._lock:
            return self._jobs.get(job_id)

    def jobs(self) -> list[Job]:
        with self._lock:
            return list(self._jobs.values())

    def cancel(self, job_id: str) -> bool:
        """Ask a job to stop: the training process checks the stop file every batch. A queued job ends at once."""
        job = self.get(job_id)
        if job is None or job.done.is_set():
            return False
        job.run.stop.set()
        with self._lock:
            if job.state != "queued":
                return True
            self._active.remove(job)
            job.state = _record_end(job.run, "cancelled", RUN_CANCELLED, "Cancelled before it started.")
            self._dispatch()
        job.done.set()
        return True

    def ahead_of(self, job_id: str) -> int:
        """How many jobs run or wait before this one on its device(s) (0 when it is running)."""
        with self._lock:
            job = self._jobs.get(job_id)
            if job is None or job.state != "queued":
                return 0
            earlier = self._active[:self._active.index(job)]
            return sum(1 for other in earlier if set(other.slots) & set(job.slots))

    def _slots_for(self, choice: str, all_gpus: bool) -> tuple[str, ...]:
        if choice == "auto":
            choice = "cuda" if self.gpus else "mps" if self.mps else "cpu"
        if choice == "cuda":
            if not self.gpus:
                raise ConfigError("device 'cuda' was chosen but this computer has no usable NVIDIA GPU; use 'auto' "
                                  "or 'cpu'")
            if all_gpus and len(self.gpus) > 1:
                return tuple(self.gpus)
            with self._lock:  # the GPU with the fewest jobs running or waiting; the lowest number on a tie
                return (min(self.gpus, key=lambda g: sum(g in j.slots for j in self._active)),)
        if choice == "mps":
            if not self.mps:
                raise ConfigError("device 'mps' was chosen but this computer has no Apple GPU; use 'auto' or 'cpu'")
            return ("mps",)
        return ("cpu",)

    def _dispatch(self) -> None:
        """Start every queued job whose devices are free, first come first served (call with the lock held)."""
        claimed: set[str] = set()
        for job in self._active:
            if job.state == "queued" and not claimed & set(job.slots):
                job.state = "running"
                threading.Thread(target=self._supervise, args=(job,), name=f"transferlab-{job.id[:8]}",
                                 daemon=True).start()
            claimed |= set(job.slots)  # a waiting job holds its place: later jobs do not overtake it

    def _supervise(self, job: Job) -> None:
        try:
            state = self._run_process(job)
        except Exception as error:  # e.g. the disk filled up: the server and the next jobs must live on
            state = "failed"
            try:
                _record_end(job.run, "failed", RUN_FAILED, f"The run could not be started or recorded ({error}).")
            except Exception:
                pass
        with self._lock:
            job.state = state
            self._active.remove(job)
            self._dispatch()
        job.done.set()

    def _run_process(self, job: Job) -> str:
        run = job.run
        if run.stop.is_set():
            return _record_end(run, "cancelled", RUN_CANCELLED, "Cancelled before it started.")
        # Written before the process exists, so it never overwrites what the process writes once it is up.
        run.set_status("running", device=job.device_label)
        single = len(job.slots) == 1 and self.standby is not None
        process = self.standby.hand_over(job.slots[0], job.run_dir) if single else None
        if process is None:
            with run.file(WORKER_LOG).open("ab") as log:
                process = subprocess.Popen(self.command(job), cwd=ROOT, env=self.environment(job), stdout=log,
                                           stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        job.pid = process.pid
        try:
            return _outcome(run, _wait(process, run))
        finally:  # the next run of this device finds one waiting; started now, its imports never slow this run
            if single:
                self.standby.start(job.slots[0], self.environment(job))

    def command(self, job: Job) -> list[str]:
        worker = ["-m", "core.runs.worker", str(job.run_dir), "--work-dir", str(self.work_dir)]
        if len(job.slots) > 1:  # every GPU: PyTorch's own launcher, one process per GPU, DDP inside fit()
            return [sys.executable, "-m", "torch.distributed.run", "--standalone",
                    f"--nproc_per_node={len(job.slots)}", *worker]
        return [sys.executable, *worker]

    def environment(self, job: Job) -> dict[str, str]:
        return self.environment_for(job.slots)

    def environment_for(self, slots: tuple[str, ...]) -> dict[str, str]:
        """The child's environment: `core` importable however the server was started; only its GPU(s) visible."""
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [env.get("PYTHONPATH")])])
        env["PYTHONUNBUFFERED"] = "1"
        # OpenMP threads that spin while they wait collapse when anything else (page views, browsers) wants the
        # same cores: measured 79 epochs/min alone against 3 with five tabs open. Waiting threads sleep instead.
        env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
        gpus = [slot.split(":")[1] for slot in slots if slot.startswith("cuda:")]
        if gpus:
            env["CUDA_VISIBLE_DEVICES"] = ",".join(gpus)
        return env


def _wait(process: subprocess.Popen, run: Run) -> int:
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


def _outcome(run: Run, exit_code: int) -> str:
    """The run's final state: what the process recorded, or failed with the reason it died."""
    recorded = run.status()
    if recorded.get("state") in runs.FINAL_STATES:
        return recorded["state"]
    if exit_code == 0 and run.stop.is_set():
        return _record_end(run, "cancelled", RUN_CANCELLED, "Cancelled by the user.")
    return _record_end(run, "failed", RUN_FAILED, explain_exit(exit_code), details=_log_tail(run))


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


def _record_end(run: Run, state: str, kind: str, message: str, **fields: str) -> str:
    """Written by the job thread only when no training process is writing (never started, or gone)."""
    run.set_status(state, message=message, finished=time.time(), **fields)
    EventLog(run.file(METRICS)).emit(kind, message=message, **fields)
    return state


def _log_tail(run: Run) -> str:
    try:
        return run.file(WORKER_LOG).read_text(encoding="utf-8", errors="replace")[-LOG_TAIL_CHARS:]
    except OSError:
        return ""
