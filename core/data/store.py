"""Editable datasets with immutable versions over content-addressed images.

Layout under the store root (e.g. `<workspace>/datasets/`):
  objects/ab/abcdef...           each image once, named by its sha256, shared by every version and dataset
  <id>/versions/000001.json      a manifest: hash -> {label (None = unlabelled pool), name}, classes, changes
  <id>/HEAD.json                 which version is current; replaced atomically after the manifest is written
  <id>/materialized/v000001/     a version as class folders (hard links), see core.data.checkout

Every write names the version it was based on. If someone else wrote since, non-conflicting edits are rebased
onto the newer version and conflicting ones are refused with a sentence, so two tabs never lose a change.
A crash at any point leaves HEAD on the previous, complete version.
"""
from __future__ import annotations

import fcntl
import json
import os
import re
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

MAX_CLASS_NAME = 80
UNSAFE_NAME = re.compile(r"[\x00-\x1f/\\]")


class StoreError(ValueError):
    """A change that cannot be made; the message is one plain sentence for the user."""


class StaleVersion(StoreError):
    """The change was based on an older version and touches images someone else changed since."""


@dataclass
class Edit:
    """One change a user makes, as data, so it can be replayed onto a newer version (rebase)."""
    add: dict[str, dict[str, Any]] = field(default_factory=dict)  # hash -> {"label", "name"}
    set_label: dict[str, str | None] = field(default_factory=dict)  # hash -> new label (None: back to the pool)
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

    @property
    def ref(self) -> str:
        return f"{self.dataset}@{self.number}"

    def counts(self) -> dict[str, int]:
        """Labelled images per class (every class, even empty ones), in class order."""
        counts = {label: 0 for label in self.classes}
        for entry in self.images.values():
            if entry["label"] is not None:
                counts[entry["label"]] = counts.get(entry["label"], 0) + 1
        return counts

    def pool(self) -> list[str]:
        return [h for h, entry in self.images.items() if entry["label"] is None]

    def summary(self) -> str:
        return describe_changes(self.changes)


def check_class_name(name: str) -> str:
    name = name.strip()
    if not name or name in (".", "..") or name.startswith(".") or UNSAFE_NAME.search(name):
        raise StoreError(f"'{name}' cannot be a class name: use letters, digits and spaces, without '/' or a "
                         "leading dot.")
    if len(name) > MAX_CLASS_NAME:
        raise StoreError(f"A class name may be at most {MAX_CLASS_NAME} characters long.")
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


def describe_changes(changes: dict[str, int]) -> str:
    words = {"added": "+{} images", "removed": "-{} images", "labelled": "{} labelled", "relabelled": "{} relabelled",
             "unlabelled": "{} back to the pool", "new_classes": "+{} classes", "gone_classes": "-{} classes"}
    parts = [words[k].format(n) for k, n in changes.items() if n and k in words]
    return ", ".join(parts) or "no change"


