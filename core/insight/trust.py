"""After training: make the answers trustworthy. The run's task calibrates its outputs on the validation images
(for single-label: the temperature and the "not sure" threshold), and the unknown-input reference is fitted on the
trained model's embeddings of the training images. Computed here from the fit's own records and outputs (nothing
is read or split again); the run pipeline stores the result.
"""
from __future__ import annotations

import copy
import traceback
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from core.models.features import FeatureCache
from core.stats import neighbours
from core.training import devices
from core.training.config import TrainConfig
from core.training.inputs import Inputs
from core.training.loop import FitResult

TAIL_BATCH = 64


@dataclass
class Trust:
    predict: dict[str, Any] = field(default_factory=dict)  # what prediction needs: calibration.json
    report: dict[str, Any] = field(default_factory=dict)  # what the Evaluate page shows: the evaluation's trust
    reference: neighbours.NeighbourScore | None = None  # the training embeddings unknown inputs are measured against


def compute(result: FitResult, config: TrainConfig, cache: FeatureCache | None) -> Trust:
    """Never raises: a run whose trust step fails still answers, without the flags, and its report says why."""
    try:
        return _compute(result, config, cache)
    except Exception:  # the run finished; without these it answers without trust flags, and says so
        return Trust(report={"error": traceback.format_exc(limit=5)})


def _compute(result: FitResult, config: TrainConfig, cache: FeatureCache | None) -> Trust:
    data = result.data
    targets = data.task.targets(data.val, data.labels).numpy()
    calibrated = data.task.calibrate(result.val_answers.float().numpy(), targets)
    train_embeddings, val_embeddings = embeddings(result, config, cache)
    train_labels = [r.label for r in data.train] if data.task.name == "single" else None
    scorer, ood_info = neighbours.fit_reference(train_embeddings, val_embeddings, config.seed, train_labels)
    predict = calibrated["predict"] | {"task": data.task.name,
                                       "ood": {"k": ood_info["k"], "threshold": ood_info["threshold"]}}
    return Trust(predict, calibrated["report"] | {"ood": ood_info}, scorer)


def embeddings(result: FitResult, config: TrainConfig, cache: FeatureCache | None) -> tuple[np.ndarray, np.ndarray]:
    """The trained model's penultimate vectors of the training and validation images.

    The frozen stages never changed, so their output comes from the shared cache (training already put it there, or
    later runs reuse it); only the stages that trained run again, which for a partly fine-tuned model is a small
    share of the network.
    """
    model, data = result.model, result.data
    # Nothing frozen: nothing to reuse, and the network's input is no feature worth caching; it runs whole, once.
    depth = result.frozen_stages or len(model.stages)
    accel = devices.resolve(config.device)
    shared = (cache or FeatureCache(None)) if result.frozen_stages else FeatureCache(None)
    inputs = Inputs(data.root, {"train": data.train, "val": data.val}, result.preprocessing, model, accel, shared,
                    (config.backbone, config.weights, config.seed))
    before_last = copy.deepcopy(model.head[:-1]).cpu().float().eval()
    model.eval()
    with torch.inference_mode():
        train, val = (before_last(_trained_stages(model, inputs.features(part, depth), depth, accel.device)).numpy()
                      for part in ("train", "val"))
    return train, val


def _trained_stages(model: Any, prefix: torch.Tensor, depth: int, device: torch.device) -> torch.Tensor:
    """The stages after `depth`, in batches, from the frozen prefix's output (cached in fp16)."""
    if depth >= len(model.stages):
        return prefix.float()
    outputs = [model.run_stages(chunk.to(device).float().contiguous(memory_format=torch.channels_last), depth)
               .float().cpu() for chunk in prefix.split(TAIL_BATCH)]
    return torch.cat(outputs)
