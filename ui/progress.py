"""The live view of one training job: curves, progress, time left, cancel.

It only reads the run folder, and cheaply, because thirty tabs may watch one run: each session keeps its own
reader of metrics.jsonl and parses only the bytes added since its last poll; the chart is rebuilt only when
something new arrived; a queued job is polled less often. Training itself runs in another process.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import streamlit as st

from core import tasks
from core.i18n import _, number, percent
from core.insight import charts
from core.models import backbones
from core.runs import waiting
from core.runs.folder import ACTIVE_STATES, Run
from core.runs.jobs import JobManager
from core.text import md
from core.training.events import JsonlTail
from core.training.progress import Progress, RunProgress
from ui.common import Workspace, remember, show_error
from ui.language import in_language

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
    st.fragment(run_every=every)(in_language(_draw_status))(manager, ws, job_id, state)
    st.fragment(run_every=CHART_REFRESH_S if active else None)(in_language(_draw_curves))(ws, job_id, state)
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
    if state in ACTIVE_STATES and st.button(_("Cancel training"), key="cancel"):
        if not manager.cancel(job_id):  # a run this server does not supervise still obeys its stop file
            Run(ws.runs / job_id).stop.set()
        st.toast(_("Cancelling: it stops after the current batch."))


def _draw_curves(ws: Workspace, job_id: str, state: str) -> None:
    view = _view(ws, job_id, state)
    if not (view.progress.epochs or view.progress.batches):
        return
    if view.figure_version != view.progress.version:  # nothing new: the same figure object, nothing rebuilt
        task = tasks.TASKS.get(Run(ws.runs / job_id).config().get("task"), tasks.get(None))
        view.figure = charts.training_curves(view.progress.epochs, view.progress.batches, task.score_name)
        view.figure_version = view.progress.version
    st.plotly_chart(view.figure, key="live_curves")


def _headline(manager: JobManager, job_id: str, progress: Progress, started: dict[str, Any] | None) -> None:
    if progress.state == "queued":
        job = manager.get(job_id)
        wait = waiting.estimate(manager, job_id)  # its place in the fair queue, and how long runs took here
        when = wait.full() if wait else _("it starts in a moment.")
        st.info(_("Queued for {device}: {when} It starts by itself.").format(device=job.device_label, when=when)
                if job else _("Queued: {when} It starts by itself.").format(when=when))
        return
    if progress.state == "preparing":
        st.info(_("Preparing: reading images and loading the backbone..."))
        return
    if started is None:
        return  # it ended before training began: the ending says how
    st.markdown(_("**{backbone}** on **{device}** · {train} training and {val} validation images · {params} trainable "
                  "parameters").format(backbone=md(_title(started["backbone"])), device=md(started["device"]),
                                       train=started["num_train"], val=started["num_val"],
                                       params=number(started["trainable_params"])) + _path_taken(started))
    st.progress(progress.fraction, text=progress.text())
    if started.get("augmented_views"):
        st.caption(_("Why this is quick: {count} varied copies (crops, flips) of each image went through the frozen "
                     "layers once and are reused, instead of once every epoch.").format(count=started["augmented_views"]))


def _title(backbone: str) -> str:
    """The name the Train page showed ("EfficientNet-Lite0"), not the registry key."""
    try:
        return backbones.info(backbone).title
    except (KeyError, ValueError):
        return backbone


def _path_taken(started: dict[str, Any]) -> str:
    """Which shortcut this run takes, so a user can tell why one setting trains faster than another."""
    if started.get("augmented_views"):
        return " · " + _("augmented views cached: {count} per image").format(count=started["augmented_views"])
    if started.get("views_fallback"):
        return f" · {md(started['views_fallback'])}"
    return ""


def _ending(progress: Progress, end: dict[str, Any] | None, run_dir) -> None:
    state = progress.state
    if state == "finished":
        status = Run(run_dir).status()
        accuracy = status.get("val_accuracy")
        score = _("{share} of validation images recognised correctly").format(share=percent(accuracy, 1)) \
            if isinstance(accuracy, float) else _("the model is saved")
        st.success(_("Finished: {score} (best epoch {epoch}).").format(score=score, epoch=status.get("best_epoch")))
        st.page_link("views/evaluate.py", label=_("See the details on 3. Evaluate"), icon=":material/analytics:")
        st.page_link("views/predict.py", label=_("Try it on new images on 4. Predict"), icon=":material/image_search:")
    elif state == "failed":
        message = (end or {}).get("message") or Run(run_dir).status().get("message") or _("Training failed.")
        show_error(message, (end or {}).get("details") or Run(run_dir).status().get("details"))
    elif state == "cancelled":
        st.warning(_("Training was cancelled. Nothing was saved for this run."))
    elif state == "interrupted":
        st.warning(_("This run was interrupted: the process training it stopped (the server or the computer was "
                     "restarted). Please start it again."))
    elif state not in ("queued", "preparing", "training"):
        st.warning(Run(run_dir).status().get("message", _("This run's files are damaged.")))
