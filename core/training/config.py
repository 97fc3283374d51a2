"""TrainConfig: every choice a run makes, with defaults a newcomer can trust, saved beside the weights."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

OPTIMIZERS = ("adamw", "adam", "sgd")
AUGMENTATIONS = ("auto", "none", "light", "strong")
DEVICES = ("auto", "cpu", "cuda", "mps")
WEIGHT_CHOICES = ("default", "none")
HEAD_INITS = ("default", "text")  # text: a CLIP-family backbone's head starts as its zero-shot classifier
MAX_PROMPTS = 32
HEADS = ("linear", "prototype")  # prototype: class means of the frozen features (core.training.prototype)
FREEZE_ALL = "all"
# How the backbone adapts. freeze: the first `freeze_depth` stages stay as they are and the rest retrains ("all":
# feature extraction). adapters: every pretrained weight stays as it is; small low-rank adapters (LoRA,
# core.models.adapters) train in the last `adapter_stages` stages that have layers to adapt, with the new head.
STRATEGIES = ("freeze", "adapters")
ADAPTER_RANKS = (2, 4, 8, 16, 32)  # what the Train page offers; any rank within RANGES works
BATCH_SIZES = (8, 16, 32, 64, 128)  # what the Train page offers; any size within RANGES works
# (lowest, highest) allowed for each number a user sets: the one table TrainConfig, the Train page and the CLI read.
RANGES: dict[str, tuple[float, float]] = {
    "epochs": (1, 1000),
    "batch_size": (1, 4096),
    "lr": (1e-6, 0.5),
    "image_size": (32, 1024),
    "val_split": (0.05, 0.5),
    "seed": (0, 2**31 - 1),
    "early_stopping": (0, 100),
    "weight_decay": (0.0, 1.0),
    "augmented_views": (0, 16),
    "adapter_rank": (1, 64),
    "adapter_stages": (1, 64),
}
_WORDS = {"lr": "learning rate", "val_split": "validation split"}


class ConfigError(ValueError):
    """A setting a user chose that cannot work; the message says which and what is allowed."""


@dataclass(frozen=True)
class TrainConfig:
    data: str
    task: str = "single"  # a key of core.tasks: what the model learns to answer (the Data page shows what the data says)
    target: str = ""  # the metadata column to learn (empty: the one the task's name implies: label, labels, value)
    backbone: str = "efficientnet_lite0"
    freeze_depth: int | str = FREEZE_ALL  # number of frozen stages, or "all" (feature extraction)
    strategy: str = "freeze"  # one of STRATEGIES; with "adapters" freeze_depth stays "all": no pretrained weight changes
    adapter_rank: int = 8  # LoRA's r: each adapted layer learns a rank-r change of its weights
    # The adapters go into the last this-many stages that hold layers to adapt (core.models.adapters.adapted_stages):
    # the stages the partial fine-tuning recommendation retrains, so the two cost about the same per epoch and the
    # stages before keep their cached features (README, "Three ways to adapt a backbone").
    adapter_stages: int = 2
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
    # augmented views of each training image whose frozen-stage output is kept (core.training.augmented_views); 0 = off
    augmented_views: int = 2  # bench/results/views_accuracy-2core-cpu.json: fewest views within noise of 0
    weight_decay: float = 1e-4
    # "prototype": no epochs, each class the mean of its images' frozen features; for feature extraction of one
    # label per image, where it often beats a fitted head below ~10 images a class (the "compare" measures which).
    head: str = "linear"
    data_name: str = ""  # what the user calls the data (an upload's file name); shown in run lists
    dataset_version: str = ""  # "<dataset id>@<version>" when the data is a version of a stored dataset
    head_init: str = "default"  # "text": start from the class names' text embeddings (core.training.head_init)
    prompts: tuple[str, ...] = ()  # prompt templates for head_init="text", {} for the class name; () = the defaults

    def __post_init__(self) -> None:
        _require(self.optimizer in OPTIMIZERS, "optimizer", self.optimizer, OPTIMIZERS)
        _require(self.augment in AUGMENTATIONS, "augment", self.augment, AUGMENTATIONS)
        _require(self.device in DEVICES, "device", self.device, DEVICES)
        _require(self.weights in WEIGHT_CHOICES, "weights", self.weights, WEIGHT_CHOICES)
        _require(self.head_init in HEAD_INITS, "head start", self.head_init, HEAD_INITS)
        if not isinstance(self.prompts, (list, tuple)) or len(self.prompts) > MAX_PROMPTS:
            raise ConfigError(f"prompt templates must be a list of at most {MAX_PROMPTS}")
        object.__setattr__(self, "prompts", tuple(str(p) for p in self.prompts))  # a JSON list reads back as a tuple
        _require(self.head in HEADS, "head", self.head, HEADS)
        if self.head == "prototype" and self.task != "single":
            raise ConfigError("the prototype head answers with one label per image; choose the linear head for "
                              f"the task '{self.task}'")
        _require(self.strategy in STRATEGIES, "strategy", self.strategy, STRATEGIES)
        if not (isinstance(self.freeze_depth, int) and self.freeze_depth >= 0) and self.freeze_depth != FREEZE_ALL:
            raise ConfigError(f"freeze depth must be a whole number >= 0 or 'all', not {self.freeze_depth!r}")
        for name, (low, high) in RANGES.items():
            value = getattr(self, name)
            if value is not None and (not isinstance(value, (int, float)) or not low <= value <= high):
                raise ConfigError(f"{_WORDS.get(name, name.replace('_', ' '))} must be between {low:g} and {high:g}, not {value}")
        if self.uses_adapters():
            _check_adapters(self)

    def uses_adapters(self) -> bool:
        return self.strategy == "adapters"

    def trains_head_only(self) -> bool:
        """Feature extraction: only the new head trains (whichever way the depth was written, "all" or 9 of 9)."""
        from core.training.advice import stage_table  # the backbone's stages: a registry lookup, cached

        if self.uses_adapters():  # the adapters train inside the backbone: its features are not the cached ones
            return False
        return trains_head_only(self.freeze_depth, len(stage_table(self.backbone).names))

    def describe(self) -> str:
        """How the backbone adapts, in a few words (run lists, the CLI)."""
        if self.uses_adapters():
            stages = "the last stage" if self.adapter_stages == 1 else f"the last {self.adapter_stages} stages"
            return f"adapters (LoRA rank {self.adapter_rank}) in {stages}"
        if self.freeze_depth == FREEZE_ALL:
            return "feature extraction"
        return f"{self.freeze_depth} stages frozen" if self.freeze_depth else "fine-tune everything"

    def resolved_augment(self, frozen_stages: int, total_stages: int) -> str:
        if self.augment != "auto":
            return self.augment
        return "none" if frozen_stages >= total_stages else "light"

    def resolved_lr(self, frozen_stages: int, total_stages: int) -> float:
        if self.lr is not None:
            return self.lr
        if self.uses_adapters() and frozen_stages < total_stages:
            return ADAPTER_LR
        return default_lr(frozen_stages, total_stages)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "TrainConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in known})


def defaults() -> dict[str, Any]:
    """Each setting's default, from the dataclass itself (so there is one place to change it)."""
    return {f.name: f.default for f in dataclasses.fields(TrainConfig) if f.default is not dataclasses.MISSING}


