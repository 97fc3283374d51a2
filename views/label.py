"""Label: your own images in (uploads, zips, the camera), labelled fast, every change saved as a version."""
import hashlib

import streamlit as st

from core import paths
from core.data import checkout, intake
from core.data.archive import ArchiveRefused
from core.data.preprocessing import IMAGE_SUFFIXES
from core.data.store import DatasetStore, Edit, StaleVersion, StoreError, diff
from core.i18n import N_, _, listing, ngettext
from core.labelling import heads, propose
from core.text import md, plain
from ui import label_start, label_tasks
from ui import label_widgets as widgets
from ui import zero_shot as zero_shot_panel
from ui.common import show_error, workspace
from ui.label_widgets import POOL, REMOVE, notify, option_text, pick_dataset, show_notice, shown_as
from ui.label_widgets import grid as grid_of

# "Label next" first: typical images, then unsure diverse ones, took 0.36-0.8x random's labels in bench/active_learning
MODES = (N_("Label next (recommended)"), N_("Groups of similar images"), N_("Accept suggestions"),
         N_("Browse and relabel"))
# What changed between two versions (core.data.versions.diff's kinds), as the comparison's counts are titled
CHANGES = {"added": N_("added"), "removed": N_("removed"), "labelled": N_("labelled"), "relabelled": N_("relabelled"),
           "unlabelled": N_("back to the pool")}

ws = workspace()
store = DatasetStore(ws.root / "datasets")


def save(dataset: str, base: int, edit: Edit) -> None:
    """Commit a change made on version `base`; a clash with another tab's change becomes a warning."""
    try:
        version = store.commit(dataset, base, edit)
    except StaleVersion as error:
        notify("warning", str(error))
    except StoreError as error:
        notify("error", str(error))
    else:
        notify("success", _("Saved as version {number}: {change}.").format(number=version.number,
                                                                            change=version.summary()))
        st.session_state["label_saved"] = True  # the typed class was used: the next labelling starts empty
    st.rerun()


def grid(digests: list[str], captions: list[str], ticked_by_default: bool, key: str) -> list[str]:
    return grid_of(store, digests, captions, ticked_by_default, key)


def assign(version, base: int, ticked: list[str], key: str, suggested=None, picker: str = "") -> None:
    """The answer for the ticked images, with the task's widgets (starting on `suggested`; their state is per
    `picker`, so a new group starts on its own suggestion). A typed class or tag name is always a name."""
    picked = label_tasks.of(version).pick(version, len(ticked), key, suggested, picker)
    chosen = picked.answer
    if st.button(picked.button, key=f"assign_{key}", disabled=not ticked or chosen is None, type="primary"):
        if chosen is REMOVE:
            # Translators: a version's note, kept in its history in the language of whoever made the change.
            save(version.dataset, base, Edit(remove=set(ticked), message=_("removed {count}").format(count=len(ticked))))
        answer = None if chosen is POOL else chosen
        save(version.dataset, base, Edit(set_label=dict.fromkeys(ticked, answer),
                                         message=_("labelled {count}").format(count=len(ticked))))


def add_images(version, base: int) -> None:
    dataset, classes = version.dataset, version.classes if version.answer.folders else []
    files = st.file_uploader(_("Images, or zips of images (any folders)"), accept_multiple_files=True, key="add_files",
                             type=[s.lstrip(".") for s in IMAGE_SUFFIXES] + ["zip"])
    target = st.selectbox(_("Put them in"), [POOL, *classes], key="add_to", format_func=shown_as(option_text))
    if st.button(_("Add them"), key="add", disabled=not files):
        with st.spinner(_("Checking every image...")):
            result = intake.add_uploads(store, dataset, base, [(f.name, f.getvalue()) for f in files],
                                        None if target is POOL else target, paths.home())
        said = _("Version {number}: {summary}").format(number=result.version.number, summary=result.summary())
        if result.duplicates:
            said = _("Version {number}: {summary} Already there: {names}.").format(
                number=result.version.number, summary=result.summary(), names=listing(result.duplicates))
        notify("success", said, result.skipped)
        st.rerun()
    st.markdown("##### " + (_("Camera: each photo goes straight into a class") if version.answer.folders else
                            _("Camera: each photo goes to the unlabelled images")))
    if version.answer.folders and not classes:
        st.info(_("Create a class first (label some images, or name one when you create the dataset)."))
        return
    # Off until asked for: the camera widget makes the browser ask for camera access as soon as it is drawn.
    if not st.toggle(_("Use the camera"), key="label_camera"):
        return
    shot_class = st.selectbox(_("Class for the photos"), classes, key="camera_class", format_func=plain) \
        if classes else None
    photo = st.camera_input(_("Take a photo"), key="camera")
    if photo is not None and st.session_state.get("camera_done") != photo.file_id:
        st.session_state["camera_done"] = photo.file_id
        result = intake.add_camera_shot(store, dataset, base, photo.getvalue(), shot_class)
        added = _("Photo added to {name} (version {number}).").format(name=shot_class, number=result.version.number) \
            if shot_class else _("Photo added to the unlabelled images (version {number}).").format(
                number=result.version.number)
        notify("success", added, result.skipped)
        st.rerun()


