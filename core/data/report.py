"""The data report: what was found, what was skipped and why, and plain-language warnings.

Warnings and the error are plain text that quote user-supplied names as they are: a page escapes them
(core.text.md) when it renders them.
"""
from __future__ import annotations

import dataclasses
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.data import names
from core.data.archive import Skipped
from core.i18n import _, listing, quoted
from core.text import invisible_characters, revealed

MIN_IMAGES_PER_CLASS = 5
MAX_IMBALANCE = 5.0
TINY_SIDE = 32


@dataclass(frozen=True)
class ImageRecord:
    path: str  # relative to the dataset root, '/'-separated
    label: str
    split: str | None  # "train" | "val" | "test" when the data came split
    sha256: str
    width: int
    height: int
    labels: tuple[str, ...] = ()  # several labels (multi-label data); `label` is then their ';'-joined list
    value: float | None = None  # the number to predict (regression data)


@dataclass
class DataReport:
    root: Path
    layout: str  # "class_folders" | "split_folders" | "metadata" | "empty"
    images: list[ImageRecord] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    error: str | None = None
    task: str = "single"  # what the targets are: one label, several labels ("multi"), a number ("regression")
    target: str = "label"  # the metadata column they came from (class folders: "label")
    details: dict[str, Any] = field(default_factory=dict)  # the task's own summary: co-occurrence, value histogram

    @property
    def labels(self) -> list[str]:
        """The classes (tags for multi-label data; none for values)."""
        if self.task == "regression":
            return []
        return sorted({tag for r in self.images for tag in self._tags(r)})

    def _tags(self, record: ImageRecord) -> tuple[str, ...]:
        return record.labels if self.task == "multi" else (record.label,)

    @property
    def classes(self) -> dict[str, int]:
        """Images per class (per tag: an image with two tags counts for both)."""
        counts = Counter(tag for r in self.images for tag in self._tags(r)) if self.task != "regression" else {}
        return {label: counts[label] for label in self.labels}

    @property
    def splits(self) -> dict[str, dict[str, int]] | None:
        if not any(r.split for r in self.images):
            return None
        table: dict[str, dict[str, int]] = defaultdict(dict)
        pairs = Counter((r.split, tag) for r in self.images
                        for tag in (self._tags(r) if self.task != "regression" else ("images",)))
        for (split, label), n in sorted(pairs.items(), key=lambda item: (str(item[0][0]), item[0][1])):
            table[str(split)][label] = n
        return dict(table)

    @property
    def trainable(self) -> bool:
        return self.error is None

    def to_json(self) -> dict[str, Any]:
        return {
            "trainable": self.trainable,
            "error": self.error,
            "root": str(self.root),
            "layout": self.layout,
            "task": self.task,
            "target": self.target,
            "classes": self.classes,
            "splits": self.splits,
            **self.details,
            "skipped": [dataclasses.asdict(s) for s in self.skipped],
            "warnings": self.warnings,
        }


def judge(report: DataReport) -> DataReport:
    """Fill in the report's error (if it cannot train) and warnings."""
    if report.task != "single":
        from core.data import target_checks

        return target_checks.judge(report, _duplicate_warnings(report.images) + _tiny_warnings(report.images))
    labels = report.labels
    if not labels:
        report.error = _("No images were found. Put your images in one folder per class (e.g. cats/, dogs/), zip "
                         "them, and upload the zip.")
    elif len(labels) == 1:
        report.error = _("Only one class ({name}) was found. A model learns to tell classes apart, so it needs at "
                         "least two folders of images.").format(name=quoted(labels[0]))
    report.warnings = (_size_warnings(report.classes) + _name_warnings(labels) + _duplicate_warnings(report.images)
                       + _tiny_warnings(report.images))
    if report.splits and "val" in report.splits:
        missing = [c for c in labels if c not in report.splits["val"]]
        if missing:
            report.warnings.append(_("No validation images for {classes}: their accuracy cannot be measured.").format(
                classes=listing(missing)))
    return report


