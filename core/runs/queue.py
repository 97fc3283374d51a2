"""Who trains next: fair between workspaces, first come first served within one.

A class shares one server: a student who queues five runs must not make every classmate wait behind all of them.
Jobs wait in turn by workspace (round-robin): the next job to start is the earliest one of the workspace that has
started the fewest jobs since the queue was last empty. Within a workspace, its own jobs keep their order.
A teacher may pause a class: the jobs of a held group stay queued, start nothing and hold no device (the others go
on). A `share` policy (core.runs.gpu_share) may let a job start on a device where others already run.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Callable, Protocol

from core.i18n import _, ngettext


class Queued(Protocol):
    owner: str  # the workspace the job belongs to
    slots: tuple[str, ...]  # the devices it needs
    state: str  # "queued" | "running"
    group: str | None  # e.g. the class a student's job belongs to: a paused group's jobs wait


@dataclass
class FairQueue:
    """The active jobs (queued and running) in submission order, and how many each workspace has started."""
    active: list = field(default_factory=list)
    started: Counter = field(default_factory=Counter)
    held: set = field(default_factory=set)  # groups whose queued jobs may not start (a paused class)
    share: Callable[[Queued, list], bool] | None = None  # may this job start beside these running ones?

    def is_held(self, job: Queued) -> bool:
        return getattr(job, "group", None) in self.held

    def add(self, job: Queued) -> None:
        if not self.active:
            self.started.clear()  # a new busy period: yesterday's runs do not count against anyone
        self.active.append(job)

    def remove(self, job: Queued) -> None:
        self.active.remove(job)

    def order(self) -> list:
        """The queued jobs in the order they will start."""
        turns: Counter = Counter(self.started)
        ordered, waiting = [], [j for j in self.active if j.state == "queued"]
        while waiting:  # each pick takes the earliest job of the workspace with the fewest turns so far
            pick = min(waiting, key=lambda j: (turns[j.owner], self.active.index(j)))
            turns[pick.owner] += 1
            ordered.append(pick)
            waiting.remove(pick)
        return ordered

    def to_start(self) -> list:
        """The queued jobs whose devices are free now, fairly ordered; a job that waits for devices holds them
        (a run on every GPU is not overtaken forever by single-GPU runs)."""
        running: dict[str, list] = {}
        for job in self.active:
            if job.state == "running":
                for slot in job.slots:
                    running.setdefault(slot, []).append(job)
        waiting, starting = set(), []
        for job in self.order():
            if self.is_held(job):
                continue  # a paused class's jobs neither start nor keep a device from anyone
            busy = list(dict.fromkeys(j for slot in job.slots for j in running.get(slot, [])))
            if not waiting & set(job.slots) and (not busy or (self.share is not None and self.share(job, busy))):
                starting.append(job)
                self.started[job.owner] += 1
                for slot in job.slots:
                    running.setdefault(slot, []).append(job)
            else:
                waiting |= set(job.slots)
        return starting

    def place(self, job: Queued) -> "Place":
        """Where a queued job stands: what runs on its devices now, and what starts before it."""
        running = [j for j in self.active if j.state == "running" and set(j.slots) & set(job.slots)]
        order = [j for j in self.order() if set(j.slots) & set(job.slots) and not self.is_held(j)]
        before = order[:order.index(job)] if job in order else []
        return Place(len(running), sum(j.owner == job.owner for j in before),
                     sum(j.owner != job.owner for j in before), sum(j.owner == job.owner for j in running),
                     self.is_held(job))


@dataclass(frozen=True)
class Place:
    training: int  # jobs training now on the devices this one needs
    own_before: int  # this workspace's own earlier jobs that start before it
    others_before: int  # other workspaces' jobs that start before it (their turn comes first)
    own_training: int
    paused: bool = False  # its group (class) is paused: it starts once the teacher resumes

    @property
    def ahead(self) -> int:
        return self.training + self.own_before + self.others_before

    def sentence(self) -> str:
        """Why it waits, in words (counts only: never whose runs they are)."""
        if self.paused:
            return _("Your teacher has paused training for the class; it starts when they resume.")
        if not self.ahead:
            return _("It starts in a moment.")
        training = ngettext("{count} run training now", "{count} runs training now", self.training).format(
            count=self.training)
        parts = [_("{runs} ({count} of them yours)").format(runs=training, count=self.own_training)
                 if self.own_training else training]
        if self.own_before:
            parts.append(_("{count} more of yours queued earlier").format(count=self.own_before))
        if self.others_before:
            parts.append(_("{count} of other people whose turn comes first").format(count=self.others_before))
        return _("{count} ahead of yours: {reasons}. Runs take turns by workspace, so one person's many runs never "
                 "hold up everyone else.").format(count=self.ahead, reasons=_(", ").join(parts))
