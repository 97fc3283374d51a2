"""Labelling that gets faster as you go, on cached features of the frozen backbone.

Cold start: k-means groups the unlabelled pool so an expert labels a whole group at once. Once every class has
a few labels, a logistic-regression head suggests a label and a confidence for every pool image (seconds: the
features are computed once per image and cached by content hash), and the least certain images come first,
because labelling them teaches the head the most (active learning, smallest margin first). Tags and values have
heads of their own (core.labelling.heads); core.labelling.propose runs the round for a dataset version.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
import torch
from sklearn.cluster import KMeans
from sklearn.linear_model import LogisticRegression

from core.data.preprocessing import Preprocessing, load_rgb
from core.data.store import DatasetStore
from core.models import backbones
from core.models.features import FeatureCache, cache_key

EMBED_BATCH = 32
BACKBONE = backbones.BUNDLED
_model_lock = threading.Lock()


@dataclass(frozen=True)
class Suggestion:
    digest: str
    label: str  # the suggested answer in words (a class; for tags and values, what core.data.answers shows)
    confidence: float  # the head's probability for its suggested answer
    margin: float  # top probability minus the runner-up (other tasks: 1 - their uncertainty): small = unsure
    answer: Any = None  # the answer as a version stores it, where it is not the class name `label` itself

    @property
    def stored(self) -> Any:
        return self.label if self.answer is None else self.answer


def embed(store: DatasetStore, digests: list[str], cache: FeatureCache, image_size: int | None = None) -> np.ndarray:
    """(N, D) pooled features of the frozen bundled backbone, one row per image, cached by content hash."""
    if not digests:
        return np.zeros((0, 0), dtype=np.float32)
    prep = backbones.preprocessing(BACKBONE, image_size)
    model = _frozen_model()
    key = f"{cache_key(BACKBONE, 'default', 0, len(model.stages), prep)}-pooled"

    def compute(indices: list[int]) -> torch.Tensor:
        chunks = [indices[i:i + EMBED_BATCH] for i in range(0, len(indices), EMBED_BATCH)]
        return torch.cat([_pooled(model, prep, [store.object_path(digests[i]) for i in chunk]) for chunk in chunks])

    return cache.features(key, digests, compute).float().numpy()


def group(features: np.ndarray, groups: int, seed: int = 0) -> list[list[int]]:
    """Similar images together: k-means clusters, largest first, each ordered most typical first."""
    if len(features) == 0:
        return []
    k = max(1, min(groups, len(features)))
    x = _normalised(features)
    km = KMeans(n_clusters=k, n_init=3, random_state=seed).fit(x)
    distance = np.linalg.norm(x - km.cluster_centers_[km.labels_], axis=1)
    clusters = [sorted(np.flatnonzero(km.labels_ == c).tolist(), key=lambda i: distance[i]) for c in range(k)]
    return sorted((c for c in clusters if c), key=len, reverse=True)


def fit_head(features: np.ndarray, labels: list[str], seed: int = 0) -> LogisticRegression:
    # Balanced: a group labelled at once makes one class many times larger, and an unweighted head then
    # suggests that class for everything. C=10 (weak regularisation) suits a few unit-length rows.
    head = LogisticRegression(max_iter=2000, C=10.0, class_weight="balanced", random_state=seed)
    return head.fit(_normalised(features), labels)


def suggest(head: LogisticRegression, features: np.ndarray, digests: list[str]) -> list[Suggestion]:
    """A label and a confidence for each image, in the order given."""
    if len(digests) == 0:
        return []
    probabilities = head.predict_proba(_normalised(features))
    top = np.argsort(-probabilities, axis=1)
    best = probabilities[np.arange(len(digests)), top[:, 0]]
    runner_up = probabilities[np.arange(len(digests)), top[:, 1]] if probabilities.shape[1] > 1 else 0 * best
    return [Suggestion(d, str(head.classes_[top[i, 0]]), float(best[i]), float(best[i] - runner_up[i]))
            for i, d in enumerate(digests)]


def most_uncertain_first(suggestions: list[Suggestion]) -> list[Suggestion]:
    return sorted(suggestions, key=lambda s: (s.margin, s.digest))


def confident(suggestions: list[Suggestion], threshold: float) -> list[Suggestion]:
    """Suggestions sure enough to accept in bulk, surest first."""
    return sorted((s for s in suggestions if s.confidence >= threshold), key=lambda s: (-s.confidence, s.digest))


def _normalised(features: np.ndarray) -> np.ndarray:
    """Unit length rows: cosine geometry, which suits pooled CNN features better than raw magnitudes."""
    norms = np.linalg.norm(features, axis=1, keepdims=True)
    return features / np.maximum(norms, 1e-8)


@lru_cache(maxsize=1)
def _frozen_model() -> backbones.StagedModel:
    model = backbones.build(BACKBONE, num_outputs=2, pretrained=True)
    return model.eval()


def _pooled(model: backbones.StagedModel, prep: Preprocessing, paths: list) -> torch.Tensor:
    batch = torch.stack([prep.to_uint8(load_rgb(p, min_size=prep.resize_size)) for p in paths])
    with _model_lock, torch.inference_mode():  # one model shared by every tab: one forward at a time
        maps = model.run_stages(prep.normalize(batch))
    return maps.mean(dim=(2, 3)).to(torch.float16)