def _size_warnings(classes: dict[str, int]) -> list[str]:
    warnings = []
    small = [c for c, n in classes.items() if n < MIN_IMAGES_PER_CLASS]
    if small:
        warnings.append(_("Very few images in {classes} (fewer than {minimum}). Add more examples of these classes; "
                          "20 or more each works much better.").format(classes=listing(small),
                                                                       minimum=MIN_IMAGES_PER_CLASS))
    if len(classes) >= 2 and min(classes.values()) > 0:
        most, least = max(classes, key=classes.get), min(classes, key=classes.get)
        if classes[most] / classes[least] > MAX_IMBALANCE:
            warnings.append(_("The classes are unbalanced: {most} has {most_count} images but {least} only "
                              "{least_count}. The model may favour {most}; add images to the smaller classes.").format(
                most=quoted(most), most_count=classes[most], least=quoted(least), least_count=classes[least]))
    return warnings


def _name_warnings(labels: list[str]) -> list[str]:
    """Names that look alike but differ (cat and ca<U+200B>t) or that reorder text when shown (direction overrides)."""
    warnings = []
    groups = names.lookalike_groups(labels)
    for look_alikes in groups:
        hidden = sorted({name for label in look_alikes for name in invisible_characters(label)})
        why = (_("invisible characters ({characters})").format(characters=", ".join(hidden)) if hidden
               else _("letter case or character forms"))
        warnings.append(_("The classes {classes} look the same but differ by {why}, so the model treats them as "
                          "different classes (and Windows and macOS would put them in one folder). Rename or merge "
                          "these folders.").format(classes=listing([revealed(label) for label in look_alikes]),
                                                   why=why))
    grouped = {label for group in groups for label in group}
    marked = [label for label in labels if invisible_characters(label) and label not in grouped]
    if marked:
        hidden = sorted({name for label in marked for name in invisible_characters(label)})
        warnings.append(_("The class names {classes} hold invisible or text-direction characters ({characters}); "
                          "they may display differently from how they are stored. Rename these folders.").format(
            classes=listing([revealed(label) for label in marked]), characters=", ".join(hidden)))
    return warnings


def _duplicate_warnings(images: list[ImageRecord]) -> list[str]:
    by_hash: dict[str, list[ImageRecord]] = defaultdict(list)
    for record in images:
        by_hash[record.sha256].append(record)
    groups = [g for g in by_hash.values() if len(g) > 1]
    warnings = []
    same = [g for g in groups if len({r.label for r in g}) == 1]
    if same:
        warnings.append(_("{count} image(s) appear more than once in the same class (e.g. {examples}). Duplicates "
                          "make accuracy look better than it is; remove the copies.").format(
            count=len(same), examples=_paths(same[0])))
    conflicts = [g for g in groups if len({r.label for r in g}) > 1]
    if conflicts:
        warnings.append(_("{count} identical image(s) are filed under different classes (e.g. {examples}). Check "
                          "their labels: one of each pair is wrong.").format(count=len(conflicts),
                                                                            examples=_paths(conflicts[0])))
    leaks = [g for g in groups if {"train", "val"} <= {r.split for r in g}]
    if leaks:
        warnings.append(_("{count} image(s) are in both train/ and val/ (e.g. {examples}). Validation then measures "
                          "memory, not learning; remove them from one side.").format(count=len(leaks),
                                                                                    examples=_paths(leaks[0])))
    return warnings


def _tiny_warnings(images: list[ImageRecord]) -> list[str]:
    tiny = [r for r in images if min(r.width, r.height) < TINY_SIDE]
    if not tiny:
        return []
    return [_("{count} image(s) are tiny (under {side} pixels on a side, e.g. {example}); they will be enlarged and "
              "look blurry to the model.").format(count=len(tiny), side=TINY_SIDE, example=quoted(tiny[0].path))]


def _paths(group: list[ImageRecord]) -> str:
    return _("{first} and {second}").format(first=quoted(group[0].path), second=quoted(group[1].path))
