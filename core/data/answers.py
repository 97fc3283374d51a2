"""How each task's answer is kept in a dataset version, checked when it is typed, and written out for training.

A version's manifest keeps, per image, `label`: None while the image waits in the unlabelled pool, else the task's
answer in its one stored form: a class name (one label per image), a sorted list of tags (several labels per image;
[] says none of them applies, which is an answer too), or a number (a score). One entry per task name of
core.tasks (the data layer sits below it and cannot import it; tests/test_label_tasks.py checks both registries
name the same tasks): the store, the checkout and the Label page ask the entry, none of them branches on the task.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, ClassVar

from core.i18n import N_, _, number, quoted

MAX_VALUE = 1e9  # a typed value beyond this is a typo, not a measurement
MAX_TAGS_PER_IMAGE = 100
TAG_SEPARATOR = ";"  # how metadata.csv separates an image's tags (core.data.metadata reads it so)

NameCheck = Callable[[str], str]  # a typed class or tag name -> its one spelling; raises with a sentence


class AnswerRefused(ValueError):
    """An answer that cannot be stored; the message is one plain sentence."""


class Answer:
    """One task's answer as a version stores it. The default methods suit answers made of class names."""
    task: ClassVar[str]
    column: ClassVar[str]  # the metadata column the data side reads it from (core.data.metadata.TASK_OF_COLUMN)
    folders: ClassVar[bool] = False  # written as one folder per class (else beside a metadata.csv)
    noun: ClassVar[str] = N_("Classes")  # what the page counts: classes, tags (values have none); shown with _()
    # the change counts of a version's names ("+2 classes"), and the box naming them on a new dataset; shown with _()
    names_changed: ClassVar[tuple[str, str]] = (N_("+{count} classes"), N_("-{count} classes"))
    names_prompt: ClassVar[str] = N_("Its classes (comma-separated; you can add more later)")

    def check(self, raw: Any, name: NameCheck) -> Any:
        """`raw` (typed or chosen on the page, or read from a zip) in its stored form; AnswerRefused if it cannot be
        one. `name` checks a class or tag name the answer holds."""
        raise NotImplementedError

    def tags(self, stored: Any) -> tuple[str, ...]:
        """The class or tag names a stored answer uses (they exist in the version's classes)."""
        return ()

    def rename(self, stored: Any, renamed: dict[str, str]) -> Any:
        return stored

    def cell(self, stored: Any) -> str:
        """The answer as its metadata.csv cell."""
        return str(stored)

    def from_record(self, record: Any) -> Any:
        """The answer of a scanned image (core.data.report.ImageRecord) of a dataset of this task."""
        raise NotImplementedError

    def text(self, stored: Any) -> str:
        """The answer in a few words, for the caption under an image."""
        return str(stored)


class OneLabel(Answer):
    task, column, folders = "single", "label", True

    def check(self, raw: Any, name: NameCheck) -> str:
        return name(str(raw))

    def tags(self, stored: str) -> tuple[str, ...]:
        return (stored,)

    def rename(self, stored: str, renamed: dict[str, str]) -> str:
        return renamed.get(stored, stored)

    def from_record(self, record: Any) -> str:
        return record.label


class Tags(Answer):
    task, column, noun = "multi", "labels", N_("Tags")
    names_changed = (N_("+{count} tags"), N_("-{count} tags"))
    names_prompt = N_("Its tags (comma-separated; you can add more later)")

    def check(self, raw: Any, name: NameCheck) -> list[str]:
        given = [raw] if isinstance(raw, str) else list(raw or [])
        if len(given) > MAX_TAGS_PER_IMAGE:
            raise AnswerRefused(_("An image can carry at most {most} tags.").format(most=MAX_TAGS_PER_IMAGE))
        if any(TAG_SEPARATOR in str(tag) for tag in given):
            raise AnswerRefused(_("A tag cannot contain {separator}, which separates tags in metadata.csv.").format(
                separator=quoted(TAG_SEPARATOR)))
        return sorted({name(str(tag)) for tag in given})

    def tags(self, stored: list[str]) -> tuple[str, ...]:
        return tuple(stored)

    def rename(self, stored: list[str], renamed: dict[str, str]) -> list[str]:
        return sorted({renamed.get(tag, tag) for tag in stored})

    def cell(self, stored: list[str]) -> str:
        return TAG_SEPARATOR.join(stored)

    def from_record(self, record: Any) -> list[str]:
        return sorted(record.labels)

    def text(self, stored: list[str]) -> str:
        return _(", ").join(stored) if stored else _("no tag")


class Value(Answer):
    task, column, noun = "regression", "value", ""
    names_prompt = N_("No names needed: each image gets a number")

    def check(self, raw: Any, name: NameCheck) -> float:
        try:
            value = float(str(raw).strip().replace(",", ".")) if not isinstance(raw, (int, float)) else float(raw)
        except ValueError:
            raise AnswerRefused(_("{text} is not a number.").format(text=quoted(str(raw)[:40]))) from None
        if not math.isfinite(value) or abs(value) > MAX_VALUE:
            raise AnswerRefused(_("A value must be a number between {low} and {high}.").format(
                low=number(-MAX_VALUE), high=number(MAX_VALUE)))
        return value

    def cell(self, stored: float) -> str:
        return repr(float(stored))  # the shortest text that reads back as exactly this number

    def from_record(self, record: Any) -> float:
        return float(record.value)

    def text(self, stored: float) -> str:
        return f"{float(stored):.4g}"


ANSWERS: dict[str, Answer] = {answer.task: answer for answer in (OneLabel(), Tags(), Value())}


def of(task: str | None) -> Answer:
    """The entry for `task` (one label per image when None: versions made before tasks existed)."""
    answer = ANSWERS.get(task or "single")
    if answer is None:
        raise AnswerRefused(_("This dataset's kind of answer ({kind}) is not known.").format(kind=quoted(str(task)[:20])))
    return answer
