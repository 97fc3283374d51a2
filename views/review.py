"""Review: which of my labels are probably wrong? Mark each keep / relabel / remove; download the corrected data."""
import traceback
import uuid
from pathlib import Path

import streamlit as st

from core import paths
from core.data.archive import ArchiveRefused
from core.data.checkout import apply_review_marks, materialize
from core.data.store import DatasetStore, StoreError
from core.i18n import N_, _, ngettext, percent, quoted
from core.insight.audit import AuditImpossible, AuditResult, audit, corrected_zip
from core.insight.audit_corrections import corrected_copy, corrected_metadata_zip
from core.insight.audit_words import number
from core.insight.embeddings import FeatureSpec
from core.text import md, plain
from core.training.config import TrainConfig
from ui.common import cached_thumbnail, load_report, show_error, workspace
from ui.insight import feature_cache

SHOWN = 30
ACTIONS = {"keep": N_("Keep as it is"), "relabel": N_("Relabel"), "remove": N_("Remove")}
# What the audit checks, by the task's correction: the heading over the flagged images, and the all-clear
SUSPECTS = {"label": N_("Probably wrong labels ({count})"), "labels": N_("Probably wrong tags ({count})"),
            "value": N_("Probably wrong values ({count})")}
ALL_CLEAR = {"label": N_("No label looks wrong: every image agrees with a model that never saw it."),
             "labels": N_("No tag looks wrong: every image agrees with a model that never saw it."),
             "value": N_("No value looks wrong: every image agrees with a model that never saw it.")}
VALUE_BOUND = 1e12


def spec_for(ws, dataset_path: str) -> tuple[FeatureSpec, bool]:
    """The newest run on this data sets the backbone (its features are cached); otherwise the bundled one."""
    for run in ws.finished_runs():
        config = run.config
        if config.get("data") == dataset_path:
            spec = FeatureSpec(config["backbone"], config.get("weights", "default"), config.get("seed", 0),
                               config.get("image_size"), "auto")
            return spec, not TrainConfig.from_dict(config).trains_head_only()
    return FeatureSpec(), False


def correction_input(result: AuditResult, i: int, container):
    """The new label, tags or value for flagged image i, the audit's suggestion first."""
    record, suggested = result.records[i], result.suggested(i)
    if result.correction == "labels":
        return container.multiselect(_("Its tags"), result.labels, default=suggested, format_func=plain,
                                     key=f"tags_{i}")
    if result.correction == "value":
        start = min(max(float(suggested), -VALUE_BOUND), VALUE_BOUND)
        return container.number_input(_("Its value"), -VALUE_BOUND, VALUE_BOUND, start, key=f"value_{i}",
                                      help=_("Given: {given}; the audit suggests {guess}.").format(
                                          given=number(record.value), guess=number(suggested)))
    others = [c for c in result.labels if c != record.label]
    return container.selectbox(_("New label"), others, index=others.index(suggested) if suggested in others else 0,
                               format_func=plain, key=f"label_{i}")


def save_metadata_copy(ws, dataset: dict, report, changes: dict) -> None:
    """Tags and values: a corrected copy of the data (images linked, its metadata file rewritten) becomes the
    workspace's dataset; the original stays as it was."""
    name = _("{name} (corrected)").format(name=Path(dataset["name"]).stem or _("My images"))
    try:
        folder = corrected_copy(report, changes, ws.root / "corrected" / uuid.uuid4().hex[:12])
    except OSError:
        show_error(_("The corrected copy could not be written."), traceback.format_exc())
        return
    ws.set_dataset(folder, name)
    st.success(md(ngettext("Saved as {name} with {count} change. It is now the dataset the Train page uses.",
                           "Saved as {name} with {count} changes. It is now the dataset the Train page uses.",
                           len(changes)).format(name=quoted(name), count=len(changes))))


ws = workspace()
st.title(_("Review your labels"))
st.caption(_("Every image is predicted by a model that never saw it ({folds}-fold cross-validation on the "
             "backbone's features). Where that model strongly disagrees with your label, the label may be "
             "wrong.").format(folds=5))
dataset = ws.dataset()
if not dataset:
    st.info(_("First choose your images on the **Data** page."))
    st.stop()
try:
    report = load_report(dataset)
except (ArchiveRefused, OSError) as error:
    show_error(_("The dataset cannot be used: {reason}").format(reason=error))
    st.stop()
spec, fine_tuned = spec_for(ws, dataset["path"])
if fine_tuned:
    st.info(_("Your run retrained part of the backbone; the audit uses the original (frozen) backbone's "
              "features."))
key = f"audit_{dataset['path']}"
if st.button(_("Check my labels"), type="primary", key="run_audit"):
    try:
        with st.spinner(_("Checking every label (seconds once the features are computed)...")):
            st.session_state[key] = audit(Path(dataset["path"]), spec, work_dir=paths.home(), cache=feature_cache())
    except (AuditImpossible, ArchiveRefused) as error:
        show_error(_("The audit cannot run: {reason}").format(reason=error))
    except Exception:  # never a bare traceback
        show_error(_("The audit did not work on this data."), traceback.format_exc())
