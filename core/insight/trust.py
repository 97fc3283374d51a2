"""After training: calibrate the confidence, choose the "not sure" threshold, store the unknown-input reference.

One call from the runner once evaluation.json is written. Writes calibration.json and ood_reference.safetensors
into the run folder and adds "calibration", "abstention" and "ood" to evaluation.json. A failure here never
fails the run: the model is still good, it only lacks the trust flags, and evaluation.json says why.
"""
from __future__ import annotations

import copy
import traceback
from pathlib import Path
from typing import Any

import numpy as np
import torch

from core.data.datasets import inspect, split
from core.files import read_json, write_json
from core.insight import calibration, ood
from core.models.features import FeatureCache
from core.training import devices
from core.training.config import TrainConfig
from core.training.inputs import Inputs

CALIBRATION_FILE = "calibration.json"
TAIL_BATCH = 64


def after_fit(run_dir: Path, result: Any, config: TrainConfig, work_dir: Path,
              cache: FeatureCache | None = None) -> None:
    """`result` is the FitResult. Never raises."""
    evaluation_path = Path(run_dir) / "evaluation.json"
    report = read_json(evaluation_path, {})
    try:
        report.update(compute(Path(run_dir), result, config, work_dir, cache))
    except Exception:  # the run finished; without these it answers without trust flags, and says so
        report["trust_error"] = traceback.format_exc(limit=5)
    write_json(evaluation_path, report)


def compute(run_dir: Path, result: Any, config: TrainConfig, work_dir: Path,
            cache: FeatureCache | None) -> dict[str, Any]:
    index = {label: i for i, label in enumerate(result.labels)}
    targets = np.array([index[r.label] for r in result.val_records], dtype=int)
    probabilities = result.val_probabilities.float().numpy()
    stored: dict[str, Any] = {}
    if len(targets):
        stored = calibration.calibrate(probabilities, targets)
    train_embeddings, val_embeddings = embeddings(result, config, work_dir, cache)
    train_records, _ = split(inspect(Path(config.data), work_dir), config.val_split, config.seed)
    scorer, ood_info = ood.fit_reference(train_embeddings, val_embeddings, config.seed,
                                         [r.label for r in train_records])
    ood.save_reference(scorer, run_dir)
    abstention = stored.pop("abstention", None)
    trust = {"temperature": stored.get("temperature", 1.0),
             "threshold": abstention["threshold"] if abstention else 0.0, "ood": ood_info}
    write_json(run_dir / CALIBRATION_FILE, trust)
    return {"calibration": stored or None, "abstention": abstention, "ood": ood_info}


def embeddings(result: Any, config: TrainConfig, work_dir: Path,
               cache: FeatureCache | None) -> tuple[np.ndarray, np.ndarray]:
    """The trained model's penultimate vectors of the training and validation images.

    The frozen stages never changed, so their output comes from the shared cache (training already put it there, or
    later runs reuse it); only the stages that trained run again, which for a partly fine-tuned model is a small
    share of the network.
    """
    model = result.model
    # Nothing frozen: nothing to reuse, and the network's input is no feature worth caching; it runs whole, once.
    depth = result.frozen_stages or len(model.stages)
    accel = devices.resolve(config.device)
    train_records, val_records = split(inspect(Path(config.data), work_dir), config.val_split, config.seed)
    shared = (cache or FeatureCache(None)) if result.frozen_stages else FeatureCache(None)
    inputs = Inputs(result.root, {"train": train_records, "val": val_records}, result.labels, result.preprocessing,
                    model, accel, shared, (config.backbone, config.weights, config.seed))
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


def load(run_dir: Path) -> dict[str, Any] | None:
    return read_json(Path(run_dir) / CALIBRATION_FILE)
