"""A run's data, read once: the report of what was found, the task, and the train/validation split that every
later step (training, evaluation, trust, the model card) uses as it is, never splitting again."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from core import tasks
from core.data.datasets import inspect_data, split
from core.data.report import ImageRecord
from core.tasks import Task
from core.training.config import TrainConfig


class DataError(ValueError):
    """The data cannot be trained on; the message is the data report's reason."""


@dataclass(frozen=True)
class TrainingData:
    root: Path  # the folder the records' paths are relative to
    labels: list[str]
    train: list[ImageRecord]
    val: list[ImageRecord]
    task: Task

    def part(self, name: str) -> list[ImageRecord]:
        return {"train": self.train, "val": self.val}[name]


def prepare(config: TrainConfig, work_dir: Path) -> TrainingData:
    """Inspect (an archive is unpacked once, by content hash) and split, as `config` says. Raises DataError,
    ArchiveRefused."""
    report = inspect_data(Path(config.data), work_dir, task=config.task, target=config.target or None)
    if not report.trainable:
        raise DataError(report.error)
    train, val = split(report, config.val_split, config.seed)
    return TrainingData(report.root, report.labels, train, val, tasks.get(report.task))