result = st.session_state.get(key)
if result is None:
    st.stop()

marks: dict = st.session_state.setdefault("review_marks", {}).setdefault(dataset["path"], {})
st.subheader(_(SUSPECTS[result.correction]).format(count=len(result.flagged)))
for note in result.current_notes():
    st.caption(md(note))
if not result.flagged:
    st.success(_(ALL_CLEAR[result.correction]))
for position, i in enumerate(result.flagged[:SHOWN]):
    record = result.records[i]
    left, right = st.columns([1, 3])
    image = cached_thumbnail(str(result.root / record.path))
    if image is not None:
        left.image(image, caption=md(record.path))
    right.markdown(md(result.headline(i)))
    right.caption(md(result.reason(i)))
    action = right.radio(_("What to do"), list(ACTIONS), format_func=lambda a: _(ACTIONS[a]), horizontal=True,
                         key=f"act_{i}",
                         index=list(ACTIONS).index(marks.get(record.path, {}).get("action", "keep")))
    new = correction_input(result, i, right) if action == "relabel" else None
    marks[record.path] = {"action": action, result.correction: new}
if len(result.flagged) > SHOWN:
    st.caption(_("The {shown} most suspicious of {count} are shown.").format(shown=SHOWN, count=len(result.flagged)))

with st.expander(_("Odd ones out ({count}): unlike most of your images").format(count=len(result.outliers))):
    st.caption(_("These may be from another source, badly exposed, or not what the class is about."))
    for i, score in result.outliers[:SHOWN]:
        record = result.records[i]
        image = cached_thumbnail(str(result.root / record.path))
        if image is not None:
            given = record.label if result.correction != "value" else number(record.value)
            caption = _("{file} ({given}), unusual: {share}").format(file=record.path, given=given,
                                                                     share=percent(score))
            st.image(image, caption=md(caption), width=160)
pairs = len(result.near_duplicates)
with st.expander(ngettext("Near-duplicates ({count} pair)", "Near-duplicates ({count} pairs)", pairs).format(
        count=pairs)):
    st.caption(_("Copies make validation look better than it is: a copy of a training image is easy to get "
                 "right."))
    for a, b, similarity in result.near_duplicates[:SHOWN]:
        pair = [cached_thumbnail(str(result.root / result.records[j].path)) for j in (a, b)]
        if all(image is not None for image in pair):
            st.image(pair, caption=[md(result.records[a].path), md(result.records[b].path)], width=120)
        st.caption(_("{share} similar").format(share=percent(similarity, 1)))

changes = {path: mark for path, mark in marks.items() if mark["action"] != "keep"}
st.subheader(_("Apply"))
st.caption(ngettext("{count} change marked. The corrected copy holds your images with the marks applied.",
                    "{count} changes marked. The corrected copy holds your images with the marks applied.",
                    len(changes)).format(count=len(changes)))
in_store = result.correction == "label"  # the dataset store keeps one label per image; tags and values stay in
# the dataset's metadata file, so their corrections make a corrected copy of it
if st.button(_("Prepare the corrected zip"), disabled=not changes, key="prepare_zip"):
    target = ws.root / "corrected.zip"
    try:
        if in_store:
            corrected_zip(result.root, report.images, changes, target)
        else:
            corrected_metadata_zip(report, changes, target)
        st.session_state[f"{key}_zip"] = str(target)
    except OSError:
        show_error(_("The corrected zip could not be written."), traceback.format_exc())
if not in_store:
    if st.button(_("Save the corrections as a new copy of the data"), disabled=not changes, key="save_version",
                 help=_("The images are shared with the original, so the copy takes almost no space.")):
        save_metadata_copy(ws, dataset, report, changes)
elif st.button(_("Save the marks as a new dataset version"), disabled=not changes, key="save_version",
               help=_("The Label page lists every version; train on the new one from there or from Runs.")):
    try:
        version = apply_review_marks(DatasetStore(ws.root / "datasets"), dataset["path"], report.images, changes,
                                     Path(dataset["name"]).stem or _("My images"), paths.home())
    except StoreError as error:
        show_error(str(error))
    else:
        ws.set_dataset(materialize(DatasetStore(ws.root / "datasets"), version.dataset, version.number),
                       _("{name} (version {version})").format(name=version.name, version=version.number))
        st.success(md(_("Saved as version {version} of {name} ({summary}). It is now the dataset the Train page "
                        "uses.").format(version=version.number, name=quoted(version.name),
                                        summary=version.summary())))
ready = st.session_state.get(f"{key}_zip")
if ready and Path(ready).exists():
    stem = Path(dataset["name"]).stem or "data"
    st.download_button(_("Download the corrected images (zip)"), Path(ready).read_bytes(),
                       file_name=f"{stem}-corrected.zip", mime="application/zip", type="primary")
