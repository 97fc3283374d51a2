"""head_init="text": training starts its head from the class names' text embeddings instead of random weights.

With a CLIP-family backbone the new head is then the zero-shot classifier (core/models/zero_shot) on the first
step, and training moves it from there: with 1-5 images a class a random head has almost nothing to go on, the
text head already has the names (LP++, CVPR 2024, initialises a linear probe this way). The weights stay the
text embeddings times the model's logit scale, so the step sizes the head-only default learning rate takes are
small against them: a few images nudge the head rather than overwrite it.
"""
from __future__ import annotations

from core.models.staged import StagedModel
from core.models.zero_shot import classifier, text_tower
from core.training.config import ConfigError, TrainConfig


def start_head(model: StagedModel, config: TrainConfig, labels: list[str], task: str) -> None:
    """Copy the text head into the model's last layer when the config asks for it; a ConfigError sentence when
    it cannot (another task, a backbone without a text tower, random weights, a broken template)."""
    if config.head_init != "text":
        return
    if task != "single":
        raise ConfigError("Starting the head from class names works for single-label classification only.")
    if not text_tower.has_text_tower(config.backbone):
        raise ConfigError(f"{config.backbone} has no text tower to start the head from class names; choose one "
                          f"of: {', '.join(text_tower.backbones_with_text())}.")
    if config.weights == "none":
        raise ConfigError("Starting the head from class names needs the backbone's pretrained weights.")
    try:
        classifier.copy_into(model.head[-1], classifier.text_head(config.backbone, labels, config.prompts))
    except classifier.PromptError as error:
        raise ConfigError(str(error)) from error
