"""A class on disk: its record, its students, and which workspace belongs to whom.

Layout under $TRANSFERLAB_HOME:
  classes/<class id>/class.json          name, join code, joining open, paused, leaderboard, rules, starter data
  classes/<class id>/students/<id>.json  a student: nickname and workspace key (only the teacher's pages read it)
  classes/<class id>/gallery/<id>.json   a published model (core.classroom.gallery)
  classes/<class id>/starter/            the teacher's uploaded starter data
  classes/codes/<CODE>                   the class a join code opens (one small file: a join is one read)
  workspaces/<key>/classroom.json        the other half of a membership: {"class", "student"}

A membership counts only when both halves agree, so a workspace can never claim a class on its own. Students are
pseudonymous: a nickname, nothing else; the teacher holds the keys (re-entry links). Writes that must not race (two
students taking one nickname, a code given twice) hold the class folder's lock.
"""
from __future__ import annotations

import fcntl
import re
import time
import unicodedata
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from core import paths
from core.classroom import keys
from core.classroom.rules import Rules
from core.data import names
from core.files import read_json, write_json
from core.workspace import Workspace

MAX_NAME, MAX_NICKNAME = 80, 24
_ID = re.compile(r"^[0-9a-f]{32}$")
_STUDENT = re.compile(r"^[0-9a-f]{16}$")


class ClassError(ValueError):
    """A request about a class that cannot be done; the message is one sentence for the person who asked."""


@dataclass(frozen=True)
class Student:
    id: str
    nickname: str
    workspace_key: str
    joined: float

    @property
    def workspace(self) -> Workspace:
        return Workspace(self.workspace_key, paths.home() / "workspaces" / self.workspace_key)


@dataclass(frozen=True)
class Classroom:
    id: str
    name: str
    code: str
    created: float
    joining: bool = True
    paused: bool = False
    leaderboard: bool = True
    rules: Rules = field(default_factory=Rules)
    starter: dict[str, str] | None = None  # {"path", "name"}: what every student's workspace gets

    @property
    def folder(self) -> Path:
        return classes_root() / self.id

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "code": self.code, "created": self.created, "joining": self.joining,
                "paused": self.paused, "leaderboard": self.leaderboard, "rules": self.rules.to_dict(),
                "starter": self.starter}


def classes_root() -> Path:
    return paths.home() / "classes"


def clean_text(text: str, most: int, what: str) -> str:
    """A name as typed, made one spelling (NFC), refused when empty, too long or holding hidden characters."""
    text = unicodedata.normalize("NFC", (text or "")[:most * 4]).strip()
    if not text:
        raise ClassError(f"Please type a {what}.")
    if len(text) > most:
        raise ClassError(f"A {what} may be at most {most} characters long.")
    if names.hidden_characters(text):
        raise ClassError(f"A {what} may not hold invisible characters or line breaks; type it again.")
    return text


def create(name: str) -> tuple[Classroom, str]:
    """A new class with a fresh join code; returns it and the teacher's key (the dashboard's secret link)."""
    name = clean_text(name, MAX_NAME, "class name")
    class_id = keys.new_identifier()
    with _locked(classes_root() / "codes"):
        code = next(c for c in iter(keys.new_join_code, None) if not (classes_root() / "codes" / c).exists())
        classroom = Classroom(class_id, name, code, time.time())
        write_json(classroom.folder / "class.json", classroom.to_dict())
        (classes_root() / "codes" / code).write_text(class_id, encoding="ascii")
    return classroom, keys.teacher_key(class_id)


def load(class_id: str | None) -> Classroom | None:
    if not _ID.match(class_id or ""):
        return None
    data = read_json(classes_root() / class_id / "class.json")
    if not isinstance(data, dict) or data.get("id") != class_id:
        return None
    return Classroom(class_id, str(data["name"]), str(data["code"]), float(data["created"]),
                     bool(data.get("joining", True)), bool(data.get("paused", False)),
                     bool(data.get("leaderboard", True)), Rules.from_dict(data.get("rules")),
                     data.get("starter") if isinstance(data.get("starter"), dict) else None)


def by_code(code: str | None) -> Classroom | None:
    """The class a (normalised) join code opens, or None."""
    normal = keys.normal_code(code)
    if normal is None:
        return None
    try:
        class_id = (classes_root() / "codes" / normal).read_text(encoding="ascii").strip()
    except OSError:
        return None
    classroom = load(class_id)
    return classroom if classroom is not None and classroom.code == normal else None


def update(class_id: str, **changes: Any) -> Classroom:
    """Change fields of a class (rules as a Rules); returns the class as stored now."""
    with _locked(classes_root() / class_id):
        current = load(class_id)
        if current is None:
            raise ClassError("This class does not exist (any more).")
        data = current.to_dict() | {k: (v.to_dict() if isinstance(v, Rules) else v) for k, v in changes.items()}
        write_json(current.folder / "class.json", data)
    return load(class_id)


def students(classroom: Classroom) -> list[Student]:
    """Every student of the class, in the order they joined."""
    found = []
    for path in (classroom.folder / "students").glob("*.json"):
        student = _student(read_json(path), path.stem)
        if student is not None:
            found.append(student)
    return sorted(found, key=lambda s: (s.joined, s.id))


def student(classroom: Classroom, student_id: str | None) -> Student | None:
    if not _STUDENT.match(student_id or ""):
        return None
    return _student(read_json(classroom.folder / "students" / f"{student_id}.json"), student_id)


def _student(data: Any, student_id: str) -> Student | None:
    if not isinstance(data, dict) or not paths.is_workspace_key(data.get("workspace")):
        return None
    return Student(student_id, str(data.get("nickname", "")), data["workspace"], float(data.get("joined", 0)))


def add_student(classroom: Classroom, nickname: str) -> Student:
    """A new pseudonymous student with a workspace of their own (holding the class's starter data, if any)."""
    nickname = clean_text(nickname, MAX_NICKNAME, "nickname")
    if "@" in nickname:
        raise ClassError("Please choose a nickname, not an e-mail address.")
    with _locked(classroom.folder):
        taken = {names.lookalike_key(s.nickname) for s in students(classroom)}
        if names.lookalike_key(nickname) in taken:
            raise ClassError("That nickname is already taken in this class; please choose another.")
        new = Student(keys.new_identifier()[:16], nickname, paths.new_workspace_key(), time.time())
        new.workspace.join(classroom.id, new.id)
        if classroom.starter:
            new.workspace.set_dataset(Path(classroom.starter["path"]), classroom.starter["name"])
        write_json(classroom.folder / "students" / f"{new.id}.json",
                   {"nickname": new.nickname, "workspace": new.workspace_key, "joined": new.joined})
    return new


def forget_student(classroom: Classroom, student_id: str) -> None:
    (classroom.folder / "students" / f"{student_id}.json").unlink(missing_ok=True)


def member_of(workspace_key: str | None) -> tuple[Classroom, Student] | None:
    """The class and student a workspace key belongs to, when both halves of the membership agree; else None."""
    if not paths.is_workspace_key(workspace_key):
        return None
    membership = Workspace(workspace_key, paths.home() / "workspaces" / workspace_key).membership()
    if membership is None:
        return None
    classroom = load(membership["class"])
    found = student(classroom, membership["student"]) if classroom else None
    if found is None or found.workspace_key != workspace_key:
        return None
    return classroom, found


@contextmanager
def _locked(folder: Path) -> Iterator[None]:
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / ".lock", "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
