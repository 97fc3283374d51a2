"""Watching a served model: pure functions over prediction-log rows (dicts with the `predictions` columns).

What every task shares is here (traffic, latency, unknown inputs, drift of the distance to the training images);
what a task's answers need is its watch (`WATCHES`, named by the run's Task.monitor): class shares for one label
per image, tag shares for tags, the values' distribution for scores. The drift score is in monitor_base.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from core import tasks
from core.runs.folder import Run
from core.serving.monitor_base import (  # noqa: F401 - the drift score is the monitor's public name too
    MIN_FOR_DRIFT,
    PSI_BINS,
    Drift,
    Note,
    Panel,
    Reference,
    Watch,
    drift,
    population_stability_index,
    shifted,
)
from core.serving.monitor_classes import ClassWatch, class_distribution, feedback_accuracy  # noqa: F401
from core.serving.monitor_tags import TagWatch
from core.serving.monitor_values import ValueWatch

WATCHES: dict[str, Watch] = {watch.name: watch for watch in (ClassWatch(), TagWatch(), ValueWatch())}


def requests_over_time(rows: list[dict[str, Any]], buckets: int = 40) -> list[tuple[float, int]]:
    """(bucket start in unix seconds, images answered in it), evenly spaced over the logged period."""
    times = np.array([r["time"] for r in rows], dtype=float)
    if times.size == 0:
        return []
    low, high = float(times.min()), float(times.max())
    edges = np.linspace(low, high if high > low else low + 1.0, buckets + 1)
    counts, _edges = np.histogram(times, bins=edges)
    return [(float(start), int(count)) for start, count in zip(edges[:-1], counts)]


def per_replica(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Images answered by each replica (host:pid), busiest first; rows from before replicas were logged count as
    'not recorded'."""
    counts = Counter(r.get("replica") or "not recorded" for r in rows)
    return [{"replica": replica, "images": images} for replica, images in counts.most_common()]


def latency_percentiles(rows: list[dict[str, Any]]) -> dict[str, float | None]:
    values = [r["latency_ms"] for r in rows if r.get("latency_ms") is not None]
    if not values:
        return {"p50": None, "p95": None}
    p50, p95 = np.percentile(values, [50, 95])
    return {"p50": float(p50), "p95": float(p95)}


def trust_shares(rows: list[dict[str, Any]]) -> dict[str, float | None]:
    """Share of answers flagged unsure, and unknown (unlike every training image)."""
    if not rows:
        return {"unsure": None, "unknown": None}
    return {"unsure": sum(bool(r["unsure"]) for r in rows) / len(rows),
            "unknown": sum(bool(r["unknown"]) for r in rows) / len(rows)}


def watch_for(task: str | None) -> Watch:
    """The watch of a run's task (the default task's for runs made before tasks existed)."""
    return WATCHES[tasks.get(task).monitor]


def watch_of_rows(rows: list[dict[str, Any]]) -> Watch:
    """For a log opened by URL (no run to ask): the watch whose kind of answer the rows hold, else classes."""
    for watch in WATCHES.values():
        key = watch.answer_key
        if key and any(isinstance(r.get("answer"), dict) and key in r["answer"] for r in rows):
            return watch
    return WATCHES[ClassWatch.name]


def run_reference(run_dir: Path) -> Reference:
    """From evaluation.json: the task's reference (class counts, tag shares or values of the validation images,
    whose split is stratified like training) and OOD scores.

    OOD scores are read from `ood.validation_scores` when the run has them (older runs do not: the page then
    says there is nothing to compare with).
    """
    run = Run(run_dir)
    evaluation = run.evaluation()
    try:
        watch = watch_for(evaluation.task if evaluation is not None else run.config().get("task"))
    except ValueError:  # a task this version does not know: its answers still have classes or nothing
        watch = WATCHES[ClassWatch.name]
    ood = [] if evaluation is None else \
        [float(v) for v in (evaluation.trust.get("ood") or {}).get("validation_scores", []) if v is not None]
    return Reference(watch.name, watch.reference(evaluation, run.labels()), ood)


def empty_reference(rows: list[dict[str, Any]]) -> Reference:
    """Nothing to compare with (a log opened by URL): the rows' own kind of answer, without training data."""
    watch = watch_of_rows(rows)
    return Reference(watch.name, watch.reference(None, []), [])


@dataclass(frozen=True)
class Summary:
    images: int
    over_time: list[tuple[float, int]]
    latency: dict[str, float | None]
    trust: dict[str, float | None]
    ood: list[float]
    ood_drift: Drift
    replicas: list[dict[str, Any]]
    task: str  # the watch's name
    answers: Any  # the watch's summary of the answers (ClassSummary, TagSummary, ValueSummary)


def summarize(rows: list[dict[str, Any]], reference: Reference) -> Summary:
    ood = [float(r["ood_score"]) for r in rows if r.get("ood_score") is not None]
    watch = WATCHES[reference.task]
    return Summary(len(rows), requests_over_time(rows), latency_percentiles(rows), trust_shares(rows), ood,
                   drift(reference.ood_scores, ood, "distance to the training images"), per_replica(rows),
                   watch.name, watch.summarize(rows, reference.answers))


def panels(summary: Summary, reference: Reference) -> list[Panel]:
    """The task's sections of the page, as its watch words them."""
    return WATCHES[summary.task].panels(summary.answers, reference.answers)
