"""What a dataset version is, and how one edit (a user's change, as data) makes the next version from it.

`core.data.store` keeps versions on disk; this module holds the rules: class names (core.data.names), the change
between two versions, applying an edit, and when an edit made on an older version clashes with a newer one.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from core.data import answers, names
from core.i18n import _, quoted


class StoreError(ValueError):
    """A change that cannot be made; the message is one plain sentence for the user."""


class StaleVersion(StoreError):
    """The change was based on an older version and touches images someone else changed since."""


@dataclass
class Edit:
    """One change a user makes, as data, so it can be replayed onto a newer version (rebase)."""
    add: dict[str, dict[str, Any]] = field(default_factory=dict)  # hash -> {"label", "name"}
    # hash -> the task's new answer (a class, a list of tags, a number; core.data.answers), None: back to the pool
    set_label: dict[str, Any] = field(default_factory=dict)
    remove: set[str] = field(default_factory=set)
    rename: dict[str, str] = field(default_factory=dict)  # old class -> new class (an existing one: a merge)
    add_classes: list[str] = field(default_factory=list)
    message: str = ""


@dataclass(frozen=True)
class Version:
    dataset: str
    number: int
    name: str
    created: float
    message: str
    classes: list[str]
    images: dict[str, dict[str, Any]]
    changes: dict[str, int]
    task: str = "single"  # what each image's answer is (core.data.answers); versions made before tasks: single

    @property
    def ref(self) -> str:
        return f"{self.dataset}@{self.number}"

    @property
    def answer(self) -> answers.Answer:
        return answers.of(self.task)

    def counts(self) -> dict[str, int]:
        """Labelled images per class or tag (every one, even empty ones), in class order; none for values."""
        counts = {label: 0 for label in self.classes}
        for entry in self.images.values():
            for tag in self.answer.tags(entry["label"]) if entry["label"] is not None else ():
                counts[tag] = counts.get(tag, 0) + 1
        return counts

    def labelled(self) -> int:
        """Images with an answer (an image whose answer is 'none of the tags' counts: it was labelled)."""
        return sum(entry["label"] is not None for entry in self.images.values())

    def pool(self) -> list[str]:
        return [h for h, entry in self.images.items() if entry["label"] is None]

    def summary(self) -> str:
        return describe_changes(self.changes, self.answer.names_changed)


def check_class_name(name: str) -> str:
    """The name in its one spelling (NFC); StoreError with the reason if it cannot be a class."""
    name = names.normalize(name)
    problem = names.refusal(name)
    if problem:
        raise StoreError(problem)
    return name


def diff(old: dict[str, dict[str, Any]], new: dict[str, dict[str, Any]]) -> dict[str, list[str]]:
    """Which images were added, removed, labelled (from the pool), relabelled, or sent back to the pool."""
    out: dict[str, list[str]] = {"added": [], "removed": [], "labelled": [], "relabelled": [], "unlabelled": []}
    for h, entry in new.items():
        before = old.get(h)
        if before is None:
            out["added"].append(h)
        elif before["label"] != entry["label"]:
            kind = "labelled" if before["label"] is None else "unlabelled" if entry["label"] is None else "relabelled"
            out[kind].append(h)
    out["removed"] = [h for h in old if h not in new]
    return out


def describe_changes(changes: dict[str, int], names_changed: tuple[str, str] = answers.Answer.names_changed) -> str:
    """The change in a few words, in the reader's language; `names_changed`: how new and gone names are counted
    (classes, tags: core.data.answers). A terse count ("+1 images"), not a sentence, in one form for every number."""
    words = {"added": _("+{count} images"), "removed": _("-{count} images"), "labelled": _("{count} labelled"),
             "relabelled": _("{count} relabelled"), "unlabelled": _("{count} back to the pool"),
             "new_classes": _(names_changed[0]), "gone_classes": _(names_changed[1])}
    parts = [words[k].format(count=n) for k, n in changes.items() if n and k in words]
    return _(", ").join(parts) or _("no change")


def apply(head: Version, edit: Edit) -> tuple[dict[str, dict[str, Any]], list[str]]:
    """The images and classes (or tags) after `edit`; every answer it gives is checked by the task's entry."""
    images = {h: dict(entry) for h, entry in head.images.items()}
    classes, answer = list(head.classes), head.answer
    for old, new in edit.rename.items():
        new = _new_class(new, [c for c in classes if c not in edit.rename])
        if old not in classes:
            raise StoreError(_("There is no class {name} to rename.").format(name=quoted(old)))
        classes = [c for c in classes if c != old] + ([new] if new not in classes else [])
        for entry in images.values():
            if entry["label"] is not None:
                entry["label"] = answer.rename(entry["label"], {old: new})
    for name in edit.add_classes:
        if (name := _new_class(name, classes)) not in classes:
            classes.append(name)
    for digest, entry in edit.add.items():
        images.setdefault(digest, {"label": _checked(answer, entry.get("label"), classes), "name": entry["name"]})
    for digest, label in edit.set_label.items():
        if digest in images:
            images[digest]["label"] = _checked(answer, label, classes)
    for digest in edit.remove:
        images.pop(digest, None)
    used = {tag for e in images.values() if e["label"] is not None for tag in answer.tags(e["label"])}
    classes += sorted(used - set(classes))  # a label given to an image makes its class exist
    return images, classes


def _checked(answer: answers.Answer, raw: Any, classes: list[str]) -> Any:
    """`raw` as the task stores it (None stays None: the pool); a new class or tag it names joins `classes`."""
    if raw is None:
        return None

    def name(typed: str) -> str:
        known = typed if typed in classes else _new_class(typed, classes)
        classes.extend([] if known in classes else [known])
        return known

    try:
        return answer.check(raw, name)
    except answers.AnswerRefused as error:
        raise StoreError(str(error)) from None


def _new_class(name: str, classes: list[str]) -> str:
    """A class name typed into the store: checked, in its one spelling, and not a lookalike of another class."""
    name = check_class_name(name)
    twin = None if name in classes else names.lookalike_of(name, classes)
    if twin is not None:
        raise StoreError(_("There is already a class {twin}: {name} differs from it only in letter case or lookalike "
                           "characters, and the two would become one folder on Windows and macOS; use {twin}, or a "
                           "clearly different name.").format(twin=quoted(names.shown(twin)), name=quoted(names.shown(name))))
    return name


def refuse_conflicts(base: Version, head: Version, edit: Edit) -> None:
    """Raise StaleVersion if `edit` touches what changed between `base` and `head`; else it can be rebased."""
    changed = {h for hashes in diff(base.images, head.images).values() for h in hashes}
    touched = set(edit.set_label) | edit.remove | set(edit.add)
    renamed = set(edit.rename)
    labels_changed = {tag for v in (base, head) for h in changed if (entry := v.images.get(h)) and
                      entry["label"] is not None for tag in v.answer.tags(entry["label"])}
    if renamed and (base.classes != head.classes or renamed & labels_changed):
        touched |= changed  # a rename moves every image of the class: any change there is a conflict
    clash = touched & changed
    if clash:
        raise StaleVersion(_("Someone else saved version {newer} of this dataset while you were looking at version "
                             "{older}, and changed {count} of the same images. Your change was not saved: the page now "
                             "shows their version, please make your change again.").format(
                                 newer=head.number, older=base.number, count=len(clash)))