def default_lr(frozen_stages: int, total_stages: int) -> float:
    """A head alone on fixed features tolerates a large step; pretrained layers being tuned need a small one."""
    if frozen_stages >= total_stages:
        return 3e-3
    if frozen_stages >= total_stages - 2:
        return 1e-3
    return 3e-4


# Adapters start at zero (LoRA's B = 0) and have few weights, so they take a larger step than pretrained layers being
# tuned (the LoRA paper and peft's image-classification example use 5e-4 to 5e-3); bench/strategies.py measured it.
ADAPTER_LR = 1e-3


def _check_adapters(config: "TrainConfig") -> None:
    if config.weights == "none":
        raise ConfigError("adapters adapt pretrained weights, which stay as they are; with random initial weights "
                          "(weights: none) choose feature extraction or fine-tuning instead")
    if config.freeze_depth != FREEZE_ALL:
        raise ConfigError("with adapters every pretrained weight stays as it is: leave the freeze depth at 'all' and "
                          "choose how many stages get adapters (adapter stages)")


def trains_head_only(freeze_depth: int | str, total_stages: int) -> bool:
    """The one answer to "does only the new head train?" (feature extraction): "all", or a depth that freezes every
    stage (the Train page's slider at its end gives the stage count)."""
    return freeze_depth == FREEZE_ALL or (isinstance(freeze_depth, int) and freeze_depth >= total_stages)


def frozen_stages(freeze_depth: int | str, total_stages: int) -> int:
    return total_stages if trains_head_only(freeze_depth, total_stages) else int(freeze_depth)


def parse_freeze_depth(text: str | int) -> int | str:
    if isinstance(text, int) or text == FREEZE_ALL:
        return text
    if str(text).isdigit():
        return int(text)
    raise ConfigError(f"freeze depth must be a whole number >= 0 or 'all', not {text!r}")


def _require(ok: bool, name: str, value: Any, allowed: tuple[str, ...]) -> None:
    if not ok:
        raise ConfigError(f"unknown {name} {value!r}; choose one of: {', '.join(allowed)}")
