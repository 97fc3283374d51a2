"""A run's progress in one typed summary, built from its events: read by the live view and the command line.

`RunProgress` takes the event records incrementally (only what is new since the last read), keeps the per-batch
series bounded, and `summary()` says where the run stands: epoch, fraction, time left, speed, how it ended.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from core.training.events import BATCH_END, EPOCH_END, FEATURES, RUN_CANCELLED, RUN_FAILED, RUN_FINISHED, RUN_STARTED

MAX_BATCH_POINTS = 240  # per-batch losses kept for the chart; older ones are thinned, never the epochs
ENDED = {RUN_FINISHED: "finished", RUN_FAILED: "failed", RUN_CANCELLED: "cancelled"}


@dataclass(frozen=True)
class Progress:
    state: str  # queued, preparing, training, finished, failed, cancelled, interrupted
    epoch: int = 0  # epochs completed
    epochs: int = 0  # epochs planned
    fraction: float = 0.0  # of the planned work; 1.0 once finished, early stopping included
    eta_s: float | None = None
    images_per_s: float | None = None
    stopped_early: bool = False
    best_epoch: int | None = None
    message: str = ""
    features: tuple[int, int] | None = None  # (images done, images in all) while the frozen layers' pass runs

    def text(self) -> str:
        """One line for a progress bar or a terminal."""
        if self.features is not None:
            done, total = self.features
            return f"Computing features: {done:,} of {total:,} images (once; every epoch then reuses them)"
        if self.state == "finished" and self.stopped_early:
            return self.message
        if self.state == "finished":
            return f"Complete: {self.epoch} of {self.epochs} epochs"
        parts = [f"Epoch {min(self.epoch + 1, self.epochs) if self.state == 'training' else self.epoch} "
                 f"of {self.epochs}"]
        if self.eta_s is not None and self.state == "training":
            parts.append(f"about {format_duration(self.eta_s)} left")
        if self.images_per_s:
            parts.append(f"{self.images_per_s:,.0f} images/s")
        return " · ".join(parts)


def format_duration(seconds: float) -> str:
    if seconds < 60:
        return f"{max(round(seconds), 1)} s"
    if seconds < 3600:
        return f"{round(seconds / 60)} min"
    return f"{seconds / 3600:.1f} h"


def eta_seconds(total_epochs: int, epoch_elapsed: list[float], partial: float,
                seconds_per_epoch_from_batches: float | None = None) -> float | None:
    """Seconds left for the planned epochs (an upper bound when early stopping may end sooner).

    `epoch_elapsed`: time since training began at the end of each finished epoch. The first epoch carries one-off
    work (decoding, computing features), so with two or more, the pace is that of the later ones. Before the first
    epoch ends, the pace comes from the batches seen so far, when there are any."""
    done = len(epoch_elapsed)
    if done >= 2:
        per_epoch = (epoch_elapsed[-1] - epoch_elapsed[0]) / (done - 1)
    elif done == 1:
        per_epoch = epoch_elapsed[0]
    elif seconds_per_epoch_from_batches is not None:
        per_epoch = seconds_per_epoch_from_batches
    else:
        return None
    return max(per_epoch * (total_epochs - done - partial), 0.0)


@dataclass
class RunProgress:
    """What the events of one run said so far. `version` changes whenever something new arrived."""
    started: dict[str, Any] | None = None
    epochs: list[dict[str, Any]] = field(default_factory=list)
    batches: list[dict[str, Any]] = field(default_factory=list)
    end: dict[str, Any] | None = None
    features: dict[str, Any] | None = None  # the latest "features" event
    version: int = 0
    updated_at: float = 0.0  # time.monotonic() of the last new record
    _stride: int = 1
    _batch_count: int = 0
    _epoch_first_batch: dict[str, Any] | None = None
    _last_batch: dict[str, Any] | None = None

    def add(self, records: list[dict[str, Any]]) -> bool:
        for record in records:
            kind = record.get("event")
            if kind == RUN_STARTED:
                self.started = record
            elif kind == EPOCH_END:
                self.epochs.append(record)
            elif kind == BATCH_END:
                self._add_batch(record)
            elif kind == FEATURES:
                self.features = record
            elif kind in ENDED:
                self.end = record
        if records:
            self.version += 1
            self.updated_at = time.monotonic()
        return bool(records)

    def _add_batch(self, record: dict[str, Any]) -> None:
        last = self._last_batch
        if last is None or last.get("epoch") != record.get("epoch"):
            self._epoch_first_batch = record
        self._last_batch = record
        self._batch_count += 1
        if self._batch_count % self._stride:
            return
        self.batches.append(record)
        if len(self.batches) > MAX_BATCH_POINTS:  # thin the whole series evenly: the chart keeps its shape
            self.batches = self.batches[::2]
            self._stride *= 2

    def summary(self, state: str) -> Progress:
        """Where the run stands; `state` is what its job or status file says (queued, running, finished...)."""
        if self.end is not None:
            state = ENDED[self.end["event"]]
        if state in ("queued",) or (state == "running" and self.started is None):
            return Progress("queued" if state == "queued" else "preparing")
        total = int((self.started or {}).get("epochs") or (self.end or {}).get("epochs") or 0)
        done = self.epochs[-1]["epoch"] if self.epochs else 0
        speed = (self.epochs[-1] if self.epochs else self._last_batch or {}).get("images_per_s")
        if state == "finished":
            return self._finished(total, done, speed)
        if self._computing_features(done):
            done_images, all_images = int(self.features["done"]), int(self.features["total"])
            return Progress("training", 0, total, 0.0, None, None, features=(done_images, all_images))
        partial = self._partial(done)
        fraction = min((done + partial) / total, 1.0) if total else 0.0
        eta = eta_seconds(total, [e["elapsed_s"] for e in self.epochs], partial, self._epoch_seconds_from_batches())
        return Progress("training" if state == "running" else state, done, total, fraction, eta, speed,
                        message=(self.end or {}).get("message", ""))

    def _finished(self, total: int, done: int, speed: float | None) -> Progress:
        end = self.end or {}
        ran = int(end.get("epochs_run") or done)
        early = 0 < ran < total
        message = ""
        if early:
            patience = end.get("early_stopping")
            why = (f"the validation loss had not improved for {patience} epochs" if patience else
                   "the validation loss had stopped improving")
            message = (f"Complete: stopped early at epoch {ran} of {total}, because {why}; the best epoch "
                       f"({end.get('best_epoch')}) was kept.")
        return Progress("finished", ran, total, 1.0, 0.0, speed, early, end.get("best_epoch"), message)

    def _computing_features(self, epochs_done: int) -> bool:
        """The frozen layers' pass is under way: a features event is the newest news, before any batch."""
        return (self.features is not None and epochs_done == 0 and self._last_batch is None
                and int(self.features.get("done", 0)) < int(self.features.get("total", 0)))

    def _partial(self, done: int) -> float:
        last = self._last_batch
        if last and last.get("epoch") == done + 1 and last.get("batches"):
            return min(last["batch"] / last["batches"], 1.0)
        return 0.0

    def _epoch_seconds_from_batches(self) -> float | None:
        first, last = self._epoch_first_batch, self._last_batch
        if not first or not last or last is first or not last.get("batches"):
            return None
        steps = last["batch"] - first["batch"]
        return (last["time"] - first["time"]) / steps * last["batches"] if steps > 0 else None