class DatasetStore:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    # --- reading -------------------------------------------------------------------------------------------
    def datasets(self) -> list[Version]:
        """The newest version of every dataset, most recently changed first."""
        heads = [self.version(p.parent.name) for p in self.root.glob("*/HEAD.json")]
        return sorted(heads, key=lambda v: v.created, reverse=True)

    def head(self, dataset: str) -> int:
        pointer = _read_json(self._dir(dataset) / "HEAD.json")
        if not pointer:
            raise StoreError("This dataset does not exist (any more).")
        return int(pointer["version"])

    def version(self, dataset: str, number: int | None = None) -> Version:
        number = self.head(dataset) if number is None else number
        data = _read_json(self._manifest(dataset, number))
        if not data or number > self.head(dataset):
            raise StoreError(f"Version {number} of this dataset does not exist.")
        return Version(dataset, number, data["name"], data["created"], data["message"], data["classes"],
                       data["images"], data["changes"])

    def log(self, dataset: str) -> list[Version]:
        """Every version, newest first."""
        return [self.version(dataset, n) for n in range(self.head(dataset), 0, -1)]

    def object_path(self, digest: str) -> Path:
        if not re.fullmatch(r"[0-9a-f]{64}", digest):
            raise StoreError("Not an image of this dataset.")
        return self.root / "objects" / digest[:2] / digest

    def resolve(self, ref: str) -> Version:
        """'id@3' or 'id' (the newest) -> the version."""
        dataset, _, number = ref.partition("@")
        return self.version(dataset, int(number) if number else None)

    # --- writing -------------------------------------------------------------------------------------------
    def create(self, name: str, classes: list[str] = ()) -> Version:
        dataset = uuid.uuid4().hex[:12]
        self._dir(dataset).mkdir(parents=True)
        with self._locked(dataset):
            return self._write(dataset, 0, name, [check_class_name(c) for c in dict.fromkeys(classes)], {},
                               "created", {})

    def put_object(self, data: bytes, digest: str) -> None:
        """Store an image's bytes under its hash (atomically; a second copy of the same image is free)."""
        target = self.object_path(digest)
        if target.exists():
            return
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{digest}.{uuid.uuid4().hex[:8]}.tmp")
        tmp.write_bytes(data)
        os.replace(tmp, target)

    def commit(self, dataset: str, base: int, edit: Edit) -> Version:
        """Apply `edit`, which the user made looking at version `base`; returns the new version."""
        with self._locked(dataset):
            head = self.version(dataset)
            if head.number != base:
                _refuse_conflicts(self.version(dataset, base), head, edit)
            images, classes = _apply(head, edit)
            changes = {k: len(v) for k, v in diff(head.images, images).items()}
            changes["new_classes"] = len(set(classes) - set(head.classes))
            changes["gone_classes"] = len(set(head.classes) - set(classes))
            if not any(changes.values()):
                return head
            return self._write(dataset, head.number, head.name, classes, images, edit.message, changes)

    def rename_dataset(self, dataset: str, base: int, name: str) -> Version:
        with self._locked(dataset):
            head = self.version(dataset)
            return self._write(dataset, head.number, name.strip() or head.name, head.classes, head.images,
                               "renamed", {})

    def _write(self, dataset: str, parent: int, name: str, classes: list[str], images: dict, message: str,
               changes: dict[str, int]) -> Version:
        number = parent + 1
        manifest = {"name": name, "parent": parent, "created": time.time(), "message": message, "classes": classes,
                    "images": images, "changes": changes}
        _write_json(self._manifest(dataset, number), manifest)  # an orphan if we crash before HEAD moves
        _write_json(self._dir(dataset) / "HEAD.json", {"version": number})
        return self.version(dataset, number)

    # --- internals -----------------------------------------------------------------------------------------
    def _dir(self, dataset: str) -> Path:
        if not re.fullmatch(r"[0-9a-f]{12}", dataset):
            raise StoreError("This dataset does not exist.")
        return self.root / dataset

    def _manifest(self, dataset: str, number: int) -> Path:
        return self._dir(dataset) / "versions" / f"{number:06d}.json"

    @contextmanager
    def _locked(self, dataset: str) -> Iterator[None]:
        """One writer at a time per dataset, across threads and processes (several Streamlit servers)."""
        path = self._dir(dataset) / "write.lock"
        with open(path, "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)


def _apply(head: Version, edit: Edit) -> tuple[dict[str, dict[str, Any]], list[str]]:
    images = {h: dict(entry) for h, entry in head.images.items()}
    classes = list(head.classes)
    for old, new in edit.rename.items():
        new = check_class_name(new)
        if old not in classes:
            raise StoreError(f"There is no class '{old}' to rename.")
        classes = [c for c in classes if c != old] + ([new] if new not in classes else [])
        for entry in images.values():
            if entry["label"] == old:
                entry["label"] = new
    for name in edit.add_classes:
        if check_class_name(name) not in classes:
            classes.append(check_class_name(name))
    for digest, entry in edit.add.items():
        images.setdefault(digest, {"label": entry.get("label"), "name": entry["name"]})
    for digest, label in edit.set_label.items():
        if label is not None and label not in classes:
            classes.append(check_class_name(label))
        if digest in images:
            images[digest]["label"] = label
    for digest in edit.remove:
        images.pop(digest, None)
    used = {e["label"] for e in images.values() if e["label"] is not None}
    classes += sorted(used - set(classes))  # a label given to an image makes its class exist
    return images, classes


def _refuse_conflicts(base: Version, head: Version, edit: Edit) -> None:
    """Raise StaleVersion if `edit` touches what changed between `base` and `head`; else it can be rebased."""
    changed = {h for hashes in diff(base.images, head.images).values() for h in hashes}
    touched = set(edit.set_label) | edit.remove | set(edit.add)
    renamed = set(edit.rename)
    labels_changed = {entry["label"] for v in (base, head) for h in changed if (entry := v.images.get(h))}
    if renamed and (base.classes != head.classes or renamed & labels_changed):
        touched |= changed  # a rename moves every image of the class: any change there is a conflict
    clash = touched & changed
    if clash:
        raise StaleVersion(f"Someone else saved version {head.number} of this dataset while you were looking at "
                           f"version {base.number}, and changed {len(clash)} of the same images. Your change was "
                           "not saved: the page now shows their version, please make your change again.")


def _write_json(path: Path, value: Any) -> None:
    """Temp file, flush to disk, rename: a reader (or a crash) never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    with open(tmp, "w", encoding="utf-8") as handle:
        json.dump(value, handle, ensure_ascii=False)
        handle.flush()
        os.fsync(handle.fileno())
    try:
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
