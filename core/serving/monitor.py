"""Watching a served model: pure functions over prediction-log rows (dicts with the `predictions` columns).

Drift uses the population stability index (PSI) between a reference sample (the run's validation answers) and
the served answers: PSI = sum over bins of (served% - reference%) * ln(served% / reference%), with bins cut at
the reference's quantiles. Usual reading: below 0.1 stable, 0.1-0.25 a moderate shift, above 0.25 a large one.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from core.runs.folder import Run

MIN_FOR_DRIFT = 30  # fewer served images than this: a PSI says more about chance than about drift
PSI_BINS = 10


@dataclass(frozen=True)
class Drift:
    psi: float | None
    verdict: str
    served: int
    reference: int


def requests_over_time(rows: list[dict[str, Any]], buckets: int = 40) -> list[tuple[float, int]]:
    """(bucket start in unix seconds, images answered in it), evenly spaced over the logged period."""
    times = np.array([r["time"] for r in rows], dtype=float)
    if times.size == 0:
        return []
    low, high = float(times.min()), float(times.max())
    edges = np.linspace(low, high if high > low else low + 1.0, buckets + 1)
    counts, _ = np.histogram(times, bins=edges)
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


def class_distribution(rows: list[dict[str, Any]], training_counts: dict[str, int]) -> list[dict[str, Any]]:
    """Per label: share among served answers against share in the training data (labels of both, training order)."""
    served = Counter(r["label"] for r in rows if r.get("label") is not None)
    labels = list(training_counts) + sorted(set(served) - set(training_counts))
    served_total, training_total = sum(served.values()), sum(training_counts.values())
    return [{"label": label,
             "served": served[label] / served_total if served_total else 0.0,
             "training": training_counts.get(label, 0) / training_total if training_total else 0.0}
            for label in labels]


def population_stability_index(reference: list[float], served: list[float], bins: int = PSI_BINS) -> float:
    """PSI of served against reference, bins at the reference's quantiles (empty bins smoothed, not infinite)."""
    ref, new = np.asarray(reference, dtype=float), np.asarray(served, dtype=float)
    if ref.size == 0 or new.size == 0:
        raise ValueError("both samples need at least one value")
    edges = np.unique(np.quantile(ref, np.linspace(0, 1, bins + 1)[1:-1]))
    ref_share = np.bincount(np.searchsorted(edges, ref, side="right"), minlength=edges.size + 1) / ref.size
    new_share = np.bincount(np.searchsorted(edges, new, side="right"), minlength=edges.size + 1) / new.size
    ref_share, new_share = np.clip(ref_share, 1e-4, None), np.clip(new_share, 1e-4, None)
    return float(np.sum((new_share - ref_share) * np.log(new_share / ref_share)))


def drift(reference: list[float], served: list[float], what: str) -> Drift:
    """PSI with a verdict in words; `what` names the quantity ("confidence", "distance to the training images")."""
    if len(reference) < 5:
        return Drift(None, f"No validation {what} to compare with for this model.", len(served), len(reference))
    if len(served) < MIN_FOR_DRIFT:
        return Drift(None, f"Too few answers yet to judge ({len(served)}; at least {MIN_FOR_DRIFT} needed).",
                     len(served), len(reference))
    psi = population_stability_index(reference, served)
    if psi < 0.1:
        verdict = f"Stable: the {what} of the answers looks like on the validation images."
    elif psi < 0.25:
        verdict = f"A moderate shift in {what}: the images sent differ somewhat from the training images. Keep watching."
    else:
        verdict = (f"A large shift in {what}: the images sent are not like the training images. Check them, "
                   f"and consider adding such images to the data and training again.")
    return Drift(psi, verdict, len(served), len(reference))


def feedback_accuracy(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Accuracy of the top-1 answer on the images whose true label was reported: the first label given (later
    ones are kept in the log's feedback history, but cannot rewrite the score)."""
    judged = [r for r in rows if r.get("feedback_label")]
    correct = sum(r["feedback_label"] == r["label"] for r in judged)
    return {"images": len(judged), "correct": correct, "accuracy": correct / len(judged) if judged else None}


@dataclass(frozen=True)
class Reference:
    """What the served answers are compared with: the run's training mix and its validation answers."""
    training_counts: dict[str, int]
    confidences: list[float]
    ood_scores: list[float]


def run_reference(run_dir: Path) -> Reference:
    """From evaluation.json: class counts (validation support, stratified like training), confidences, OOD scores.

    OOD scores are read from per-image `ood_score` in evaluation predictions, or `ood.validation_scores`, when
    the run has them (older runs do not: the page then says there is nothing to compare with).
    """
    run = Run(run_dir)
    evaluation = run.evaluation()
    if evaluation is None:  # damaged or missing: the classes are still known from the model
        counts = {label: 0 for label in run.labels()}
        return Reference(counts, [], [])
    counts = {c["label"]: int(c.get("support", 0)) for c in evaluation.per_label}
    confidences = [float(p["confidence"]) for p in evaluation.predictions if p.get("confidence") is not None]
    ood = [float(v) for v in (evaluation.trust.get("ood") or {}).get("validation_scores", []) if v is not None]
    return Reference(counts, confidences, ood)


@dataclass(frozen=True)
class Summary:
    images: int
    over_time: list[tuple[float, int]]
    latency: dict[str, float | None]
    trust: dict[str, float | None]
    classes: list[dict[str, Any]]
    confidence_drift: Drift
    ood_drift: Drift
    feedback: dict[str, Any]
    replicas: list[dict[str, Any]]


def summarize(rows: list[dict[str, Any]], reference: Reference) -> Summary:
    confidences = [float(r["confidence"]) for r in rows if r.get("confidence") is not None]
    ood = [float(r["ood_score"]) for r in rows if r.get("ood_score") is not None]
    return Summary(len(rows), requests_over_time(rows), latency_percentiles(rows), trust_shares(rows),
                   class_distribution(rows, reference.training_counts),
                   drift(reference.confidences, confidences, "confidence"),
                   drift(reference.ood_scores, ood, "distance to the training images"),
                   feedback_accuracy(rows), per_replica(rows))
