"""Every training run in this workspace: compare them, retrain on newer labels, delete the ones not needed."""
import datetime as dt
from pathlib import Path

import streamlit as st

from core import tasks
from core.data.archive import ArchiveRefused
from core.data.store import DatasetStore
from core.i18n import _
from core.insight import charts
from core.models import backbones
from core.runs import folder as runs
from core.text import md, plain
from core.training import advice
from ui.common import describe_run, job_manager, load_report, state_words, workspace
from ui.evaluation import shown
from ui.lineage import retrain_offers, run_refs, version_name


def labelled_content(data: str) -> dict[str, str] | None:
    """sha256 -> label of a plain zip or folder a run trained on (None when it is gone or unreadable)."""
    path = Path(data)
    if not path.exists():
        return None
    try:
        report = load_report({"path": data, "name": path.name})
    except (ArchiveRefused, OSError):
        return None
    return {record.sha256: record.label for record in report.images}


def backbone_title(name: str) -> str:
    try:
        return backbones.info(name).title
    except (KeyError, ValueError):
        return name or ""


def validation_set(run: runs.RunSummary) -> tuple[int, frozenset] | None:
    """How many validation images the run was measured on, and which (their paths)."""
    report = run.run.evaluation()
    if report is None:
        return None
    return report.num_images, frozenset(p.get("path") for p in report.predictions)


def table_row(run: runs.RunSummary, ref: str) -> dict:
    config, status = run.config, run.status
    measured = validation_set(run) if run.state == "finished" else None
    return {
        "started": dt.datetime.fromtimestamp(run.created), "state": state_words(run.state),
        "data": (version_name(ref, store) if ref else "") or config.get("data_name") or Path(config.get("data", "")).name,
        "network": backbone_title(config.get("backbone", "")),
        "what learned": advice.learned_words(config),
        "tested on": measured[0] if measured else None,
        "answers": _(tasks.TASKS.get(config.get("task"), tasks.get(None)).title),
        "main score": headline_score(config, status),
        "accuracy": status.get("val_accuracy"), "class-balanced": status.get("macro_f1"),
    }


def headline_score(config: dict, status: dict) -> str:
    """The task's first measure in words ("Typical error: 1.2"), so runs of every task have a score to read."""
    task = tasks.TASKS.get(config.get("task"), tasks.get(None))
    measure, metrics = task.measures[0], status.get("metrics") or {}
    value = metrics.get(measure.key, status.get("val_accuracy") if measure.key == "accuracy" else None)
    return _("{measure}: {value}").format(measure=_(measure.title), value=shown(measure, value)) if value is not None else ""


# Widths in pixels that fit beside the sidebar on a 1280-pixel screen; a long name shows whole on hover. The rows
# keep English keys (the page drops columns by them); each column's label is in the reader's language.
COLUMNS = {
    # Translators: a date format of the table (moment.js tokens: D day, MMM month name, HH:mm time).
    "started": st.column_config.DatetimeColumn(_("started"), format=_("D MMM HH:mm"), width=95),
    "state": st.column_config.TextColumn(_("state"), width=70),
    "data": st.column_config.TextColumn(_("data"), width=160),
    "network": st.column_config.TextColumn(_("network"), width=115),
    "what learned": st.column_config.TextColumn(_("what learned"), width=150, help=_(
        "How much of the pretrained network learned from your images (its freeze depth).")),
    "tested on": st.column_config.NumberColumn(_("tested on"), width=70, format=_("%d images"), help=_(
        "The validation images the scores were measured on: images the model did not learn from.")),
    "answers": st.column_config.TextColumn(_("answers"), width=110, help=_(
        "What the model answers: one label, several tags or a number per image.")),
    "main score": st.column_config.TextColumn(_("main score"), width=150, help=_(
        "The first score of the run's kind, on its validation images.")),
    "accuracy": st.column_config.NumberColumn(_("accuracy"), width=75, format="percent", help=_(
        "Share of validation images predicted right.")),
    "class-balanced": st.column_config.NumberColumn(_("class-balanced"), width=95, format="percent", help=_(
        "Class-balanced score (macro F1): the average over classes of the balance between precision and recall.")),
}


st.title(_("Runs"))
ws = workspace()
history = runs.list_runs(ws.runs)
if not history:
    st.info(_("No runs yet. Start one on the **Train** page."))
    st.stop()
store = DatasetStore(ws.root / "datasets")
configs = {r.id: r.config for r in history}
refs = run_refs(configs, store, labelled_content)
rows = [table_row(r, refs[r.id]) for r in history]
if all(r.state == "finished" for r in history):  # one column fewer when it would only say "finished"
    rows = [{k: v for k, v in row.items() if k != "state"} for row in rows]
single_only = all(tasks.TASKS.get(r.config.get("task"), tasks.get(None)).reports_accuracy for r in history)
dropped = ("answers", "main score") if single_only else ("accuracy", "class-balanced")  # the width of a laptop
rows = [{k: v for k, v in row.items() if k not in dropped} for row in rows]
st.dataframe(rows, hide_index=True, width="stretch", column_config=COLUMNS)
finished = {r.id: r for r in history if r.state == "finished"}
for offer in [o for o in retrain_offers(configs, refs, store) if o.run_id in finished][:1]:
    st.info(md(_("The labels of {run} changed since it trained: {newest} is newer.").format(
        run=describe_run(finished[offer.run_id]), newest=offer.newest)))
    if st.button(_("Retrain with the new labels"), key="retrain", help=_("Same settings, newest dataset version")):
        job_manager().submit(offer.config, ws.runs)
        st.rerun()
chosen = st.multiselect(_("Compare the curves of"), history, default=history[:2], format_func=lambda r: plain(describe_run(r)))
if chosen:
    sets = {r.id: validation_set(r) for r in chosen}
    measured = {s for s in sets.values() if s is not None}
    if len(measured) > 1:
        sizes = sorted({size for size, _ in measured})
        counts = _("{sizes} images").format(sizes=_(" and ").join(str(size) for size in sizes)) if len(sizes) > 1 \
            else _("{count} images each").format(count=sizes[0])
        st.warning(_("These runs were measured on different validation images ({counts}, not the same ones), so "
                     "their scores are not directly comparable: a difference may come from the images, not the "
                     "settings.").format(counts=counts), icon=":material/compare_arrows:")
    kinds = {_(tasks.TASKS.get(r.config.get("task"), tasks.get(None)).title) for r in chosen}
    if len(kinds) > 1:
        st.warning(_("These runs answer different questions ({kinds}): compare runs of one kind with each other.").format(
            kinds=_(", ").join(sorted(kinds))), icon=":material/compare_arrows:")
    metric = st.radio(_("Curve"), ["val_accuracy", "val_loss", "train_loss"], horizontal=True,
                      format_func=lambda m: _(charts.CURVE_TITLES[m]))
    curves = {describe_run(r): r.run.metrics() for r in chosen}
    st.plotly_chart(charts.compare_runs(curves, metric), key="compare")
    for problem in {p for r in chosen for p in r.run.problems}:
        st.caption(md(problem))
with st.expander(_("Delete a run")):
    doomed = st.selectbox(_("Run to delete"), history, format_func=lambda r: plain(describe_run(r)), key="doomed")
    running = doomed.run.is_running()  # checked now: a run whose process is gone can always be deleted
    if running:
        st.caption(_("This run is still training: cancel it on the Train page first."))
    if st.button(_("Delete it for good"), disabled=running, key="delete"):
        doomed.run.delete()
        st.rerun()
