"""How long a queued run will wait, honestly: from how long runs actually took on this server.

The estimate is what the runs ahead of it should take: the rest of those training now, then the queued ones ahead,
each as long as recent runs here took (their median; the range from the quickest to the slowest). Before any run
has finished here there is no honest number, and the sentence says so instead of guessing.
"""
from __future__ import annotations

import statistics
import time
from dataclasses import dataclass

from core.i18n import _, duration
from core.runs.jobs import Job, JobManager
from core.runs.queue import Place

RECENT = 20  # finished runs the estimate learns from


@dataclass(frozen=True)
class Wait:
    place: Place
    seconds: float | None  # the typical wait; None when unknown (nothing finished yet, or paused)
    low: float | None = None
    high: float | None = None

    def full(self) -> str:
        """Where the run stands and how long it should wait (the place said once, also while paused)."""
        return self.sentence() if self.place.paused else _("{place} {wait}").format(place=self.place.sentence(),
                                                                                   wait=self.sentence())

    def sentence(self) -> str:
        if self.place.paused:
            return self.place.sentence()
        if self.seconds is None:
            return _("No run has finished on this server yet, so there is no estimate of the wait.")
        if self.seconds < 5:
            return _("It should start within seconds.")
        if self.low is None or self.high is None or self.high - self.low < 5:
            return _("It should start in about {time}, judging by how long recent runs took here.").format(
                time=duration(self.seconds))
        return _("It should start in about {time} (between {low} and {high}), judging by how long recent runs took "
                 "here.").format(time=duration(self.seconds), low=duration(self.low), high=duration(self.high))


def recent_durations(manager: JobManager, limit: int = RECENT) -> list[float]:
    """Seconds from start to end of the last finished runs this manager ran, oldest first."""
    found = []
    for job in manager.jobs():
        if job.state != "finished":
            continue
        status = job.run.status()
        started, finished = status.get("started"), status.get("finished")
        if isinstance(started, (int, float)) and isinstance(finished, (int, float)) and finished >= started:
            found.append((finished, finished - started))
    return [duration for _, duration in sorted(found)[-limit:]]


def estimate(manager: JobManager, job_id: str, now: float | None = None) -> Wait | None:
    """The wait of a queued job, or None when it is not queued on this manager."""
    place = manager.place(job_id)
    job = manager.get(job_id)
    if place is None or job is None:
        return None
    durations = recent_durations(manager)
    if place.paused or not durations:
        return Wait(place, None)
    running = [j for j in manager.active() if j.state == "running" and set(j.slots) & set(job.slots)]
    return Wait(place, *_spans(durations, running, place.own_before + place.others_before, now))


def before_a_new_run(manager: JobManager, device: str = "auto", now: float | None = None) -> tuple[float, ...] | None:
    """(typical, quickest, slowest) seconds a run submitted now on `device` waits for the runs already running or
    queued there (each as long as recent runs here took); None when something waits but nothing finished yet."""
    slots = set(manager._slots_for(device, False))
    ahead = [j for j in manager.active() if set(j.slots) & slots]
    if not ahead:
        return (0.0, 0.0, 0.0)
    durations = recent_durations(manager)
    if not durations:
        return None
    running = [j for j in ahead if j.state == "running"]
    return _spans(durations, running, len(ahead) - len(running), now)


def _spans(durations: list[float], running: list[Job], queued_ahead: int, now: float | None) -> tuple[float, ...]:
    now = time.time() if now is None else now
    parallel = max(len(running), 1)  # several at once only where jobs share a GPU

    def total(each: float) -> float:
        left = [max(each - _elapsed(j, now), 0.0) for j in running]
        return (min(left) if left and parallel > 1 else sum(left)) + queued_ahead * each / parallel
    return total(statistics.median(durations)), total(min(durations)), total(max(durations))


def _elapsed(job: Job, now: float) -> float:
    started = job.run.status().get("started")
    return max(now - started, 0.0) if isinstance(started, (int, float)) else 0.0
