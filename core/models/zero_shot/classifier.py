"""The text head: one unit-length direction per class, the average of its prompts' normalised text embeddings
(CLIP's prompt ensembling), and the classifier it makes with the image tower: softmax(scale * cos(image, class)).

As an nn.Linear on the unit-length image embedding (weight = scale * directions, bias = the model's logit bias),
the same head is a run's last layer (core/runs/zero_shot.py) and the starting point of training (head_init="text").
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

import torch
import torch.nn.functional as F
from torch import nn

from core.models.zero_shot import text_tower

TEMPLATES: tuple[str, ...] = ("a photo of a {}.", "a microscope image of {}.")
SLOT = "{}"  # where the class name goes; replaced literally, so a typed brace is text, never a format field
MAX_TEMPLATES = 32
MAX_TEMPLATE_CHARS = 200
MAX_CLASSES = 1000
CLASS_BATCH = 32  # classes encoded at once: 32 x 32 prompts of 77 tokens stays well under a gigabyte


class PromptError(ValueError):
    """A prompt list or class list that cannot make a head; the message is one sentence for the user."""


def clean_templates(templates: Iterable[str] | None) -> tuple[str, ...]:
    """The user's list without blanks and repeats; the defaults when it is empty. Each must hold one {}."""
    kept = list(dict.fromkeys(t.strip() for t in (templates or ()) if t and t.strip()))
    if not kept:
        return TEMPLATES
    if len(kept) > MAX_TEMPLATES:
        raise PromptError(f"Use at most {MAX_TEMPLATES} prompt templates.")
    for template in kept:
        if template.count(SLOT) != 1 or len(template) > MAX_TEMPLATE_CHARS:
            raise PromptError(f"Each prompt template needs exactly one {SLOT} where the class name goes and at most "
                              f"{MAX_TEMPLATE_CHARS} characters.")
    return tuple(kept)


@dataclass(frozen=True)
class TextHead:
    labels: tuple[str, ...]
    directions: torch.Tensor  # (classes, dim), unit rows: each class's averaged prompt embedding
    scale: float
    bias: float
    templates: tuple[str, ...]

    def logits(self, image_embeddings: torch.Tensor) -> torch.Tensor:
        return F.normalize(image_embeddings.float(), dim=-1) @ self.directions.T * self.scale + self.bias

    def probabilities(self, image_embeddings: torch.Tensor) -> torch.Tensor:
        return self.logits(image_embeddings).softmax(-1)

    def linear(self) -> nn.Linear:
        """The head as the last layer of a model whose layer before it makes the embedding unit-length."""
        layer = nn.Linear(self.directions.shape[1], len(self.labels))
        copy_into(layer, self)
        return layer


def text_head(backbone: str, labels: Iterable[str], templates: Iterable[str] | None = None) -> TextHead:
    """The zero-shot head for these class names; the text tower loads on first use (WeightsUnavailable if missing)."""
    names, chosen = _clean_labels(labels), clean_templates(templates)
    tower = text_tower.load(backbone)
    directions = torch.cat([_directions(tower, names[i:i + CLASS_BATCH], chosen)
                            for i in range(0, len(names), CLASS_BATCH)])
    return TextHead(tuple(names), directions, tower.logit_scale, tower.logit_bias, chosen)


def copy_into(layer: nn.Linear, head: TextHead) -> None:
    """Start `layer` (classes x dim) as the text head; a shape that does not match is a PromptError."""
    if tuple(layer.weight.shape) != tuple(head.directions.shape):
        raise PromptError("The model's head does not match the text tower's embedding, so it cannot start from "
                          "the class names.")
    with torch.no_grad():
        layer.weight.copy_(head.directions * head.scale)
        if layer.bias is not None:
            layer.bias.fill_(head.bias)


def _directions(tower: text_tower.TextTower, names: list[str], templates: tuple[str, ...]) -> torch.Tensor:
    # A folder name says "red_blood_cell"; the text tower reads words. The label itself stays as written.
    prompts = [template.replace(SLOT, name.replace("_", " ")) for name in names for template in templates]
    embedded = tower.encode(prompts).reshape(len(names), len(templates), -1)  # unit rows already
    return F.normalize(embedded.mean(1), dim=-1)


def _clean_labels(labels: Iterable[str]) -> list[str]:
    names = [str(label) for label in labels]
    if len(names) < 2 or len(set(names)) != len(names):
        raise PromptError("Type at least two different class names.")
    if len(names) > MAX_CLASSES:
        raise PromptError(f"Zero-shot takes at most {MAX_CLASSES} class names.")
    return names
