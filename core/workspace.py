"""A workspace: one browser's private folder (its uploads, dataset choice, runs, dataset store), named by a signed
random key (core/paths.py). A student's workspace is the same thing, and also belongs to a class.

Moved out of ui/common.py so the engine (the classroom, the command line) can name a workspace the way the pages
do. The folder is made when something is first saved in it, not when someone merely visits.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core import paths
from core.files import read_json, write_json
from core.runs import folder as runs

SETTINGS, MEMBERSHIP = "workspace.json", "classroom.json"


@dataclass(frozen=True)
class Workspace:
    key: str
    root: Path

    @classmethod
    def of(cls, key: str, home: Path | None = None) -> "Workspace":
        """The workspace of a key this server issued. Raises ValueError for any other key (never a path)."""
        if not paths.is_workspace_key(key, home):
            raise ValueError("not a workspace key of this server")
        return cls(key, (home or paths.home()) / "workspaces" / key)

    @property
    def runs(self) -> Path:
        return self.root / "runs"

    @property
    def uploads(self) -> Path:
        return self.root / "uploads"

    @property
    def datasets(self) -> Path:
        """The dataset store's root (core.data.store.DatasetStore)."""
        return self.root / "datasets"

    def dataset(self) -> dict[str, Any] | None:
        return self._settings().get("dataset")

    def set_dataset(self, path: Path, name: str) -> None:
        """Choose the dataset the pages and the Train page use; other settings in the file are kept."""
        self.root.mkdir(parents=True, exist_ok=True)
        write_json(self.root / SETTINGS, self._settings() | {"dataset": {"path": str(path), "name": name}})

    def clear_dataset(self) -> None:
        if (self.root / SETTINGS).exists():
            write_json(self.root / SETTINGS, {k: v for k, v in self._settings().items() if k != "dataset"})

    def _settings(self) -> dict[str, Any]:
        value = read_json(self.root / SETTINGS, {})
        return value if isinstance(value, dict) else {}

    def new_upload(self, suffix: str = ".zip") -> Path:
        """A fresh path for an upload (the folder made now: the user is saving something)."""
        self.uploads.mkdir(parents=True, exist_ok=True)
        return self.uploads / f"{os.urandom(16).hex()}{suffix}"

    def discard_upload(self, path: Path) -> None:
        """Delete an upload of this workspace that was replaced or refused, unless a run was trained on it."""
        path = Path(path)
        if path.parent != self.uploads or not path.is_file():
            return  # the sample dataset, a class's starter data, or not ours
        used = any(read_json(config, {}).get("data") in (str(path), str(path.resolve()))
                   for config in self.runs.glob("*/config.json"))
        if not used:
            path.unlink(missing_ok=True)

    def finished_runs(self) -> list[runs.RunSummary]:
        return [r for r in runs.list_runs(self.runs) if r.state == "finished"]

    # --- class membership (written by core.classroom, read by everyone) ---
    def membership(self) -> dict[str, str] | None:
        """{"class": class id, "student": student id} for a student's workspace, else None."""
        value = read_json(self.root / MEMBERSHIP)
        if isinstance(value, dict) and isinstance(value.get("class"), str) and isinstance(value.get("student"), str):
            return {"class": value["class"], "student": value["student"]}
        return None

    def join(self, class_id: str, student_id: str) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        write_json(self.root / MEMBERSHIP, {"class": class_id, "student": student_id})
