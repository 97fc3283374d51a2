"""The Label page's start: a new empty dataset of the task the workspace's data has (or another), or a labelled
zip, or the Data page's dataset imported with its classes, tags or values."""
from __future__ import annotations

from pathlib import Path

import streamlit as st

from core import paths, quota, tasks
from core.data import answers, intake
from core.data.archive import ArchiveRefused
from core.data.store import DatasetStore
from core.i18n import _, quoted
from core.text import md
from ui.common import Workspace, load_report
from ui.label_widgets import notify, shown_as


def workspace_task(ws: Workspace) -> str:
    """What the dataset chosen on the Data page has its model learn (one label per image when it cannot be read)."""
    current = ws.dataset()
    try:
        return load_report(current).task if current else tasks.DEFAULT
    except (ArchiveRefused, OSError):
        return tasks.DEFAULT


def start_dataset(store: DatasetStore, ws: Workspace) -> None:
    """A new empty dataset (its task: the workspace data's, unless chosen), or one imported from a zip or from the
    Data page's dataset."""
    name = st.text_input(_("Name of a new dataset"), value=_("My images"), key="new_name")
    task = st.radio(_("What each image gets"), tasks.NAMES, index=tasks.NAMES.index(workspace_task(ws)),
                    horizontal=True, key="new_task", format_func=shown_as(lambda n: _(tasks.get(n).title)))
    answer = answers.of(task)
    classes = st.text_input(_(answer.names_prompt), key="new_classes", disabled=not answer.noun)
    if st.button(_("Create an empty dataset"), key="create"):
        names = [c for c in classes.split(",") if c.strip()] if answer.noun else []
        created = store.create(name.strip() or _("My images"), names, task=task)
        choose(created.dataset, _("Created {name}. Add images below.").format(name=created.name))
    labelled_zip = st.file_uploader(_("Or start from a zip of class folders (or of images with a metadata.csv)"),
                                    type=["zip"], key="labelled_zip")
    if labelled_zip is not None and st.session_state.get("labelled_zip_id") != labelled_zip.file_id:
        st.session_state["labelled_zip_id"] = labelled_zip.file_id
        try:
            quota.check(ws.root, labelled_zip.size)  # before the zip is written into the workspace
        except quota.QuotaExceeded as error:
            notify("error", _("{name} was not stored: {reason}").format(name=quoted(labelled_zip.name), reason=error))
            st.rerun()
        target = ws.new_upload()  # makes the folder: this may be the workspace's first upload
        target.write_bytes(labelled_zip.getvalue())
        quota.added(ws.root, labelled_zip.size)
        import_from(store, target, Path(labelled_zip.name).stem)
    current = ws.dataset()
    if current and st.button(_("Import the dataset chosen on the Data page"), key="import_current",
                             help=md(current["name"])):
        import_from(store, Path(current["path"]), current["name"])


def import_from(store: DatasetStore, source: Path, name: str) -> None:
    with st.spinner(_("Checking every image...")):
        result = intake.import_labelled(store, source, name, paths.home())
    choose(result.version.dataset, _("Imported {name}: {summary}").format(name=result.version.name,
                                                                         summary=result.summary()), result.skipped)


def choose(dataset: str, message: str, skipped: list | None = None) -> None:
    st.session_state["dataset_choice"] = dataset  # the select box below shows the new dataset
    notify("success", message, skipped)
    st.rerun()
