"""The class gallery: a student publishes a trained model; classmates try it and may remix its data.

An entry names a run of a student's workspace by a random id; nothing of the entry that a page shows (nickname,
title, accuracy, classes) reveals the workspace key. Its "try it" token (core.classroom.keys) opens that one
model's try page and nothing else; unpublishing deletes the entry, and its token stops working. Remixing copies the
published run's training data into the remixer's own dataset store (core.data.intake, under their quota); public
data (the bundled sets, the class's starter data) is pointed at instead of copied, so its features stay shared.
"""
from __future__ import annotations

import re
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from core import paths
from core.classroom import keys, roster
from core.classroom.roster import ClassError, Classroom, Student
from core.data import checkout, intake, public
from core.data.archive import ArchiveRefused
from core.data.store import DatasetStore, StoreError
from core.files import read_json, write_json
from core.runs.folder import Run
from core.workspace import Workspace

MAX_TITLE = 60
MAX_ENTRIES = 200  # a class gallery: a lesson's worth, bounded
_ENTRY = re.compile(r"^[0-9a-f]{16}$")
_RUN = re.compile(r"^[0-9a-f]{32}$")


@dataclass(frozen=True)
class Entry:
    id: str
    class_id: str
    student_id: str
    nickname: str
    run_id: str
    title: str
    accuracy: float | None
    labels: tuple[str, ...]
    published: float

    @property
    def token(self) -> str:
        return keys.try_token(self.id)


def _index(entry_id: str) -> Path:
    return roster.classes_root() / "gallery-index" / entry_id


def publish(classroom: Classroom, student: Student, run_id: str, title: str = "") -> Entry:
    """Put one finished run of the student's own workspace in the class gallery (once: again returns the entry)."""
    if not _RUN.match(run_id or ""):
        raise ClassError("There is no such run in your workspace.")
    run = Run(student.workspace.runs / run_id)
    if not run.path.is_dir() or run.state != "finished" or not run.has_model():
        raise ClassError("Only a finished run with a trained model can be published.")
    existing = next((e for e in entries(classroom) if e.run_id == run_id and e.student_id == student.id), None)
    if existing is not None:
        return existing
    if len(entries(classroom)) >= MAX_ENTRIES:
        raise ClassError(f"The class gallery holds {MAX_ENTRIES} models, its limit; unpublish some first.")
    config = run.config()
    title = roster.clean_text(title or config.get("data_name") or "My model", MAX_TITLE, "title")
    accuracy = run.status().get("val_accuracy")
    entry = Entry(keys.new_identifier()[:16], classroom.id, student.id, student.nickname, run_id, title,
                  accuracy if isinstance(accuracy, (int, float)) else None, tuple(run.labels()), time.time())
    write_json(classroom.folder / "gallery" / f"{entry.id}.json", asdict(entry))
    _index(entry.id).parent.mkdir(parents=True, exist_ok=True)
    _index(entry.id).write_text(classroom.id, encoding="ascii")
    return entry


def _entry(data: object) -> Entry | None:
    if not isinstance(data, dict):
        return None
    try:
        return Entry(**{**data, "labels": tuple(data.get("labels", ()))})
    except TypeError:
        return None


def entries(classroom: Classroom) -> list[Entry]:
    """The class's published models, newest first."""
    found = [_entry(read_json(p)) for p in (classroom.folder / "gallery").glob("*.json")]
    return sorted([e for e in found if e is not None], key=lambda e: -e.published)


def by_token(token: str | None) -> tuple[Entry, Path] | None:
    """The entry and run folder a "try it" token opens, or None (forged, unpublished, student removed)."""
    entry_id = keys.entry_of_try_token(token)
    if entry_id is None:
        return None
    try:
        classroom = roster.load(_index(entry_id).read_text(encoding="ascii").strip())
    except OSError:
        return None
    entry = _entry(read_json(classroom.folder / "gallery" / f"{entry_id}.json")) if classroom else None
    student = roster.student(classroom, entry.student_id) if entry else None
    if entry is None or student is None:
        return None
    run = Run(student.workspace.runs / entry.run_id)
    return (entry, run.path) if run.has_model() else None


def unpublish(classroom: Classroom, entry_id: str, student: Student | None = None) -> None:
    """Remove an entry: the teacher any, a student only their own."""
    if not _ENTRY.match(entry_id or ""):
        return
    path = classroom.folder / "gallery" / f"{entry_id}.json"
    entry = _entry(read_json(path))
    if entry is None or (student is not None and entry.student_id != student.id):
        raise ClassError("Only the student who published a model (or the teacher) can take it down.")
    path.unlink(missing_ok=True)
    _index(entry_id).unlink(missing_ok=True)


def remix(classroom: Classroom, entry_id: str, into: Student) -> str:
    """Copy the data a published model was trained on into `into`'s workspace, as their dataset; returns its name."""
    entry = next((e for e in entries(classroom) if e.id == entry_id), None)
    owner = roster.student(classroom, entry.student_id) if entry else None
    if entry is None or owner is None:
        raise ClassError("This model is no longer in the gallery.")
    source = Path(Run(owner.workspace.runs / entry.run_id).config().get("data", ""))
    name = f"{entry.title} (remixed from {entry.nickname})"
    if not source.exists():
        raise ClassError("The data this model was trained on is no longer on the server.")
    if public.shared_scope(source) is not None:  # the bundled sets, the class's starter data: nothing to copy
        into.workspace.set_dataset(source, name)
        return name
    if not _inside(source, owner.workspace):
        raise ClassError("This model's data cannot be remixed.")
    return _copy(source, name, into.workspace)


def _inside(path: Path, workspace: Workspace) -> bool:
    try:
        path.resolve().relative_to(workspace.root.resolve())
        return True
    except ValueError:
        return False


def _copy(source: Path, name: str, workspace: Workspace) -> str:
    store = DatasetStore(workspace.datasets)
    try:
        imported = intake.import_labelled(store, source, name, paths.home())
    except (StoreError, ArchiveRefused) as error:
        raise ClassError(f"The data could not be copied: {error}") from None
    folder = checkout.materialize(store, imported.version.dataset, imported.version.number)
    workspace.set_dataset(folder, name)
    return name
