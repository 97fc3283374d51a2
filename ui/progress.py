"""The live view of one training job: curves, progress, time left, cancel.

It only reads the run folder, and cheaply, because thirty tabs may watch one run: each session keeps its own
reader of metrics.jsonl and parses only the bytes added since its last poll; the chart is rebuilt only when
something new arrived; a queued job is polled less often. Training itself runs in another process.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import streamlit as st

from core.insight import charts
from core.models import backbones
from core.runs.folder import ACTIVE_STATES, Run
from core.runs.jobs import JobManager
from core.text import md
from core.training.events import JsonlTail
from core.training.progress import Progress, RunProgress
from ui.common import Workspace, remember, show_error

POLL_RUNNING_S = 1.0
POLL_QUEUED_S = 5.0
CHART_REFRESH_S = 5.0  # the curves: drawing a Plotly figure costs far more than the progress bar
POLL_SECONDS = POLL_RUNNING_S


@dataclass
class _View:
    """One session's reading position in one run's event log, and what it made of it so far."""
    tail: JsonlTail
    progress: RunProgress = field(default_factory=RunProgress)
    figure: Any = None
    figure_version: int = -1


def job_state(manager: JobManager, ws: Workspace, job_id: str) -> str:
    """The job's state: from this server's job manager when it runs the job, else from the run folder."""
    job = manager.get(job_id)
    if job is not None and job.run_dir.parent == ws.runs:
        return job.state
    return Run(ws.runs / job_id).state


def _view(ws: Workspace, job_id: str, state: str) -> _View:
    key = f"progress_{job_id}"
    if key not in st.session_state:
        st.session_state[key] = _View(Run(ws.runs / job_id).tail())
    view: _View = st.session_state[key]
    view.progress.add(view.tail.read() if state in ACTIVE_STATES else view.tail.read_to_end())
    return view


def show_job(manager: JobManager, ws: Workspace, job_id: str) -> None:
    """Two timed fragments: the progress line every second (every few seconds while queued), the curves every
    few seconds. A finished run is drawn once, with no timer."""
    state = job_state(manager, ws, job_id)
    active = state in ACTIVE_STATES
    every = POLL_QUEUED_S if state == "queued" else POLL_RUNNING_S if active else None
    st.fragment(run_every=every)(_draw_status)(manager, ws, job_id, state)
    st.fragment(run_every=CHART_REFRESH_S if active else None)(_draw_curves)(ws, job_id, state)
    if not active:
        view = _view(ws, job_id, state)
        _ending(view.progress.summary(state), view.progress.end, ws.runs / job_id)


def _draw_status(manager: JobManager, ws: Workspace, job_id: str, drawn_as: str) -> None:
    # Every poll puts the job back in the address bar if the browser's URL lost it (a rerun that crossed the
    # message setting it): the address a teacher copies while it trains must name the job, not the set-up page.
    remember("job", job_id)
    state = job_state(manager, ws, job_id)
    if state != drawn_as and (drawn_as == "queued" or state not in ACTIVE_STATES):
        st.rerun()  # started or ended: redraw the whole page once, with the right timers
    view = _view(ws, job_id, state)
    _headline(manager, job_id, view.progress.summary(state), view.progress.started)
    if state in ACTIVE_STATES and st.button("Cancel training", key="cancel"):
        if not manager.cancel(job_id):  # a run this server does not supervise still obeys its stop file
            Run(ws.runs / job_id).stop.set()
        st.toast("Cancelling: it stops after the current batch.")


def _draw_curves(ws: Workspace, job_id: str, state: str) -> None:
    view = _view(ws, job_id, state)
    if not (view.progress.epochs or view.progress.batches):
        return
    if view.figure_version != view.progress.version:  # nothing new: the same figure object, nothing rebuilt
        view.figure = charts.training_curves(view.progress.epochs, view.progress.batches)
        view.figure_version = view.progress.version
    st.plotly_chart(view.figure, key="live_curves")


def _headline(manager: JobManager, job_id: str, progress: Progress, started: dict[str, Any] | None) -> None:
    if progress.state == "queued":
        job = manager.get(job_id)
        where = f" for {job.device_label}" if job else ""
        place = manager.place(job_id)
        st.info(f"Queued{where}: {place.sentence() if place else 'it starts in a moment.'} It starts by itself.")
        return
    if progress.state == "preparing":
        st.info("Preparing: reading images and loading the backbone...")
        return
    if started is None:
        return  # it ended before training began: the ending says how
    st.markdown(f"**{md(_title(started['backbone']))}** on **{md(started['device'])}** · {started['num_train']} "
                f"training and {started['num_val']} validation images · {started['trainable_params']:,} trainable "
                f"parameters{_path_taken(started)}")
    st.progress(progress.fraction, text=progress.text())
    if started.get("augmented_views"):
        st.caption(f"Why this is quick: {started['augmented_views']} varied copies (crops, flips) of each image went "
                   "through the frozen layers once and are reused, instead of once every epoch.")


def _title(backbone: str) -> str:
    """The name the Train page showed ("EfficientNet-Lite0"), not the registry key."""
    try:
        return backbones.info(backbone).title
    except (KeyError, ValueError):
        return backbone


def _path_taken(started: dict[str, Any]) -> str:
    """Which shortcut this run takes, so a user can tell why one setting trains faster than another."""
    if started.get("augmented_views"):
        return f" · augmented views cached: {started['augmented_views']} per image"
    if started.get("views_fallback"):
        return f" · {md(started['views_fallback'])}"
    return ""


def _ending(progress: Progress, end: dict[str, Any] | None, run_dir) -> None:
    state = progress.state
    if state == "finished":
        status = Run(run_dir).status()
        accuracy = status.get("val_accuracy")
        score = f"{accuracy:.1%} of validation images recognised correctly" if isinstance(accuracy, float) else \
            "the model is saved"
        st.success(f"Finished: {score} (best epoch {status.get('best_epoch')}).")
        st.page_link("views/evaluate.py", label="See the details on 3. Evaluate", icon=":material/analytics:")
        st.page_link("views/predict.py", label="Try it on new images on 4. Predict", icon=":material/image_search:")
    elif state == "failed":
        message = (end or {}).get("message") or Run(run_dir).status().get("message") or "Training failed."
        show_error(message, (end or {}).get("details") or Run(run_dir).status().get("details"))
    elif state == "cancelled":
        st.warning("Training was cancelled. Nothing was saved for this run.")
    elif state == "interrupted":
        st.warning("This run was interrupted: the process training it stopped (the server or the computer was "
                   "restarted). Please start it again.")
    elif state not in ("queued", "preparing", "training"):
        st.warning(Run(run_dir).status().get("message", "This run's files are damaged."))
