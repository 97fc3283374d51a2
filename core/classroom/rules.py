"""What a class's students may do, set by the teacher, and enforced here, where every run is admitted.

The pages hide what is not allowed (advanced settings, backbones, pages), but hiding is not enforcing: `check`
validates each TrainConfig a student's workspace submits, whatever page or request it came from, and refuses with
one sentence (ConfigError) before a run folder exists. The defaults fit a 45-minute lesson on a CPU server: the
bundled backbone (works offline), only the final layer trains (seconds a run), at most 20 epochs and 10 runs each.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from core.models import backbones
from core.training.config import RANGES, ConfigError, TrainConfig
from core.training.config import defaults as config_defaults

# Pages a teacher may hide (by their url path); Data, Train, Evaluate and Predict are the lesson itself.
OPTIONAL_PAGES = {"label": "Label", "review": "Review labels", "export": "Export", "monitor": "Monitor",
                  "runs": "Runs"}
# The Train page's advanced settings: with them hidden, a run keeps their defaults (epochs and image size are capped
# instead, as the teacher set them).
ADVANCED = ("lr", "batch_size", "optimizer", "augment", "val_split", "seed", "device", "weights", "early_stopping",
            "two_stage", "weight_decay", "augmented_views")
BOUNDS = {"max_epochs": (1, 200), "max_image_size": (32, 1024), "max_runs": (1, 200)}


@dataclass(frozen=True)
class Rules:
    advanced: bool = False  # students see (and may change) the Train page's advanced settings
    fine_tuning: bool = False  # students may unfreeze pretrained layers (minutes a run on a CPU, not seconds)
    backbones: tuple[str, ...] = (backbones.BUNDLED,)
    max_epochs: int = 20
    max_image_size: int = 224
    max_runs: int = 10  # runs a student's workspace may hold that trained or are training
    hidden_pages: tuple[str, ...] = ("review", "monitor")

    def __post_init__(self) -> None:
        for name, (low, high) in BOUNDS.items():
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
                raise ConfigError(f"{name.replace('_', ' ')} must be a whole number from {low} to {high}")
        unknown = [b for b in self.backbones if b not in backbones.NAMES]
        if unknown or not self.backbones:
            raise ConfigError("choose at least one backbone of the catalogue for the class")
        if any(page not in OPTIONAL_PAGES for page in self.hidden_pages):
            raise ConfigError(f"only these pages can be hidden: {', '.join(OPTIONAL_PAGES.values())}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: Any) -> "Rules":
        """Stored rules; a damaged or unknown value falls back on the default (never fails a page)."""
        known = {f.name for f in dataclasses.fields(cls)}
        values = {k: tuple(v) if isinstance(v, list) else v for k, v in (values or {}).items() if k in known}
        try:
            return cls(**values)
        except (ConfigError, TypeError):
            return cls()

    def page_allowed(self, page: str) -> bool:
        return page not in self.hidden_pages

    def allowed_range(self, setting: str) -> tuple[int, int]:
        """The (lowest, highest) a number input may offer for `setting` in this class (epochs, image_size)."""
        low, high = (int(v) for v in RANGES[setting])
        cap = {"epochs": self.max_epochs, "image_size": self.max_image_size}.get(setting, high)
        return low, min(high, cap)

    def defaults(self) -> dict[str, Any]:
        """TrainConfig's defaults with this class's caps applied: what the Train page uses when settings are hidden."""
        values = config_defaults()
        values["epochs"] = min(values["epochs"], self.max_epochs)
        return values


def check(config: TrainConfig, rules: Rules, runs_so_far: int, all_gpus: bool = False) -> None:
    """Raise ConfigError with a sentence if a student of this class may not start this run."""
    if runs_so_far >= rules.max_runs:
        raise ConfigError(f"You have used the {rules.max_runs} runs your teacher allows each student in this class; "
                          "delete an old run on the Runs page, or ask your teacher.")
    if config.backbone not in rules.backbones:
        allowed = ", ".join(backbones.info(b).title for b in rules.backbones)
        raise ConfigError(f"In this class your teacher allows these backbones: {allowed}.")
    if config.epochs > rules.max_epochs:
        raise ConfigError(f"In this class a run may have at most {rules.max_epochs} epochs; choose fewer.")
    size = config.image_size or backbones.info(config.backbone).input_size
    if size > rules.max_image_size:
        raise ConfigError(f"In this class images may be at most {rules.max_image_size} pixels; choose a smaller "
                          "image size or backbone.")
    if not rules.fine_tuning and not config.trains_head_only():
        raise ConfigError("In this class only the final layer trains (feature extraction): move the freeze depth "
                          "to the end, or ask your teacher to allow fine-tuning.")
    if all_gpus:
        raise ConfigError("In a class the GPUs are shared: one run cannot take all of them.")
    if not rules.advanced:
        default = config_defaults()
        changed = [name for name in ADVANCED if getattr(config, name) != default[name]]
        if changed:
            raise ConfigError("Your teacher has hidden the advanced settings in this class, so a run keeps their "
                              f"defaults ({', '.join(n.replace('_', ' ') for n in changed)} changed).")
