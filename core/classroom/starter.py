"""Starter data: the teacher gives every student of the class the same dataset, in one click.

The dataset is one file every student's workspace points at (their Data page shows it, their Train page trains on
it): a bundled set (shipped, public: its features are computed once for everyone, core.data.public), or the
teacher's own upload, kept in the class folder beside a marker that lets the class's runs share its features too
(every student was given it, so nobody learns anything from another's speed). A student may still upload their own
data afterwards; that stays private to their workspace.
"""
from __future__ import annotations

import shutil
import uuid
from pathlib import Path
from typing import BinaryIO

from core import paths, quota
from core.classroom import roster, sets
from core.classroom.roster import ClassError, Classroom
from core.data.archive import ArchiveRefused
from core.data.datasets import inspect_data
from core.data.public import SHARED_MARKER


def bundled() -> dict[str, str]:
    """name -> title of every bundled set (the shapes sample first)."""
    return dict(sets.TITLES)


def push_bundled(classroom: Classroom, name: str) -> Classroom:
    if name not in sets.TITLES:
        raise ClassError("There is no bundled set of that name.")
    return push(classroom, sets.path_of(name), sets.TITLES[name])


def keep_upload(classroom: Classroom, source: BinaryIO, size: int, file_name: str) -> Path:
    """The teacher's zip, copied into the class folder (in chunks) beside its shared-features marker."""
    limit = quota.limit_bytes()
    if limit is not None and size > limit:
        raise ClassError(f"That file is {quota.size_text(size)}; starter data may be at most {quota.size_text(limit)}.")
    if not file_name.lower().endswith(".zip"):
        raise ClassError("Please upload a zip of class folders (for example cats/ and dogs/).")
    folder = classroom.folder / "starter"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / SHARED_MARKER).write_text(f"class-{classroom.id}", encoding="ascii")
    target = folder / f"{uuid.uuid4().hex}.zip"
    with target.open("wb") as sink:
        shutil.copyfileobj(source, sink, 1 << 20)
    return target


def push(classroom: Classroom, path: Path, name: str) -> Classroom:
    """Check the data once (a refusal is one sentence), then make it every student's dataset, and new joiners'."""
    try:
        report = inspect_data(Path(path), paths.home())
    except (ArchiveRefused, OSError) as error:
        raise ClassError(f"This data cannot be used: {error}") from None
    if not report.trainable:
        raise ClassError(report.error or "This data cannot be trained on.")
    updated = roster.update(classroom.id, starter={"path": str(path), "name": name})
    for student in roster.students(updated):
        student.workspace.set_dataset(Path(path), name)
    return updated
