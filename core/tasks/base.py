"""What a task is: the head's width, the loss, how raw outputs become answers, and how they are judged.

A task is an entry of the registry (core/tasks/__init__.py), not a branch: the training loop, the run pipeline, the
Predictor, the export and the pages ask the run's task. `Evaluation` is the one typed form of a run's
evaluation.json, whatever the task.
"""
from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from core.data.report import ImageRecord
from core.i18n import N_, _

# The keys of evaluation.json before tasks existed (single-label runs made by older versions): still read.
_FLAT_SINGLE_LABEL = ("accuracy", "macro_f1", "per_class", "confusion", "labels", "predictions", "num_images")


@dataclass
class Evaluation:
    """How the trained model did on the validation images, with intervals, and what the trust step added."""
    task: str
    labels: list[str]
    num_images: int
    metrics: dict[str, float | None]  # the task's headline numbers, e.g. accuracy and macro_f1
    intervals: dict[str, list[float]] = field(default_factory=dict)  # 95% interval per metric
    interval_notes: list[str] = field(default_factory=list)  # a sentence for each interval too wide to trust
    per_label: list[dict[str, Any]] = field(default_factory=list)
    confusion: list[list[int]] = field(default_factory=list)
    predictions: list[dict[str, Any]] = field(default_factory=list)  # one per validation image, with its sha256
    trust: dict[str, Any] = field(default_factory=dict)  # calibration, abstention, ood, conformal; "error" if failed

    def metric(self, name: str) -> float | None:
        value = self.metrics.get(name)
        return float(value) if isinstance(value, (int, float)) else None

    @property
    def accuracy(self) -> float | None:
        return self.metric("accuracy")

    @property
    def macro_f1(self) -> float | None:
        return self.metric("macro_f1")

    def mistakes(self) -> list[dict[str, Any]]:
        """The wrong answers, the most confident (or, for values, the largest error) first."""
        wrong = [p for p in self.predictions if not p.get("correct", p.get("true") == p.get("predicted"))]
        return sorted(wrong, key=lambda p: -float(p.get("confidence", p.get("error", 0.0)) or 0.0))

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: Any) -> "Evaluation | None":
        """The stored evaluation, or None when it is not one (damaged, incomplete)."""
        if not isinstance(data, dict):
            return None
        if "task" not in data:
            return cls._from_flat(data)
        fields = [f.name for f in dataclasses.fields(cls)]
        if any(name not in data for name in fields):  # every field is written: a missing one means damage
            return None
        evaluation = cls(**{name: data[name] for name in fields})
        return evaluation if isinstance(evaluation.metrics, dict) and isinstance(evaluation.labels, list) else None

    @classmethod
    def _from_flat(cls, data: dict[str, Any]) -> "Evaluation | None":
        if any(key not in data for key in _FLAT_SINGLE_LABEL):
            return None
        trust = {k: data[k] for k in ("calibration", "abstention", "ood") if k in data}
        if data.get("trust_error"):
            trust["error"] = data["trust_error"]
        return cls("single", data["labels"], data["num_images"],
                   {"accuracy": data["accuracy"], "macro_f1": data["macro_f1"]}, data.get("intervals", {}),
                   data.get("interval_notes", []), data["per_class"], data["confusion"], data["predictions"], trust)


@dataclass(frozen=True)
class Measure:
    """One number the pages show for a task: where it is in the evaluation, its name in plain words, what it means."""
    key: str
    title: str
    help: str
    percent: bool = True  # a share (shown as %) or a number in the user's own units


