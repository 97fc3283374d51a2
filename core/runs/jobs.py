"""Background jobs: a queue per device (the CPU, or each GPU: cuda:0, cuda:1, ...), fair between workspaces, one
training process per run.

Plain Python: the app keeps one JobManager per server process (st.cache_resource), the CLI makes its own. A job
thread starts the run's training process (core.runs.training_process), waits for it and turns a crash into a failed
run with a sentence. The process reports only through the run folder; the server only reads it, so watching a run
never slows it down.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from core.runs import compare_job, gpu_share, training_process
from core.runs.compare_job import CompareRequest
from core.runs.folder import Run, create
from core.runs.queue import FairQueue, Place
from core.runs.standby import Standby
from core.training import starts
from core.training.config import ConfigError, TrainConfig
from core.training.events import RUN_CANCELLED, RUN_FAILED

ROOT = training_process.ROOT


@dataclass(eq=False)
class Job:
    id: str
    run_dir: Path
    config: TrainConfig | CompareRequest  # a training run, or a comparison (core.runs.compare_job)
    slots: tuple[str, ...]  # the devices it needs: ("cpu",), ("cuda:1",), or every GPU for a torchrun launch
    owner: str  # the workspace it belongs to: the queue takes workspaces in turn
    group: str | None = None  # the class it belongs to, if any: a paused class's jobs wait
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
        self._queue = FairQueue()
        if self.gpus and gpu_share.max_jobs_per_gpu() > 1:  # off by default: see core/runs/gpu_share.py
            self._queue.share = gpu_share.GpuSharing(gpu_share.max_jobs_per_gpu(), gpu_share.cuda_memory)
        self._lock = threading.Lock()
        # Set by whoever knows who may train what (core.classroom.attach): called before a run folder exists, it
        # raises ConfigError with a sentence or returns the job's group (its class), else None.
        self.admit: Callable[[TrainConfig, Path, bool], str | None] | None = None
        self.standby = Standby(self.work_dir) if standby else None
        if self.standby is not None:
            for slot in self.gpus or (["mps"] if self.mps else ["cpu"]):
                self.standby.start(slot, training_process.environment_for((slot,)))

    def submit(self, config: TrainConfig, runs_root: Path, all_gpus: bool = False, owner: str | None = None) -> Job:
        """Create the run folder and queue the job on its device. Raises ConfigError at once for a device that
        is not there, rather than failing later in the training process. `owner`: the workspace (by default the
        runs folder, one per workspace)."""
        slots = self._slots_for(config.device, all_gpus)
        group = self.admit(config, Path(runs_root), all_gpus) if self.admit is not None else None
        run = create(Path(runs_root), config, device=describe_slots(slots))
        job = Job(run.id, run.path, config, slots, owner or str(Path(runs_root).resolve()), group)
        with self._lock:
            self._jobs[job.id] = job
            self._queue.add(job)
            self._dispatch()
        return job

    def start_delay_s(self, device: str, all_gpus: bool = False) -> float:
        """Seconds a run submitted now on `device` spends before training, the queue aside: ~0 when a training
        process waits with its imports done, else what is left of this machine's measured process start."""
        slots = self._slots_for(device, all_gpus)
        waiting = self.standby.start_delay(slots[0]) if self.standby is not None and len(slots) == 1 else None
        return starts.process_start_s() if waiting is None else waiting

    def submit_compare(self, request: CompareRequest, root: Path, owner: str) -> Job:
        """Queue a comparison of backbones (core.runs.compare_job) like a training run: in the same fair queue, on
        its device, in a worker process. `root`: where its folder goes (not the runs folder: it is not a run)."""
        slots = self._slots_for(request.device, False)
        run = compare_job.create(Path(root), request)
        job = Job(run.id, run.path, request, slots, owner)
        with self._lock:
            self._jobs[job.id] = job
            self._queue.add(job)
            self._dispatch()
        return job

    def get(self, job_id: str) -> Job | None:
        with self._lock:
            return self._jobs.get(job_id)

    def jobs(self) -> list[Job]:
        with self._lock:
            return list(self._jobs.values())

    def active(self) -> list[Job]:
        """Queued and running jobs: running first, then the queue in the order it will start."""
        with self._lock:
            running = [j for j in self._queue.active if j.state == "running"]
            return running + self._queue.order()

    def cancel(self, job_id: str) -> bool:
        """Ask a job to stop: the training process checks the stop file every batch. A queued job ends at once."""
        job = self.get(job_id)
        if job is None or job.done.is_set():
            return False
        job.run.stop.set()
        with self._lock:
            if job.state != "queued":
                return True
            self._queue.remove(job)
            job.state = training_process.record_end(job.run, "cancelled", RUN_CANCELLED, "Cancelled before it started.")
            self._dispatch()
        job.done.set()
        return True

    def hold(self, group: str) -> None:
        """Queued jobs of `group` wait (running ones go on), and so do those submitted until `release`."""
        with self._lock:
            self._queue.held.add(group)

    def release(self, group: str) -> None:
        with self._lock:
            self._queue.held.discard(group)
            self._dispatch()

    def is_held(self, group: str | None) -> bool:
        with self._lock:
            return group in self._queue.held

    def place(self, job_id: str) -> Place | None:
        """Where a queued job stands (None when it is not queued here)."""
        with self._lock:
            job = self._jobs.get(job_id)
            return self._queue.place(job) if job is not None and job.state == "queued" else None

    def ahead_of(self, job_id: str) -> int:
        """How many jobs run or start before this one on its device(s) (0 when it is running)."""
        place = self.place(job_id)
        return place.ahead if place else 0

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
                return (min(self.gpus, key=lambda g: sum(g in j.slots for j in self._queue.active)),)
        if choice == "mps":
            if not self.mps:
                raise ConfigError("device 'mps' was chosen but this computer has no Apple GPU; use 'auto' or 'cpu'")
            return ("mps",)
        return ("cpu",)

    def _dispatch(self) -> None:
        """Start every queued job whose devices are free, in the queue's fair order (call with the lock held)."""
        for job in self._queue.to_start():
            job.state = "running"
            threading.Thread(target=self._supervise, args=(job,), name=f"transferlab-{job.id[:8]}",
                             daemon=True).start()

    def _supervise(self, job: Job) -> None:
        try:
            state = self._run_process(job)
        except Exception as error:  # e.g. the disk filled up: the server and the next jobs must live on
            state = "failed"
            try:
                training_process.record_end(job.run, "failed", RUN_FAILED,
                                            f"The run could not be started or recorded ({error}).")
            except Exception:
                pass
        with self._lock:
            job.state = state
            self._queue.remove(job)
            self._dispatch()
        job.done.set()

    def _run_process(self, job: Job) -> str:
        run = job.run
        if run.stop.is_set():
            return training_process.record_end(run, "cancelled", RUN_CANCELLED, "Cancelled before it started.")
        single = len(job.slots) == 1 and self.standby is not None
        process = self.standby.hand_over(job.slots[0], job.run_dir) if single else None
        cold_since = None if process is not None else time.time()
        if process is None:
            process = training_process.start(run, self.command(job), self.environment(job))
        job.pid = process.pid
        try:
            return training_process.outcome(run, training_process.wait(process, run))
        finally:  # the next run of this device finds one waiting; started now, its imports never slow this run
            training_process.remember_cold_start(run, cold_since)
            if single:
                self.standby.start(job.slots[0], training_process.environment_for(job.slots))

    # What tests and the benches inspect: the exact command and environment of a job's process.
    def command(self, job: Job) -> list[str]:
        return training_process.command(job.run_dir, self.work_dir, job.slots)

    def environment(self, job: Job) -> dict[str, str]:
        return training_process.environment_for(job.slots)
