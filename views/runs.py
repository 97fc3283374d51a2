"""Every training run in this workspace: compare them, delete the ones not needed."""
from pathlib import Path

import streamlit as st

from core.data.checkout import run_version
from core.data.store import DatasetStore
from core.insight import charts
from core.runs import folder as runs
from core.runs.retrain import retrain_candidates
from core.text import md, plain
from ui.common import describe_run, job_manager, workspace

st.title("Runs")
ws = workspace()
history = runs.list_runs(ws.runs)
if not history:
    st.info("No runs yet. Start one on the **Train** page.")
    st.stop()
store = DatasetStore(ws.root / "datasets")
st.dataframe([{
    "run": r.id[:8], "state": r.state, "data": r.config.get("data_name") or Path(r.config.get("data", "")).name,
    "dataset version": run_version(r.config, store), "backbone": r.config.get("backbone"),
    "freeze depth": r.config.get("freeze_depth"), "epochs": r.config.get("epochs"),
    "validation accuracy": r.status.get("val_accuracy"), "macro F1": r.status.get("macro_f1"),
    "message": r.status.get("message", ""),
} for r in history], hide_index=True)
finished = {r.id: r for r in history if r.state == "finished"}
for run_id, newer in [c for c in retrain_candidates([(r.id, r.config) for r in history], store) if c[0] in finished][:1]:
    st.info(f"The labels of {md(describe_run(finished[run_id]))} changed since it trained.")
    if st.button("Retrain with the new labels", key="retrain", help="Same settings, newest dataset version"):
        job_manager().submit(newer, ws.runs)
        st.rerun()
chosen = st.multiselect("Compare the curves of", history, default=history[:2], format_func=lambda r: plain(describe_run(r)))
if chosen:
    metric = st.radio("Curve", ["val_accuracy", "val_loss", "train_loss"], horizontal=True,
                      format_func=lambda m: m.replace("_", " "))
    curves = {describe_run(r): r.run.metrics() for r in chosen}
    st.plotly_chart(charts.compare_runs(curves, metric), key="compare")
    for problem in {p for r in chosen for p in r.run.problems}:
        st.caption(md(problem))
with st.expander("Delete a run"):
    doomed = st.selectbox("Run to delete", history, format_func=lambda r: plain(describe_run(r)), key="doomed")
    running = doomed.run.is_running()  # checked now: a run whose process is gone can always be deleted
    if running:
        st.caption("This run is still training: cancel it on the Train page first.")
    if st.button("Delete it for good", disabled=running, key="delete"):
        doomed.run.delete()
        st.rerun()