class Task(ABC):
    """One kind of answer a model learns to give. Subclasses are stateless: whatever a run needs at prediction
    time (thresholds, a temperature, interval widths) is what `calibrate` returns, stored with the run."""
    name: ClassVar[str]  # the registry key, stored in the run's config: "single", "multi", "regression"
    title: ClassVar[str]  # in plain words, for the Data page and the model card (marked N_: shown with _())
    score_name: ClassVar[str] = "accuracy"  # what each epoch reports (higher is better)
    measures: ClassVar[tuple[Measure, ...]] = ()  # the Evaluate page's headline numbers, with their intervals
    label_columns: ClassVar[tuple[Measure, ...]] = ()  # the per-label table's columns (keys of per_label rows)
    figures: ClassVar[tuple[str, ...]] = ()  # the Evaluate page's charts, by name (core.insight.task_charts)
    mistakes_title: ClassVar[str] = N_("Wrong answers")
    top_k_choice: ClassVar[bool] = False  # whether the user chooses how many guesses to see
    # What the pages offer for this task, declared here so no page compares a task's name (tests/test_tasks.py).
    per_label_heading: ClassVar[str] = N_("Per label")  # the Evaluate page's per-label table
    supports_cross_validation: ClassVar[bool] = True  # core.insight.crossval: k heads on cached features
    compares_backbones: ClassVar[bool] = False  # the Train page's "Compare for me" scores class heads
    backbone_advice: ClassVar[bool] = True  # the backbone suggestion, measured on images per class, applies
    reports_accuracy: ClassVar[bool] = False  # the Runs table's accuracy and class-balanced columns mean something
    heatmap_note: ClassVar[str] = ""  # what a heatmap shows for this task's answers, beyond explain.CAVEAT
    # What the Monitor's Python example prints of `result`, one answer of the service's JSON.
    python_example: ClassVar[str] = 'print(result)'
    # What the Monitor page summarises of the served answers, by name (core.serving.monitor's WATCHES).
    monitor: ClassVar[str] = "classes"
    truth: ClassVar[str] = "label"  # how a true answer is sent back (/feedback): "label", "tags" or "value"

    def interval_notes(self, evaluation: Evaluation) -> list[str]:
        """A sentence for each interval too wide to trust, in the reader's language (as stored, by default)."""
        return list(evaluation.interval_notes)

    def verdict(self, answer: dict[str, Any], guess: bool = False) -> str:
        """One answer (the JSON a Predictor gives) in plain words, for the Predict page; `guess`: the answer is
        "unknown" or "not sure", so it is said without a claim of confidence."""
        return str(answer)

    def describe(self, prediction: dict[str, Any]) -> str:
        """One validation answer in a few words, for the caption under its picture (plain text, not markup)."""
        return _("true: {true} · predicted: {predicted}").format(true=prediction.get("true"),
                                                                 predicted=prediction.get("predicted"))

    def explained_label(self, prediction: dict[str, Any]) -> str | None:
        """The label a heatmap of this validation answer explains (None: the head's strongest output)."""
        predicted = prediction.get("predicted")
        return predicted if isinstance(predicted, str) else None

    @abstractmethod
    def outputs(self, labels: list[str]) -> int:
        """How many numbers the head gives per image."""

    @abstractmethod
    def targets(self, records: list[ImageRecord], labels: list[str]) -> torch.Tensor:
        """What the head learns to give for each record."""

    @abstractmethod
    def criterion(self, train_targets: torch.Tensor) -> nn.Module:
        """The loss, built once per run from the training targets (so it can weight rare labels)."""

    def adapt_head(self, model: nn.Module) -> None:
        """Swap the model's last layer for the task's own kind, before training or before loading weights into it
        (a regression head answers in the user's units); nothing by default."""

    def prepare_head(self, linear: nn.Linear, train_targets: torch.Tensor) -> None:
        """Adjust the new last layer before training (a regression head starts at the mean); nothing by default."""

    @abstractmethod
    def batch_score(self, logits: torch.Tensor, targets: torch.Tensor, criterion: nn.Module) -> float:
        """The epoch score summed over a batch (divided by the images seen afterwards); higher is better."""

    @abstractmethod
    def answers(self, logits: torch.Tensor) -> torch.Tensor:
        """The head's raw outputs as what they mean: class probabilities, label probabilities, values."""

    @abstractmethod
    def evaluate(self, labels: list[str], records: list[ImageRecord], answers: torch.Tensor) -> Evaluation:
        """Metrics with 95% intervals on the validation records."""

    @abstractmethod
    def calibrate(self, answers: np.ndarray, targets: np.ndarray) -> dict[str, Any]:
        """What makes answers trustworthy, fitted on held-out outputs: {"predict": what prediction needs (stored
        in calibration.json), "report": what the Evaluate page shows}."""

    @abstractmethod
    def answer(self, answers: torch.Tensor, labels: list[str], trust: dict[str, Any], top_k: int,
               coverage: float | None = None) -> list[dict[str, Any]]:
        """One JSON answer per image (rows of `answers`), with the run's stored calibration applied; `coverage`
        asks for conformal sets or intervals at another rate than the run's default (90%)."""

    @abstractmethod
    def uncertainty(self, answers: np.ndarray) -> np.ndarray:
        """How unsure the model is about each image (higher = more unsure): what to label next."""
