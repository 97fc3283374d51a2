"""Step 1: the user's images in, and what we found in them."""
import shutil
from pathlib import Path

import streamlit as st

from core import quota
from core.data.archive import ArchiveRefused
from core.data.sample import SAMPLE_ZIP
from core.insight import charts
from core.text import md
from ui.common import cached_thumbnail, load_report, show_error, workspace

THUMBS_PER_CLASS = 8

ws = workspace()
st.title("1. Your images")
st.markdown("Upload a **zip** with one folder per class (for example `cats/`, `dogs/`), or with `train/` and "
            "`val/` folders that each hold the class folders. No data at hand? Try the sample.")
left, right = st.columns([3, 1])
upload = left.file_uploader("Zip of labelled images", type=["zip"], help="Up to 2 GB.")
previous = ws.dataset()
if right.button("Use the sample dataset", help="120 generated pictures of circles, squares and triangles"):
    ws.set_dataset(SAMPLE_ZIP, "Sample: shapes")
    if previous:
        ws.discard_upload(Path(previous["path"]))
if upload is not None and st.session_state.get("uploaded_file_id") != upload.file_id:
    st.session_state["uploaded_file_id"] = upload.file_id
    try:
        quota.check(ws.root, upload.size)  # before anything of it is stored
    except quota.QuotaExceeded as error:
        st.session_state["quota_refusal"] = (upload.file_id, f"'{upload.name}' was not stored: {error}")
    else:
        target = ws.new_upload()
        with target.open("wb") as sink:
            shutil.copyfileobj(upload, sink, 1 << 20)  # to disk in chunks; training reads it from there
        quota.added(ws.root, upload.size)
        ws.set_dataset(target, upload.name)
        if previous:
            ws.discard_upload(Path(previous["path"]))  # replaced: kept only if a run was trained on it
refusal = st.session_state.get("quota_refusal")
if refusal and upload is not None and refusal[0] == upload.file_id:
    show_error(refusal[1])

dataset = ws.dataset()
if not dataset:
    if st.session_state.get("refused_upload"):
        show_error(st.session_state["refused_upload"])
    st.info("Upload a zip, or click **Use the sample dataset**, to begin.")
    st.stop()
try:
    report = load_report(dataset)
except ArchiveRefused as error:
    message = f"'{dataset['name']}' cannot be used: {error}"
    st.session_state["refused_upload"] = message
    ws.discard_upload(Path(dataset["path"]))  # refused: nothing of it stays on the server
    ws.clear_dataset()
    show_error(message)
    st.stop()
except OSError as error:
    show_error(f"'{dataset['name']}' could not be read on the server ({error.strerror or 'input/output error'}).",
               type(error).__name__)
    st.stop()
st.session_state.pop("refused_upload", None)

st.subheader(f"Dataset: {md(dataset['name'])}")
if report.error:
    st.error(md(report.error))
counts = st.columns(4)
counts[0].metric("Classes", len(report.classes))
counts[1].metric("Images", sum(report.classes.values()))
counts[2].metric("Skipped files", len(report.skipped))
counts[3].metric("Layout", "train/ + val/" if report.splits else "class folders")
for warning in report.warnings:
    st.warning(md(warning))  # plain text quoting user names: shown as text, never as Markdown
if report.classes:
    st.plotly_chart(charts.class_counts(report.classes, report.splits), key="class_counts")
    st.markdown("#### A few images from each class")
    for label in report.labels:
        records = [r for r in report.images if r.label == label][:THUMBS_PER_CLASS]
        previews = [(cached_thumbnail(str(report.root / r.path)), Path(r.path).name) for r in records]
        previews = [(image, name) for image, name in previews if image is not None]
        st.markdown(f"**{md(label)}** ({report.classes[label]} images)")
        if previews:
            st.image([image for image, _ in previews], caption=[md(name) for _, name in previews], width=96)
if report.skipped:
    with st.expander(f"Skipped files ({len(report.skipped)}) and why"):
        st.dataframe([{"file": s.path, "reason": s.reason} for s in report.skipped], hide_index=True)
if report.trainable:
    st.success("Your data is ready. Next, choose how to train.")
    st.page_link("views/train.py", label="Go to 2. Train", icon=":material/arrow_forward:")
