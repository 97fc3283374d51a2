"""The live view of one training job: curves, progress, ETA, cancel. It only reads: the job's event log
while this server process runs it, the run folder on disk otherwise (after a restart)."""
from __future__ import annotations

from typing import Any

import streamlit as st

from core.insight import charts
from core.training import runs
from core.training.events import TERMINAL_KINDS, read_jsonl
from core.training.jobs import Job, JobManager
from ui.common import Workspace, show_error

POLL_SECONDS = 1.0


def _live_job(manager: JobManager, ws: Workspace, job_id: str) -> Job | None:
    """The job when this server process runs it (and it belongs to this workspace), else None."""
    job = manager.get(job_id)
    return job if job is not None and job.run_dir.parent == ws.runs else None


def job_state(manager: JobManager, ws: Workspace, job_id: str) -> str:
    job = _live_job(manager, ws, job_id)
    return job.state if job else runs.read_status(ws.runs / job_id).get("state", "unknown")


def job_records(manager: JobManager, ws: Workspace, job_id: str) -> list[dict[str, Any]]:
    job = _live_job(manager, ws, job_id)
    if job:
        return [e.as_record() for e in job.events.since(0)[0]]
    return read_jsonl(ws.runs / job_id / "metrics.jsonl")


def show_job(manager: JobManager, ws: Workspace, job_id: str) -> None:
    live = job_state(manager, ws, job_id) in runs.ACTIVE_STATES
    st.fragment(run_every=POLL_SECONDS if live else None)(_draw)(manager, ws, job_id, live)


def _draw(manager: JobManager, ws: Workspace, job_id: str, was_live: bool) -> None:
    state = job_state(manager, ws, job_id)
    records = job_records(manager, ws, job_id)
    if was_live and state not in runs.ACTIVE_STATES:
        st.rerun()  # finished: redraw the whole page once, without the timer
    started = next((r for r in records if r["event"] == "run_started"), None)
    epochs = [r for r in records if r["event"] == "epoch_end"]
    batches = [r for r in records if r["event"] == "batch_end"]
    end = next((r for r in records if r["event"] in TERMINAL_KINDS), None)
    _headline(manager, job_id, state, started, epochs, batches)
    if epochs or batches:
        st.plotly_chart(charts.training_curves(epochs, batches), key="live_curves")
    if state in runs.ACTIVE_STATES and st.button("Cancel training", key="cancel"):
        manager.cancel(job_id)
        st.toast("Cancelling: it stops after the current batch.")
    _ending(state, end, job_id, ws)


def _headline(manager, job_id, state, started, epochs, batches) -> None:
    if state == "queued":
        st.info(f"Queued: {manager.ahead_of(job_id)} training job(s) ahead of yours. It starts by itself.")
        return
    if started is None:
        st.info("Preparing: reading images and loading the backbone...")
        return
    cached = " · features cached" if started.get("features_cached") else ""
    st.markdown(f"**{started['backbone']}** on **{started['device']}** · {started['num_train']} training and "
                f"{started['num_val']} validation images · {started['trainable_params']:,} trainable parameters"
                f"{cached}")
    total = started["epochs"]
    done = epochs[-1]["epoch"] if epochs else 0
    last_batch = batches[-1] if batches else None
    partial = (last_batch["batch"] / last_batch["batches"]
               if last_batch and last_batch["epoch"] == done + 1 and last_batch.get("batches") else 0.0)
    fraction = min((done + partial) / total, 1.0)
    speed = (epochs[-1] if epochs else last_batch or {}).get("images_per_s")
    parts = [f"Epoch {min(done + 1, total) if state == 'running' else done} of {total}"]
    if epochs and state == "running":
        per_epoch = epochs[-1]["elapsed_s"] / done
        parts.append(f"about {max(per_epoch * (total - done - partial), 0):.0f} s left")
    if speed:
        parts.append(f"{speed:,.0f} images/s")
    st.progress(fraction, text=" · ".join(parts))


def _ending(state, end, job_id, ws) -> None:
    if state == "finished":
        status = runs.read_status(ws.runs / job_id)
        st.success(f"Finished: {status.get('val_accuracy', 0):.1%} of validation images recognised correctly "
                   f"(best epoch {status.get('best_epoch')}).")
        st.page_link("pages/evaluate.py", label="See the details on 3. Evaluate", icon=":material/analytics:")
        st.page_link("pages/predict.py", label="Try it on new images on 4. Predict", icon=":material/image_search:")
    elif state == "failed":
        show_error(end["message"] if end else "Training failed.", end.get("details") if end else None)
    elif state == "cancelled":
        st.warning("Training was cancelled. Nothing was saved for this run.")
    elif state == "interrupted":
        st.warning("This run was interrupted: the server stopped while it was training. Please start it again.")