def label_images(version, base: int) -> None:
    mode = st.radio(_("How to label"), MODES, horizontal=True, key="mode", format_func=shown_as(_))
    ready, why = propose.ready_for_suggestions(version)
    if mode == MODES[0]:
        label_next(version, base)
    elif mode == MODES[1]:
        label_groups(version, base, ready)
    elif mode == MODES[2] and not ready:
        st.info(why)
        if not label_tasks.of(version).zero_shot:
            return
        with st.expander(_("Or start from the class names alone (zero-shot)")):
            choice = zero_shot_panel.settings("label", version.classes)
            suggestions = zero_shot_panel.prelabel_button(choice, store, version, paths.home() / "feature-cache") \
                if choice else []
        if suggestions:
            accept_suggestions(version, base, suggestions)
    elif mode == MODES[2]:
        accept_suggestions(version, base, suggestions_of(version))
    else:
        browse(version, base)


def suggestions_of(version) -> dict:
    return {s.digest: s for s in widgets.cached_suggestions(str(store.root), version.dataset, version.number)}


def label_groups(version, base: int, ready: bool) -> None:
    if not version.pool():
        st.info(_("The unlabelled pool is empty."))
        return
    count = st.slider(_("Number of groups"), 2, 20, min(max(2, len(version.classes)), 20), key="groups")
    groups = widgets.cached_groups(str(store.root), version.dataset, version.number, count)
    chosen = st.selectbox(_("Group"), range(len(groups)), key="group", format_func=shown_as(lambda i: ngettext(
        "Group {number} ({count} image)", "Group {number} ({count} images)", len(groups[i])).format(
            number=i + 1, count=len(groups[i]))))
    st.caption(_("Untick the images that do not belong, then label the group at once."))
    members = groups[chosen]
    ticked = grid(members, [f"{i + 1}" for i in range(len(members))], True, f"g{version.number}")
    suggested = suggestions_of(version) if ready else {}
    start = label_tasks.of(version).combine([suggested[d].stored for d in members if d in suggested])
    assign(version, base, ticked, "group", start, f"_{version.number}_{chosen}")


def accept_suggestions(version, base: int, suggestions) -> None:
    """The sure suggestions (the model's, or the zero-shot ones) to tick through and accept at once."""
    suggestions = list(suggestions.values()) if isinstance(suggestions, dict) else suggestions
    editor = label_tasks.of(version)
    sure = editor.sure(suggestions)
    st.caption(ngettext("{count} of {total} unlabelled image. Untick the wrong ones, then accept.",
                        "{count} of {total} unlabelled images. Untick the wrong ones, then accept.",
                        len(suggestions)).format(count=len(sure), total=len(suggestions)))
    ticked = set(grid([s.digest for s in sure], [editor.suggestion_caption(s) for s in sure], True,
                      f"s{version.number}"))
    accept = ngettext("Accept {count} ticked suggestion", "Accept {count} ticked suggestions", len(ticked))
    if st.button(accept.format(count=len(ticked)), key="accept", disabled=not ticked, type="primary"):
        note = ngettext("accepted {count} suggestion", "accepted {count} suggestions", len(ticked))
        save(version.dataset, base, Edit(set_label={s.digest: s.stored for s in sure if s.digest in ticked},
                                         message=note.format(count=len(ticked))))


def label_next(version, base: int) -> None:
    """The proposal: the images that teach the model most now, why, and how many more labels it likely needs; the
    model's guess for the ticked images starts the answer."""
    if not version.images:
        st.info(_("Add images first (the Add images tab): then the page proposes which to label first."))
        return
    root = str(store.root)
    proposal = widgets.cached_proposal(root, version.dataset, version.number)
    curve = (lambda: widgets.cached_curve(root, version.dataset, version.number)) if heads.of(version.task).curve \
        else None
    widgets.proposal_header(proposal, version, curve)
    if proposal.digests:
        ticked = grid(proposal.digests, proposal.captions, False, f"n{version.number}")
        guesses = [proposal.suggestions[d].stored for d in ticked if d in proposal.suggestions]
        picker = f"_{version.number}_" + hashlib.sha256("".join(sorted(ticked)).encode()).hexdigest()[:12]
        assign(version, base, ticked, "next", label_tasks.of(version).combine(guesses), picker)


