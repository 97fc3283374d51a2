"""Editable datasets with immutable versions over content-addressed images.

Layout under the store root (e.g. `<workspace>/datasets/`):
  objects/ab/abcdef...           each image once, named by its sha256, shared by every version and dataset
  <id>/versions/000001.json      a manifest: hash -> {label (None = unlabelled pool; else the task's answer), name},
                                 classes (or tags), changes, task (core.data.answers)
  <id>/HEAD.json                 which version is current; replaced atomically after the manifest is written
  <id>/PENDING                   while an import has not committed its images: the dataset is not listed
  <id>/materialized/v000001/     a version as class folders (hard links), see core.data.checkout
  .scratch/                      uploads being unpacked and checked (the clean-up removes what a crash left)
  exports/                       zips of versions to download, built on demand (the clean-up removes them after a day)

Every write names the version it was based on. If someone else wrote since, non-conflicting edits are rebased
onto the newer version and conflicting ones are refused with a sentence, so two tabs never lose a change.
A crash at any point leaves HEAD on the previous, complete version, and a killed import leaves no dataset in the
list (its objects are collected later: core.maintenance).
"""
from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
import time
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from core import quota
from core.data import answers, names
from core.data.names import MAX_CLASS_NAME, UNSAFE_NAME  # noqa: F401 - part of this module's interface
from core.data.versions import (  # noqa: F401 - the store's interface: callers import these from here
    Edit,
    StaleVersion,
    StoreError,
    Version,
    apply,
    check_class_name,
    describe_changes,
    diff,
    refuse_conflicts,
)
from core.i18n import _, quoted

PENDING = "PENDING"
SCRATCH = quota.TRANSIENT  # ".scratch": the quota does not count what is only being checked
EXPORTS = "exports"


