"""'Compare for me' on the Train page: one button measures every backbone on this server on the user's own images
(a queued job, core.runs.compare_job), shows the leaderboard, and preselects the recommendation on the Train page."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import streamlit as st

from core.i18n import _, percent
from core.runs import compare_job
from core.runs.compare_job import CompareRequest
from core.runs.folder import Run
from core.text import md
from core.training.events import COMPARE_PROGRESS
from ui.common import Workspace, job_manager, show_error
from ui.language import in_language

JOB_KEY = "compare_job"
ACTIVE = ("queued", "running")


def compare_panel(workspace: Workspace, dataset: dict[str, Any] | None) -> None:
    """The section: start or cancel, progress while it runs, then the leaderboard and its recommendation."""
    st.subheader(_("Compare for me"))
    st.caption(_("Measures every backbone whose weights are on this server on your own images: each one reads every "
                 "image once, then a linear head and a prototype head (class means) are scored by cross-validation "
                 "(leave-one-out below 10 images a class). It queues like a training run."))
    if not dataset:
        st.info(_("Choose your images on the Data page first."))
        return
    folder = _latest(workspace)
    state = Run(folder).state if folder else None
    if state in ACTIVE:
        st.fragment(run_every=1.0)(in_language(_running))(folder)
        return
    if st.button(_("Compare the backbones on my images"), key="compare_start"):
        _start(workspace, dataset)
        st.rerun()
    if folder:
        _finished(folder, state)


def _start(workspace: Workspace, dataset: dict[str, Any]) -> None:
    request = CompareRequest(dataset["path"], cache_namespace=str(workspace.runs.resolve()),
                             data_name=dataset.get("name", ""))
    job = job_manager().submit_compare(request, _root(workspace), owner=str(workspace.runs.resolve()))
    st.session_state[JOB_KEY] = job.id


def _root(workspace: Workspace) -> Path:
    return workspace.root / "comparisons"


def _latest(workspace: Workspace) -> Path | None:
    """This session's comparison, or the workspace's newest one (after a reload)."""
    root = _root(workspace)
    wanted = st.session_state.get(JOB_KEY)
    if wanted and compare_job.is_compare(root / wanted):
        return root / wanted
    found = [p.parent for p in root.glob(f"*/{compare_job.REQUEST}")] if root.is_dir() else []
    return max(found, key=lambda p: p.stat().st_mtime, default=None)


def _running(folder: Path) -> None:
    run = Run(folder)
    if run.state not in ACTIVE:
        st.rerun()  # the whole page: the leaderboard replaces the progress
    steps = run.records(COMPARE_PROGRESS)
    if run.state == "queued" or not steps:
        place = job_manager().place(folder.name)
        st.info(_("Queued: {when}").format(when=place.sentence() if place else _("it starts in a moment.")))
    else:
        last = steps[-1]
        inner = last.get("done", 0) / max(last.get("total", 1), 1) if last["stage"] == "features" else 1.0
        fraction = min((last["step"] + (inner if last["stage"] != "done" else 1.0)) / max(last["steps"], 1), 1.0)
        doing = _("reading the images") if last["stage"] == "features" else _("scoring the heads")
        st.progress(fraction, text=_("Backbone {step} of {steps}: {backbone} ({doing})").format(
            step=last["step"] + 1, steps=last["steps"], backbone=last["backbone"], doing=doing))
    if st.button(_("Cancel the comparison"), key="compare_cancel"):
        if not job_manager().cancel(folder.name):  # a job of an earlier server process: its stop file still works
            run.stop.set()
        st.toast(_("Cancelling: it stops within one batch of images."))


def _finished(folder: Path, state: str | None) -> None:
    board = compare_job.result(folder)
    if state == "cancelled":
        st.info(_("The last comparison was cancelled. The backbones measured before are shown.")
                if board and board.get("rows") else _("The last comparison was cancelled."))
    if board is None or board.get("refusal"):
        if state == "failed":
            show_error(board["refusal"] if board else Run(folder).status().get("message", _("The comparison failed.")))
        return
    st.dataframe(table(board), hide_index=True)
    for skipped in board.get("skipped", []):
        st.caption(md(f"{skipped['backbone']}: {skipped['reason']}"))
    pick = board.get("recommendation")
    if pick:
        st.success(md(pick["reason"]))
        st.button(_("Use it on the Train page"), key="compare_use", on_click=_preselect, args=(pick,))


def table(board: dict[str, Any]) -> list[dict[str, Any]]:
    """The leaderboard's rows for the page, best accuracy first."""
    pick = board.get("recommendation") or {}
    rows = sorted(board.get("rows", []), key=lambda r: -r["accuracy"])
    return [{"": _("recommended") if (r["backbone"], r["head"]) == (pick.get("backbone"), pick.get("head")) else "",
             _("backbone"): r["title"], _("head"): r["head"],
             _("accuracy (95% interval)"): _("{value} ({low} to {high})").format(
                 value=percent(r["accuracy"]), low=percent(r["accuracy_low"]), high=percent(r["accuracy_high"])),
             _("macro-F1"): round(r["macro_f1"], 3), _("ms per image"): round(1000 * r["seconds_per_image"], 1),
             _("parameters (M)"): r["params_m"], _("held out by"): r["method"]} for r in rows]


def _preselect(pick: dict[str, Any]) -> None:
    """A callback, so it runs before the Train page's widgets exist and may set their state."""
    st.session_state["backbone"] = pick["backbone"]
    st.session_state["head"] = pick["head"]