def browse(version, base: int) -> None:
    editor = label_tasks.of(version)
    shown = st.selectbox(_("Show"), editor.shelves(version), key="browse", format_func=shown_as(option_text))
    members = editor.members(version, shown)
    ticked = grid(members, [editor.caption(version, d) for d in members], False, f"b{version.number}")
    assign(version, base, ticked, "browse")
    if shown in version.classes:
        renamed = st.text_input(_("Rename (or merge) {name} into").format(name=md(shown)), key="rename_to")
        if st.button(_("Rename"), key="rename", disabled=not renamed.strip()):
            save(version.dataset, base, Edit(rename={shown: renamed.strip()},
                                             message=_("renamed {name}").format(name=shown)))


def versions(version) -> None:
    log = store.log(version.dataset)
    columns = _("version"), _("change"), _("note"), _("labelled"), _("unlabelled")
    st.dataframe([dict(zip(columns, (v.number, v.summary(), v.message, v.labelled(), len(v.pool())))) for v in log],
                 hide_index=True)
    numbers = [v.number for v in log]
    if st.session_state.get("label_head") != version.ref:  # a save (here or in another tab): show the newest
        st.session_state["label_head"] = version.ref
        st.session_state.update(use_version=version.number, new=version.number, old=numbers[min(1, len(numbers) - 1)])
    left, right = st.columns(2)
    old = left.selectbox(_("Compare version"), numbers, key="old")
    new = right.selectbox(_("with version"), numbers, key="new")
    changes = diff(store.version(version.dataset, old).images, store.version(version.dataset, new).images)
    cells = st.columns(len(changes))
    for cell, (kind, hashes) in zip(cells, changes.items()):
        cell.metric(_(CHANGES[kind]), len(hashes))
    chosen = st.selectbox(_("Version to train on or export"), numbers, key="use_version")
    left, right = st.columns(2)
    if left.button(_("Train on this version"), key="train_on", type="primary"):
        folder = checkout.materialize(store, version.dataset, chosen)
        ws.set_dataset(folder, _("{name} (version {number})").format(name=version.name, number=chosen))
        notify("success", _("Version {number} is now the dataset to train on.").format(number=chosen))
        st.session_state["label_go_train"] = True
        st.rerun()
    if st.session_state.get("label_go_train"):
        st.page_link("views/train.py", label=_("Go to 2. Train"), icon=":material/arrow_forward:")
    widgets.export_zip(store, ws, version.dataset, chosen, right)

st.title(_("Label your images"))
st.markdown(_("Bring in images without labels, label them quickly with the model's help, and keep every step as a "
              "version you can train on, compare, or download."))
with st.container():  # always one element here, so a notice does not shift the tabs and widgets below it
    show_notice()
try:
    with st.expander(_("Start a new dataset"), expanded=not store.datasets()):
        label_start.start_dataset(store, ws)
    known = {v.dataset: v for v in store.datasets()}
    if not known:
        st.stop()
    chosen = pick_dataset(known)
    head = store.version(chosen)
    base = st.session_state.get(f"seen_{chosen}", head.number)  # what this tab showed when the user acted
    st.session_state[f"seen_{chosen}"] = head.number
    counts = head.counts()
    cells = st.columns(4)
    cells[0].metric(_("Version"), head.number, help=md(head.summary()))
    title, value, meaning = label_tasks.of(head).metrics(head)
    cells[1].metric(title, value, help=md(meaning) if meaning else None)
    cells[2].metric(_("Labelled"), head.labelled())
    cells[3].metric(_("Unlabelled"), len(head.pool()))
    if counts:
        st.caption(" · ".join(_("{name}: {count}").format(name=md(label), count=n) for label, n in counts.items()))
    widgets.merge_lookalikes(store, head, base)
    add_tab, label_tab, versions_tab = st.tabs([_("Add images"), _("Label"), _("Versions")], key="label_tab",
                                               on_change="rerun")  # kept by the server: a save stays on its tab
    with add_tab:
        add_images(head, base)
    with label_tab:
        label_images(head, base)
    with versions_tab:
        versions(head)
        widgets.delete_dataset(store, head, ws)
except ArchiveRefused as error:
    show_error(_("This archive cannot be used: {reason}").format(reason=error))  # show_error escapes it
except StoreError as error:
    show_error(str(error))
except OSError as error:
    show_error(_("The dataset could not be read or written. Please try again."), repr(error))
