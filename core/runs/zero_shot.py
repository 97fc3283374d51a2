"""A zero-shot run folder: the class names' text head on the backbone's image tower, saved as a finished run.

The folder holds what every run holds (config.json, labels.json, preprocessing.json, model.safetensors whose last
layer is the text head), so Predict, the REST service and export load it as they load a trained run. It has no
evaluation on the user's images (none is labelled yet): its evaluation.json is the task's own empty one and its
status says so. One folder per backbone, class list and templates: asking again returns the same run.
"""
from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Iterable

import torch

from core import tasks
from core.models import backbones
from core.models.zero_shot import classifier
from core.runs import folder
from core.training.config import TrainConfig

MESSAGE = ("Zero-shot: made from the class names, without training; it has not been checked on your images, so its "
           "accuracy is unknown.")


def run_id(backbone: str, labels: list[str], templates: tuple[str, ...]) -> str:
    """32 hex digits like every run id (links and pickers check that shape), from what the run is made of."""
    identity = json.dumps([backbone, backbones.weights_identity(backbone), labels, list(templates)])
    return hashlib.sha256(identity.encode()).hexdigest()[:32]


def create(root: Path, backbone: str, labels: Iterable[str], templates: Iterable[str] | None = None,
           data_name: str = "") -> folder.Run:
    """The finished zero-shot run for these class names (made now, or the one made before)."""
    head = classifier.text_head(backbone, labels, templates)
    names = list(head.labels)
    run = folder.Run(Path(root) / run_id(backbone, names, head.templates))
    if run.has_model() and run.state == "finished":
        return run
    run.delete()  # an attempt that died half-way
    model = backbones.build(backbone, len(names), pretrained=True)
    classifier.copy_into(model.head[-1], head)
    config = TrainConfig(data="", backbone=backbone, head_init="text", prompts=head.templates, epochs=1,
                         data_name=data_name or "zero-shot from class names")
    run = folder.create(Path(root), config, run_id=run.id)
    task = tasks.get("single")
    empty = task.evaluate(names, [], torch.zeros(0, len(names)))
    run.save_result(model, names, backbones.preprocessing(backbone), empty, None, None, {})
    run.set_status("finished", message=MESSAGE, finished=time.time(), task=task.name, zero_shot=True,
                   val_accuracy=None, val_images=0)
    return run


def is_zero_shot(run: folder.Run) -> bool:
    return bool(run.status().get("zero_shot"))
