"""TrainConfig: every choice a run makes, with defaults a newcomer can trust, saved beside the weights."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

OPTIMIZERS = ("adamw", "adam", "sgd")
AUGMENTATIONS = ("auto", "none", "light", "strong")
DEVICES = ("auto", "cpu", "cuda", "mps")
WEIGHT_CHOICES = ("default", "none")
FREEZE_ALL = "all"


class ConfigError(ValueError):
    """A setting a user chose that cannot work; the message says which and what is allowed."""


@dataclass(frozen=True)
class TrainConfig:
    data: str
    backbone: str = "efficientnet_lite0"
    freeze_depth: int | str = FREEZE_ALL  # number of frozen stages, or "all" (feature extraction)
    epochs: int = 10
    lr: float | None = None  # None: chosen from the freeze depth (see default_lr)
    batch_size: int = 32
    optimizer: str = "adamw"
    augment: str = "auto"  # auto: none for feature extraction (features are then cached), light otherwise
    image_size: int | None = None  # None: the backbone's own input size
    val_split: float = 0.2
    seed: int = 0
    device: str = "auto"
    weights: str = "default"
    early_stopping: int = 3  # epochs without val-loss improvement before stopping; 0 = never
    two_stage: bool = False
    # augmented views of each training image whose frozen-stage output is kept (core.training.views); 0 = off
    augmented_views: int = 4
    weight_decay: float = 1e-4
    data_name: str = ""  # what the user calls the data (an upload's file name); shown in run lists

    def __post_init__(self) -> None:
        _require(self.optimizer in OPTIMIZERS, "optimizer", self.optimizer, OPTIMIZERS)
        _require(self.augment in AUGMENTATIONS, "augment", self.augment, AUGMENTATIONS)
        _require(self.device in DEVICES, "device", self.device, DEVICES)
        _require(self.weights in WEIGHT_CHOICES, "weights", self.weights, WEIGHT_CHOICES)
        if not (isinstance(self.freeze_depth, int) and self.freeze_depth >= 0) and self.freeze_depth != FREEZE_ALL:
            raise ConfigError(f"freeze depth must be a whole number >= 0 or 'all', not {self.freeze_depth!r}")
        for name, low in (("epochs", 1), ("batch_size", 1), ("early_stopping", 0), ("augmented_views", 0)):
            if int(getattr(self, name)) < low:
                raise ConfigError(f"{name} must be at least {low}, not {getattr(self, name)}")
        if self.image_size is not None and not 32 <= self.image_size <= 1024:
            raise ConfigError(f"image size must be between 32 and 1024 pixels, not {self.image_size}")
        if not 0.05 <= self.val_split <= 0.5:
            raise ConfigError(f"validation split must be between 0.05 and 0.5, not {self.val_split}")
        if self.lr is not None and not 0 < self.lr < 1:
            raise ConfigError(f"learning rate must be between 0 and 1, not {self.lr}")

    def resolved_augment(self, frozen_stages: int, total_stages: int) -> str:
        if self.augment != "auto":
            return self.augment
        return "none" if frozen_stages >= total_stages else "light"

    def resolved_lr(self, frozen_stages: int, total_stages: int) -> float:
        return self.lr if self.lr is not None else default_lr(frozen_stages, total_stages)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "TrainConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in known})


def default_lr(frozen_stages: int, total_stages: int) -> float:
    """A head alone on fixed features tolerates a large step; pretrained layers being tuned need a small one."""
    if frozen_stages >= total_stages:
        return 3e-3
    if frozen_stages >= total_stages - 2:
        return 1e-3
    return 3e-4


def parse_freeze_depth(text: str | int) -> int | str:
    if isinstance(text, int) or text == FREEZE_ALL:
        return text
    if str(text).isdigit():
        return int(text)
    raise ConfigError(f"freeze depth must be a whole number >= 0 or 'all', not {text!r}")


def _require(ok: bool, name: str, value: Any, allowed: tuple[str, ...]) -> None:
    if not ok:
        raise ConfigError(f"unknown {name} {value!r}; choose one of: {', '.join(allowed)}")