class DatasetStore:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    # --- reading -------------------------------------------------------------------------------------------
    def datasets(self) -> list[Version]:
        """The newest version of every dataset, most recently changed first (not those still being imported)."""
        heads = [self.version(p.parent.name) for p in self.root.glob("*/HEAD.json")
                 if re.fullmatch(r"[0-9a-f]{12}", p.parent.name) and not (p.parent / PENDING).exists()]
        return sorted(heads, key=lambda v: v.created, reverse=True)

    def head(self, dataset: str) -> int:
        pointer = _read_json(self._dir(dataset) / "HEAD.json")
        if not pointer:
            raise StoreError(_("This dataset does not exist (any more)."))
        return int(pointer["version"])

    def version(self, dataset: str, number: int | None = None) -> Version:
        number = self.head(dataset) if number is None else number
        data = _read_json(self._manifest(dataset, number))
        if not data or number > self.head(dataset):
            raise StoreError(_("Version {number} of this dataset does not exist.").format(number=number))
        return Version(dataset, number, data["name"], data["created"], data["message"], data["classes"],
                       data["images"], data["changes"], data.get("task", "single"))

    def log(self, dataset: str) -> list[Version]:
        """Every version, newest first."""
        return [self.version(dataset, n) for n in range(self.head(dataset), 0, -1)]

    def object_path(self, digest: str) -> Path:
        if not re.fullmatch(r"[0-9a-f]{64}", digest):
            raise StoreError(_("Not an image of this dataset."))
        return self.root / "objects" / digest[:2] / digest

    def resolve(self, ref: str) -> Version:
        """'id@3' or 'id' (the newest) -> the version."""
        dataset, _, number = ref.partition("@")
        return self.version(dataset, int(number) if number else None)

    # --- writing -------------------------------------------------------------------------------------------
    def create(self, name: str, classes: list[str] = (), pending: bool = False, task: str = "single") -> Version:
        """A new dataset at version 1 whose images get `task`'s answers (core.data.answers: a class, tags, a
        number). `pending`: not listed until `publish` (an import commits its images first)."""
        if task not in answers.ANSWERS:
            raise StoreError(_("A dataset cannot hold answers of the kind {kind}.").format(kind=quoted(str(task)[:20])))
        dataset = uuid.uuid4().hex[:12]
        self._dir(dataset).mkdir(parents=True)
        if pending:
            (self._dir(dataset) / PENDING).touch()
        with self._locked(dataset):
            classes = list(dict.fromkeys(check_class_name(c) for c in classes))
            # Translators: a version's note, kept in its history in the language of whoever made the change.
            return self._write(dataset, 0, name, classes, {}, _("created"), {}, task)

    def still_pending(self, dataset: str) -> None:
        """Refresh a pending dataset's age, so the clean-up leaves a long import alone."""
        _touch(self._dir(dataset) / PENDING)

    def publish(self, dataset: str) -> None:
        (self._dir(dataset) / PENDING).unlink(missing_ok=True)

    def delete(self, dataset: str) -> None:
        """Remove a dataset and every version of it (its images go with the next clean-up, if nothing else uses them)."""
        folder = self._dir(dataset)
        if not (folder / "HEAD.json").exists():
            raise StoreError(_("This dataset does not exist (any more)."))
        aside = self.root / f".deleted-{dataset}-{uuid.uuid4().hex[:8]}"
        os.rename(folder, aside)  # gone from the list at once; removing the files may take a while
        shutil.rmtree(aside, ignore_errors=True)

    def put_object(self, data: bytes, digest: str) -> None:
        """Store an image's bytes under its hash (atomically; a second copy of the same image is free)."""
        self._put(digest, lambda tmp: tmp.write_bytes(data))

    def put_file(self, source: Path, digest: str) -> None:
        """Store an image file under its hash, copied from disk (never read whole into memory)."""
        self._put(digest, lambda tmp: shutil.copyfile(source, tmp))

    def _put(self, digest: str, write: Any) -> None:
        target = self.object_path(digest)
        if target.exists():
            _touch(target)  # young again: the clean-up never collects an object a writer is about to reference
            return
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{digest}.{uuid.uuid4().hex[:8]}.tmp")
        try:
            write(tmp)
            os.replace(tmp, target)
        finally:
            tmp.unlink(missing_ok=True)

    def scratch(self) -> Path:
        """Where uploads are unpacked and checked before they are stored: beside the objects (one file system)."""
        folder = self.root / SCRATCH
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    def merge_lookalikes(self, dataset: str, base: int) -> Version:
        """Every group of classes that differ only in case or lookalike characters becomes one class (the one
        without hidden characters, else the one with the most images), as one new version based on `base`."""
        version = self.version(dataset, base)
        counts = version.counts()
        rename = {}
        for group in names.lookalike_groups(version.classes):
            keep = names.preferred(group, counts)
            rename |= {name: keep for name in group if name != keep}
        return self.commit(dataset, base, Edit(rename=rename, message=_("merged lookalike classes")))

    def commit(self, dataset: str, base: int, edit: Edit) -> Version:
        """Apply `edit`, which the user made looking at version `base`; returns the new version."""
        with self._locked(dataset):
            head = self.version(dataset)
            if head.number != base:
                refuse_conflicts(self.version(dataset, base), head, edit)
            images, classes = apply(head, edit)
            changes = {k: len(v) for k, v in diff(head.images, images).items()}
            changes["new_classes"] = len(set(classes) - set(head.classes))
            changes["gone_classes"] = len(set(head.classes) - set(classes))
            if not any(changes.values()):
                return head
            return self._write(dataset, head.number, head.name, classes, images, edit.message, changes, head.task)

    def rename_dataset(self, dataset: str, base: int, name: str) -> Version:
        with self._locked(dataset):
            head = self.version(dataset)
            return self._write(dataset, head.number, name.strip() or head.name, head.classes, head.images,
                               _("renamed"), {}, head.task)

    def _write(self, dataset: str, parent: int, name: str, classes: list[str], images: dict, message: str,
               changes: dict[str, int], task: str = "single") -> Version:
        number = parent + 1
        manifest = {"name": name, "parent": parent, "created": time.time(), "message": message, "classes": classes,
                    "images": images, "changes": changes, "task": task}
        _write_json(self._manifest(dataset, number), manifest)  # an orphan if we crash before HEAD moves
        _write_json(self._dir(dataset) / "HEAD.json", {"version": number})
        return self.version(dataset, number)

    # --- internals -----------------------------------------------------------------------------------------
    def _dir(self, dataset: str) -> Path:
        if not re.fullmatch(r"[0-9a-f]{12}", dataset):
            raise StoreError(_("This dataset does not exist."))
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


def _touch(path: Path) -> None:
    try:
        os.utime(path)
    except OSError:
        pass  # read-only or gone: only the clean-up's estimate of its age suffers


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
