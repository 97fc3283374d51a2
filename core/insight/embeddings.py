"""One vector per image from the frozen backbone, through the shared feature cache.

The audit and cross-validation fit small heads on these; the cache key is the one training uses, so after a
feature-extraction run (or a second audit) no image is decoded again.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from core.data.report import ImageRecord
from core.models import backbones
from core.models.features import FeatureCache, cache_key
from core.training import devices
from core.training.inputs import FeatureProgress, Inputs


@dataclass(frozen=True)
class FeatureSpec:
    """Everything the features depend on; a run's config gives the same values, so its cache entry is reused."""
    backbone: str = backbones.BUNDLED
    weights: str = "default"
    seed: int = 0
    image_size: int | None = None
    device: str = "auto"


def pooled(features: torch.Tensor) -> torch.Tensor:
    """A feature map (N, C, H, W) averaged over space; ViT tokens (N, T, C) reduced to the class token."""
    features = features.float()
    if features.dim() == 4:
        return features.mean(dim=(2, 3))
    if features.dim() == 3:
        return features[:, 0]
    return features.flatten(1)


def penultimate(model: backbones.StagedModel, features: torch.Tensor) -> torch.Tensor:
    """The head's input to its last linear layer: the embedding the classifier actually reads."""
    return model.head[:-1](features)


def dataset_features(root: Path, records: list[ImageRecord], labels: list[str], spec: FeatureSpec,
                     cache: FeatureCache | None = None, on_features: FeatureProgress | None = None) -> np.ndarray:
    """(N, D) float32: the frozen backbone's pooled output for every record, in order. `on_features(part, done,
    total)` is called during the pass (it may raise to abandon it)."""
    prep = backbones.preprocessing(spec.backbone, spec.image_size)
    cache = cache or FeatureCache(None)
    key, hashes = cache_key(spec.backbone, spec.weights, spec.seed, stage_count(spec.backbone), prep), [
        r.sha256 for r in records]
    if cache.missing_count(key, hashes) == 0:  # all cached: no need to load the backbone at all
        return pooled(cache.features(key, hashes, _never)).numpy().astype(np.float32)
    accel = devices.resolve(spec.device)
    torch.manual_seed(spec.seed)  # random weights ("none") must match the run that made the cache entry
    # Only the frozen stages run: the head (any width) is never used.
    model = backbones.build(spec.backbone, 2, pretrained=spec.weights == "default").to(accel.device)
    model.eval()
    inputs = Inputs(root, {"all": records}, prep, model, accel, cache,
                    (spec.backbone, spec.weights, spec.seed), on_features=on_features)
    return pooled(inputs.features("all", len(model.stages))).numpy().astype(np.float32)


@lru_cache(maxsize=16)
def stage_count(backbone: str) -> int:
    """How many stages the backbone has (part of the cache key), without allocating or loading weights."""
    with torch.device("meta"):
        return len(backbones.build(backbone, 2, pretrained=False).stages)


def _never(indices: list[int]) -> torch.Tensor:
    raise RuntimeError("features were expected in the cache")
