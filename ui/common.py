"""What every page shares: the private workspace, the process-wide job manager, friendly errors."""
from __future__ import annotations

import re
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import streamlit as st

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # pages run as scripts: make `core` importable however the app is started
    sys.path.insert(0, str(ROOT))

from core import paths  # noqa: E402
from core.data.datasets import inspect  # noqa: E402
from core.data.preprocessing import ImageRejected, thumbnail  # noqa: E402
from core.data.report import DataReport  # noqa: E402
from core.training import runs  # noqa: E402
from core.training.jobs import JobManager  # noqa: E402

_KEY = re.compile(r"^[0-9a-f]{32}$")


@dataclass(frozen=True)
class Workspace:
    """One browser's private folder: its uploads, dataset choice and runs. Nobody lists another's."""
    key: str
    root: Path

    @property
    def runs(self) -> Path:
        return self.root / "runs"

    @property
    def uploads(self) -> Path:
        return self.root / "uploads"

    def dataset(self) -> dict[str, Any] | None:
        return runs.read_json(self.root / "workspace.json", {}).get("dataset")

    def set_dataset(self, path: Path, name: str) -> None:
        runs.write_json(self.root / "workspace.json", {"dataset": {"path": str(path), "name": name}})

    def finished_runs(self) -> list[runs.RunSummary]:
        return [r for r in runs.list_runs(self.runs) if r.state == "finished"]


def url_param(name: str) -> str | None:
    """A value kept both in the URL (survives a reload) and the session (survives switching pages)."""
    value = st.query_params.get(name) or st.session_state.get(f"url_{name}")
    if value:
        remember(name, value)
    return value


def remember(name: str, value: str) -> None:
    st.session_state[f"url_{name}"] = value
    if st.query_params.get(name) != value:
        st.query_params[name] = value


def is_id(value: str | None) -> bool:
    """Workspace keys and job ids are uuid4 hex: anything else in a URL is ignored, never used in a path."""
    return bool(value) and bool(_KEY.match(value))


def workspace() -> Workspace:
    key = url_param("ws")
    if not is_id(key):
        key = uuid.uuid4().hex
        remember("ws", key)
    root = paths.home() / "workspaces" / key
    for folder in (root / "runs", root / "uploads"):
        folder.mkdir(parents=True, exist_ok=True)
    return Workspace(key, root)


@st.cache_resource
def job_manager() -> JobManager:
    """One per server process: one worker per device, shared by every workspace, so jobs on a GPU queue."""
    return JobManager(paths.home())


@st.cache_data(show_spinner="Checking every image...", max_entries=16)
def _report(path: str, modified: float) -> DataReport:
    return inspect(Path(path), paths.home())


def load_report(dataset: dict[str, Any]) -> DataReport:
    """The workspace dataset's report, computed once per file version. Raises ArchiveRefused, OSError."""
    return _report(dataset["path"], Path(dataset["path"]).stat().st_mtime)


@st.cache_data(max_entries=1024)
def cached_thumbnail(path: str):
    try:
        return thumbnail(path)
    except (ImageRejected, OSError):
        return None


def show_error(message: str, details: str | None = None) -> None:
    """A plain sentence first; the technical details only on demand."""
    st.error(message)
    if details:
        with st.expander("Technical details"):
            st.code(details, language=None)


def pick_run(workspace: Workspace, purpose: str) -> runs.RunSummary | None:
    finished = workspace.finished_runs()
    if not finished:
        st.info(f"No trained model yet. Train one on the **Train** page, then come back to {purpose}.")
        return None
    wanted = url_param("run")
    ids = [r.id for r in finished]
    index = ids.index(wanted) if wanted in ids else 0
    chosen = st.selectbox("Trained model", finished, index=index, format_func=describe_run, key=f"run_{purpose}")
    remember("run", chosen.id)
    return chosen


def describe_run(run: runs.RunSummary) -> str:
    accuracy = run.status.get("val_accuracy")
    score = f", {accuracy:.0%} validation accuracy" if isinstance(accuracy, (int, float)) else ""
    data = run.config.get("data_name") or Path(run.config.get("data", "")).name
    return f"{run.config.get('backbone')} on {data}{score} ({run.state}, {run.id[:8]})"

