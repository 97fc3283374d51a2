"""'This does not look like any of your training images': k-nearest-neighbour distance in embedding space.

The score of an image is its mean cosine distance to the k most similar training images, in the embedding the
classifier reads. The threshold comes from images the model has not memorised: validation images scored
against the training set, and each training image scored against the others (leave-one-out).
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch
from sklearn.neighbors import NearestNeighbors

K = 5
QUANTILE = 0.99  # about 1 in 100 ordinary images would be called unknown
MAX_REFERENCE = 2000  # training embeddings kept in the run folder (float16: 2000 x 1280 = 5 MB)


def normalise(embeddings: np.ndarray | torch.Tensor) -> np.ndarray:
    values = np.asarray(embeddings, dtype=np.float32)
    return values / np.maximum(np.linalg.norm(values, axis=1, keepdims=True), 1e-12)


class NeighbourScore:
    """Scores new embeddings against a fixed reference set."""

    def __init__(self, reference: np.ndarray, k: int = K) -> None:
        self.reference = normalise(reference)
        self.k = max(1, min(k, len(self.reference) - 1))
        self.index = NearestNeighbors(n_neighbors=self.k + 1, metric="cosine").fit(self.reference)

    def score(self, embeddings: np.ndarray, leave_one_out: bool = False) -> np.ndarray:
        """Mean cosine distance to the k nearest reference images (itself excluded when leave_one_out)."""
        distances, _ = self.index.kneighbors(normalise(embeddings), n_neighbors=self.k + 1)
        chosen = distances[:, 1:] if leave_one_out else distances[:, :self.k]
        return chosen.mean(axis=1)


def kept_indices(count: int, limit: int = MAX_REFERENCE, seed: int = 0) -> np.ndarray:
    """Which training embeddings the reference keeps: all of them, or a seeded sample of `limit`."""
    if count <= limit:
        return np.arange(count)
    return np.sort(np.random.default_rng(seed).choice(count, limit, replace=False))


def class_gap(reference: np.ndarray, labels: np.ndarray) -> float:
    """The median distance from a training image to the nearest training image of another class: how far apart the
    user's own classes are. 0 when there is one class."""
    if len(set(labels.tolist())) < 2:
        return 0.0
    unit = normalise(reference)
    distances = 1.0 - unit @ unit.T
    distances[labels[:, None] == labels[None, :]] = np.inf
    return float(np.median(distances.min(axis=1)))


def fit_reference(train: np.ndarray, val: np.ndarray, seed: int = 0,
                  train_labels: list[str] | None = None) -> tuple[NeighbourScore, dict[str, Any]]:
    """The scorer and its threshold: the QUANTILE of the in-distribution scores, but never less than half the gap
    between the user's classes. A few near-identical training images (a classroom set) give a tiny quantile that
    new pictures of the very same kind exceed; an image only counts as unknown when it is farther from every
    training image than the classes are from each other (half of it, as a margin)."""
    keep = kept_indices(len(train), seed=seed)
    scorer = NeighbourScore(train[keep])
    ordinary = np.concatenate([scorer.score(scorer.reference, leave_one_out=True),
                               scorer.score(val) if len(val) else np.empty(0)])
    quantile = float(np.quantile(ordinary, QUANTILE))
    floor = 0.5 * class_gap(scorer.reference, np.asarray(train_labels)[keep]) if train_labels is not None else 0.0
    threshold = max(quantile, floor)
    val_scores = scorer.score(val) if len(val) else np.empty(0)
    flagged_val = float((val_scores > threshold).mean()) if len(val) else 0.0
    # The validation scores are the reference the Monitor page compares served traffic with (drift).
    return scorer, {"k": scorer.k, "threshold": threshold, "quantile_threshold": quantile, "class_gap_floor": floor,
                    "reference_images": len(scorer.reference), "validation_flagged": flagged_val,
                    "validation_scores": [round(float(s), 5) for s in val_scores[:MAX_REFERENCE]]}
