"""Pre-label the unlabelled pool from class names alone (zero-shot), before anyone has labelled an image.

Each pool image gets the class whose text direction its embedding is nearest to, with the zero-shot probability
as its confidence, as core.labelling.suggest.Suggestion: the Label page's 'accept the confident ones' and
uncertainty-first order take them as they take the trained head's. The image embeddings are the backbone's
last stage (its joint image-text embedding), computed once per image and cached by content hash.
"""
from __future__ import annotations

import threading
from functools import lru_cache
from typing import Iterable

import numpy as np
import torch

from core.data.preprocessing import load_rgb
from core.data.store import DatasetStore, Version
from core.labelling.suggest import EMBED_BATCH, Suggestion
from core.models import backbones
from core.models.features import FeatureCache, cache_key
from core.models.zero_shot import classifier

_lock = threading.Lock()  # one image forward at a time: the model is shared by every tab


def embed(store: DatasetStore, digests: list[str], cache: FeatureCache, backbone: str) -> torch.Tensor:
    """(N, D) image embeddings in the joint space, one row per image, cached by content hash."""
    model = _frozen_model(backbone)
    prep = backbones.preprocessing(backbone)
    key = f"{cache_key(backbone, 'default', 0, len(model.stages), prep)}-joint"

    def compute(indices: list[int]) -> torch.Tensor:
        rows = []
        for start in range(0, len(indices), EMBED_BATCH):
            paths = [store.object_path(digests[i]) for i in indices[start:start + EMBED_BATCH]]
            batch = torch.stack([prep.to_uint8(load_rgb(p, min_size=prep.resize_size)) for p in paths])
            with _lock, torch.inference_mode():
                rows.append(model.run_stages(prep.normalize(batch)).float())
        return torch.cat(rows)

    return cache.features(key, digests, compute).float() if digests else torch.zeros(0, 0)


def suggestions(head: classifier.TextHead, embeddings: torch.Tensor, digests: list[str]) -> list[Suggestion]:
    """The zero-shot label and probability for each image, in the order given, with the margin to the runner-up."""
    if not digests:
        return []
    probabilities = head.probabilities(embeddings).numpy()
    top = np.argsort(-probabilities, axis=1)
    rows = np.arange(len(digests))
    best, second = probabilities[rows, top[:, 0]], probabilities[rows, top[:, 1]]
    return [Suggestion(d, head.labels[top[i, 0]], float(best[i]), float(best[i] - second[i]))
            for i, d in enumerate(digests)]


def prelabel(store: DatasetStore, version: Version, cache: FeatureCache, backbone: str,
             class_names: Iterable[str] | None = None, templates: Iterable[str] | None = None) -> list[Suggestion]:
    """Zero-shot suggestions for every unlabelled image of the version; the classes are the version's own unless
    given. WeightsUnavailable or PromptError (one sentence each) when it cannot."""
    head = classifier.text_head(backbone, class_names if class_names is not None else version.classes, templates)
    pool = sorted(version.pool())
    return suggestions(head, embed(store, pool, cache, backbone), pool)


@lru_cache(maxsize=1)
def _frozen_model(backbone: str) -> backbones.StagedModel:
    return backbones.build(backbone, num_outputs=2, pretrained=True).eval()
