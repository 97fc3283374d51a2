"""Background jobs: one worker thread per device (jobs on one GPU queue), cancel, status, lookup by id.

Plain Python: the app keeps one JobManager per server process (st.cache_resource), the CLI and tests
make their own. The worker never touches the UI; pages read each job's EventLog and run folder.
"""
from __future__ import annotations

import queue
import threading
from dataclasses import dataclass, field
from pathlib import Path

from core.models.features import FeatureCache
from core.training import devices, runner, runs
from core.training.config import TrainConfig
from core.training.events import EventLog


@dataclass
class Job:
    id: str
    run_dir: Path
    config: TrainConfig
    device_key: str
    events: EventLog
    stop: threading.Event = field(default_factory=threading.Event)
    state: str = "queued"
    done: threading.Event = field(default_factory=threading.Event)

    def wait(self, timeout: float | None = None) -> bool:
        return self.done.wait(timeout)


class JobManager:
    def __init__(self, work_dir: Path, cache: FeatureCache | None = None) -> None:
        self.work_dir = Path(work_dir)
        self.cache = cache or FeatureCache(self.work_dir / "feature-cache")
        self._jobs: dict[str, Job] = {}
        self._queues: dict[str, queue.Queue[Job]] = {}
        self._waiting: dict[str, list[str]] = {}
        self._lock = threading.Lock()

    def submit(self, config: TrainConfig, runs_root: Path) -> Job:
        """Create the run folder and queue the job on its device's worker. Raises ConfigError at once
        for a device that is not there, rather than failing later in the worker."""
        device_key = _device_key(config.device)
        run_dir = runs.create(Path(runs_root), config)
        job = Job(run_dir.name, run_dir, config, device_key, EventLog(run_dir / "metrics.jsonl"))
        with self._lock:
            self._jobs[job.id] = job
            self._waiting.setdefault(device_key, []).append(job.id)
            if device_key not in self._queues:
                self._queues[device_key] = queue.Queue()
                threading.Thread(target=self._work, args=(device_key,), name=f"transferlab-{device_key}",
                                 daemon=True).start()
            self._queues[device_key].put(job)
        return job

    def get(self, job_id: str) -> Job | None:
        with self._lock:
            return self._jobs.get(job_id)

    def jobs(self) -> list[Job]:
        with self._lock:
            return list(self._jobs.values())

    def cancel(self, job_id: str) -> bool:
        job = self.get(job_id)
        if job is None or job.done.is_set():
            return False
        job.stop.set()  # checked every batch: takes effect within one batch
        return True

    def ahead_of(self, job_id: str) -> int:
        """How many jobs run or wait before this one on its device (0 when it is running)."""
        with self._lock:
            job = self._jobs.get(job_id)
            if job is None or job.state != "queued":
                return 0
            return self._waiting.get(job.device_key, []).index(job_id)

    def _work(self, device_key: str) -> None:
        while True:
            job = self._queues[device_key].get()
            job.state = "running"
            try:
                job.state = runner.execute(job.config, job.run_dir, job.events, job.stop, self.work_dir, self.cache)
            except Exception as error:  # e.g. the disk filled while writing status: the worker must live on
                job.state = "failed"
                job.events.emit("run_failed", message=f"The run could not be recorded ({error}).")
            finally:
                with self._lock:
                    self._waiting[device_key].remove(job.id)
                job.done.set()


def _device_key(choice: str) -> str:
    return devices.resolve(choice).device.type
