"""Step 1: the user's images in, and what we found in them."""
import shutil
from pathlib import Path

import streamlit as st

from core import quota, tasks
from core.data.archive import ArchiveRefused
from core.data.sample import SAMPLE_ZIP
from core.i18n import _, ngettext, quoted
from core.insight import charts
from core.text import md
from ui.common import cached_thumbnail, load_report, show_error, workspace

THUMBS_PER_CLASS = 8

ws = workspace()
st.title(_("1. Your images"))
st.markdown(_("Upload a **zip** with one folder per class (for example `cats/`, `dogs/`), or with `train/` and "
              "`val/` folders that each hold the class folders. No data at hand? Try the sample."))
with st.expander(_("Several tags per image, or a number (a score) per image?")):
    st.markdown(_("Put a `metadata.csv` beside the images, with a `file_name` column and one more column: `tags` "
                "(several labels per image, separated by semicolons, e.g. `sky;tree`) or a number "
                  "(e.g. `score`, `length_mm`). The column decides what the model learns."))
left, right = st.columns([3, 1])
upload = left.file_uploader(_("Zip of labelled images"), type=["zip"], help=_("Up to 2 GB."))
previous = ws.dataset()
if right.button(_("Use the sample dataset"), help=_("120 generated pictures of circles, squares and triangles")):
    ws.set_dataset(SAMPLE_ZIP, _("Sample: shapes"))
    if previous:
        ws.discard_upload(Path(previous["path"]))
if upload is not None and st.session_state.get("uploaded_file_id") != upload.file_id:
    st.session_state["uploaded_file_id"] = upload.file_id
    try:
        quota.check(ws.root, upload.size)  # before anything of it is stored
    except quota.QuotaExceeded as error:
        st.session_state["quota_refusal"] = (upload.file_id, _("{name} was not stored: {reason}").format(
            name=quoted(upload.name), reason=error))
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
    st.info(_("Upload a zip, or click **Use the sample dataset**, to begin."))
    st.stop()
try:
    report = load_report(dataset)
except ArchiveRefused as error:
    message = _("{name} cannot be used: {reason}").format(name=quoted(dataset["name"]), reason=error)
    st.session_state["refused_upload"] = message
    ws.discard_upload(Path(dataset["path"]))  # refused: nothing of it stays on the server
    ws.clear_dataset()
    show_error(message)
    st.stop()
except OSError as error:
    show_error(_("{name} could not be read on the server ({reason}).").format(
        name=quoted(dataset["name"]), reason=error.strerror or _("input/output error")),
               type(error).__name__)
    st.stop()
st.session_state.pop("refused_upload", None)

st.subheader(_("Dataset: {name}").format(name=md(dataset["name"])))
if report.error:
    st.error(md(report.error))
task = tasks.get(report.task)
if report.target != "label":
    st.markdown(_("The model will learn **{what}**, from the column {column}.").format(
        what=md(_(task.title)), column=md(quoted(report.target))))
else:
    st.markdown(_("The model will learn **{what}**.").format(what=md(_(task.title))))
values = report.details.get("values")
counts = st.columns(4)
if values:
    counts[0].metric(_("Values from"), _("{low} to {high}").format(low=f"{values['min']:.3g}", high=f"{values['max']:.3g}"),
                     help=_("Median {median}; half of the values lie within the middle range.").format(
                         median=f"{values['median']:.3g}"))
else:
    counts[0].metric(_("Tags") if "tag_counts" in report.details else _("Classes"), len(report.classes))
counts[1].metric(_("Images"), sum(report.classes.values()))
counts[2].metric(_("Skipped files"), len(report.skipped))
counts[3].metric(_("Layout"), "train/ + val/" if report.splits else _("class folders"))
for warning in report.warnings:
    st.warning(md(warning))  # plain text quoting user names: shown as text, never as Markdown
if values:
    st.plotly_chart(charts.value_histogram(values["histogram"]), key="value_histogram")
if report.classes:
    st.plotly_chart(charts.class_counts(report.classes, report.splits), key="class_counts")
    st.markdown("#### " + _("A few images from each class"))
    for label in report.labels:
        records = [r for r in report.images if label in (r.labels or (r.label,))][:THUMBS_PER_CLASS]
        previews = [(cached_thumbnail(str(report.root / r.path)), Path(r.path).name) for r in records]
        previews = [(image, name) for image, name in previews if image is not None]
        st.markdown(ngettext("**{name}** ({count} image)", "**{name}** ({count} images)", report.classes[label]).format(
            name=md(label), count=report.classes[label]))
        if previews:
            st.image([image for image, _name in previews], caption=[md(name) for _image, name in previews], width=96)
if report.skipped:
    with st.expander(_("Skipped files ({count}) and why").format(count=len(report.skipped))):
        st.dataframe([{_("file"): s.path, _("reason"): s.reason} for s in report.skipped], hide_index=True)
if report.trainable:
    st.success(_("Your data is ready. Next, choose how to train."))
    st.page_link("views/train.py", label=_("Go to 2. Train"), icon=":material/arrow_forward:")
