"""What every page shares: the private workspace, the process-wide job manager, friendly errors."""
from __future__ import annotations

import logging
import os
import re
import sys
import threading
import time
from pathlib import Path
from typing import Any

import streamlit as st

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # pages run as scripts: make `core` importable however the app is started
    sys.path.insert(0, str(ROOT))

from core import maintenance, paths  # noqa: E402
from core.classroom import Rules, attach, rules_for  # noqa: E402
from core.data.datasets import inspect_data  # noqa: E402
from core.data.preprocessing import ImageRejected, thumbnail  # noqa: E402
from core.data.report import DataReport  # noqa: E402
from core.i18n import N_, _, percent, quoted  # noqa: E402
from core.models import backbones  # noqa: E402
from core.runs import folder as runs  # noqa: E402
from core.runs.jobs import JobManager  # noqa: E402
from core.text import md, plain  # noqa: E402
from core.workspace import Workspace  # noqa: E402 - one definition; the pages import it from here too

_KEY = re.compile(r"^[0-9a-f]{32}$")
CLEANUP_INTERVAL_S = 24 * 3600
_log = logging.getLogger("transferlab")
# A run's state in words (status.json keeps the English key); an unknown state is shown as stored.
STATES = {"queued": N_("queued"), "preparing": N_("preparing"), "running": N_("running"), "training": N_("training"),
          "finished": N_("finished"), "failed": N_("failed"), "cancelled": N_("cancelled"),
          "interrupted": N_("interrupted"), "damaged": N_("damaged"), "unknown": N_("unknown")}
# What the pages ask pick_run for (the English words also name the select box's key, which stays as it is).
PURPOSES = (N_("export it"), N_("try it"), N_("evaluate it"), N_("serve and watch it"))


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
    """Job ids are uuid4 hex: anything else in a URL is ignored, never used in a path."""
    return bool(value) and bool(_KEY.match(value))


def workspace() -> Workspace:
    """This browser's workspace. A key in the URL that this server did not issue (signed with its secret) is
    replaced by a new one, so nobody can hand out a key chosen in advance and read what its users upload."""
    cleanup_thread()
    key = url_param("ws")
    if not paths.is_workspace_key(key):
        key = paths.new_workspace_key()
        remember("ws", key)
    root = paths.home() / "workspaces" / key
    if root.is_dir():
        os.utime(root)  # the clean-up reads a workspace's age from its last use
    return Workspace(key, root)


@st.cache_resource
def cleanup_thread() -> threading.Thread:
    """One per server process: the clean-up at start-up, then daily (see core/maintenance.py)."""
    thread = threading.Thread(target=_clean_up_forever, name="transferlab-cleanup", daemon=True)
    thread.start()
    return thread


def _clean_up_forever() -> None:
    while True:
        try:
            removed = maintenance.collect(paths.home())
            if removed:
                _log.info("clean-up removed %d unused item(s), %d bytes", len(removed), sum(r.bytes for r in removed))
        except Exception:  # noqa: BLE001 - the clean-up must never stop the server, nor stop for good
            _log.exception("clean-up failed; trying again tomorrow")
        time.sleep(CLEANUP_INTERVAL_S)


@st.cache_resource
def job_manager() -> JobManager:
    """One per server process: one worker per device, shared by every workspace, so jobs on a GPU queue.
    Every run is admitted through its class's rules, if its workspace belongs to a class (core.classroom)."""
    return attach(JobManager(paths.home(), standby=True))


def class_rules() -> Rules | None:
    """What this browser's class lets its students do (hidden pages and settings, backbones, caps), or None outside
    a class. Pages hide what is not allowed; the job manager refuses it anyway when a run is submitted."""
    return rules_for(url_param("ws"))


@st.cache_data(show_spinner=False, max_entries=16)
def _report(path: str, modified: float) -> DataReport:
    return inspect_data(Path(path), paths.home())


def load_report(dataset: dict[str, Any]) -> DataReport:
    """The workspace dataset's report, computed once per file version. Raises ArchiveRefused, OSError."""
    modified = Path(dataset["path"]).stat().st_mtime
    # The spinner here, not in cache_data: its text is read when the module is imported, in English for everyone.
    # Streamlit shows a spinner only after half a second, so a cached report draws none.
    with st.spinner(_("Checking every image...")):
        return _report(dataset["path"], modified)


@st.cache_data(max_entries=1024)
def cached_thumbnail(path: str):
    try:
        return thumbnail(path)
    except (ImageRejected, OSError):
        return None


def show_error(message: str, details: str | None = None) -> None:
    """A plain sentence first; the technical details only on demand. The message is shown as text: callers may
    quote user-supplied names in it."""
    st.error(md(message))
    if details:
        with st.expander(_("Technical details")):
            st.code(details, language=None)


def refusal(name: str, error: Exception) -> str:
    """An image refused, as one sentence that names the file once (the reason may already start with its name)."""
    reason = str(error)
    if reason.startswith(quoted("")[:1]):
        return _("{message}.").format(message=reason)
    return _("{name}: {reason}.").format(name=quoted(name), reason=reason)


def pick_run(workspace: Workspace, purpose: str) -> runs.RunSummary | None:
    finished = workspace.finished_runs()
    if not finished:
        st.info(_("No trained model yet. Train one on the **Train** page, then come back to {purpose}.").format(
            purpose=_(purpose)))
        return None
    wanted = url_param("run")
    ids = [r.id for r in finished]
    index = ids.index(wanted) if wanted in ids else 0
    chosen = st.selectbox(_("Trained model"), finished, index=index, format_func=lambda run: plain(describe_run(run)),
                          key=f"run_{purpose}")
    remember("run", chosen.id)
    return chosen


def describe_run(run: runs.RunSummary) -> str:
    """Plain text (it quotes the data's name): pass it through md() for Markdown, plain() for select options."""
    accuracy = run.status.get("val_accuracy")
    data = run.config.get("data_name") or Path(run.config.get("data", "")).name
    name = run.config.get("backbone", "")
    try:
        name = backbones.info(name).title  # the name the Train page showed, not the registry key
    except (KeyError, ValueError):
        pass
    state, short = state_words(run.state), run.id[:8]
    if isinstance(accuracy, (int, float)):
        return _("{backbone} on {data}, {accuracy} validation accuracy ({state}, run {run})").format(
            backbone=name, data=data, accuracy=percent(accuracy), state=state, run=short)
    return _("{backbone} on {data} ({state}, run {run})").format(backbone=name, data=data, state=state, run=short)


def state_words(state: str) -> str:
    """'finished' -> 'finished' / '已完成'."""
    return _(STATES[state]) if state in STATES else state

