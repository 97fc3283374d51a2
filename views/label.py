"""Label: your own images in (uploads, zips, the camera), labelled fast, every change saved as a version."""
from collections import Counter
from pathlib import Path

import streamlit as st

from core import paths
from core.data import checkout, intake
from core.data.archive import ArchiveRefused
from core.data.preprocessing import IMAGE_SUFFIXES
from core.data.store import DatasetStore, Edit, StaleVersion, StoreError, diff
from core.labelling import suggest as labelling
from core.models.features import FeatureCache
from core.text import md, plain
from ui.common import show_error, workspace
from ui.label_widgets import POOL, REMOVE, option_text, pick_dataset
from ui.label_widgets import grid as grid_of

FEATURE_SIZE = 160  # smaller than the backbone's 224: suggestions in seconds on a CPU, still good features


MODES = ("Groups of similar images", "Accept suggestions", "Most uncertain first", "Browse and relabel")

ws = workspace()
store = DatasetStore(ws.root / "datasets")


@st.cache_resource
def feature_cache() -> FeatureCache:
    return FeatureCache(paths.home() / "feature-cache")


@st.cache_data(max_entries=8, show_spinner="Grouping similar images...")
def cached_groups(root: str, dataset: str, number: int, groups: int) -> list[list[str]]:
    pool_store = DatasetStore(Path(root))
    pool = sorted(pool_store.version(dataset, number).pool())
    features = labelling.embed(pool_store, pool, feature_cache(), FEATURE_SIZE)
    return [[pool[i] for i in members] for members in labelling.group(features, groups)]


@st.cache_data(max_entries=8, show_spinner="Suggesting labels...")
def cached_suggestions(root: str, dataset: str, number: int) -> list[labelling.Suggestion]:
    suggestion_store = DatasetStore(Path(root))
    return labelling.suggestions_for(suggestion_store, suggestion_store.version(dataset, number), feature_cache(),
                                     FEATURE_SIZE)


def notify(kind: str, text: str, details: list | None = None) -> None:
    st.session_state["label_notice"] = (kind, text, details or [])


def save(dataset: str, base: int, edit: Edit) -> None:
    """Commit a change made on version `base`; a clash with another tab's change becomes a warning."""
    try:
        version = store.commit(dataset, base, edit)
    except StaleVersion as error:
        notify("warning", str(error))
    except StoreError as error:
        notify("error", str(error))
    else:
        notify("success", f"Saved as version {version.number}: {version.summary()}.")
        st.session_state["label_saved"] = True  # the typed class was used: the next labelling starts empty
    st.rerun()


def show_notice() -> None:
    kind, text, details = st.session_state.pop("label_notice", ("", "", []))
    if text:
        getattr(st, kind)(md(text))
    if details:
        with st.expander(f"Skipped files ({len(details)}) and why"):
            st.dataframe([{"file": s.path, "reason": s.reason} for s in details], hide_index=True)


def start_dataset() -> None:
    name = st.text_input("Name of a new dataset", value="My images", key="new_name")
    classes = st.text_input("Its classes (comma-separated; you can add more later)", key="new_classes")
    if st.button("Create an empty dataset", key="create"):
        created = intake.new_pool(store, name, [c for c in classes.split(",") if c.strip()])
        choose(created.dataset, f"Created {created.name}. Add images below.")
    labelled_zip = st.file_uploader("Or start from a zip of class folders", type=["zip"], key="labelled_zip")
    if labelled_zip is not None and st.session_state.get("labelled_zip_id") != labelled_zip.file_id:
        st.session_state["labelled_zip_id"] = labelled_zip.file_id
        target = ws.new_upload()  # makes the folder: this may be the workspace's first upload
        target.write_bytes(labelled_zip.getvalue())
        import_from(target, Path(labelled_zip.name).stem)
    current = ws.dataset()
    if current and st.button("Import the dataset chosen on the Data page", key="import_current",
                             help=md(current["name"])):
        import_from(Path(current["path"]), current["name"])


def import_from(source: Path, name: str) -> None:
    with st.spinner("Checking every image..."):
        result = intake.import_labelled(store, source, name, paths.home())
    choose(result.version.dataset, f"Imported {result.version.name}: {result.summary()}", result.skipped)


def choose(dataset: str, message: str, skipped: list | None = None) -> None:
    st.session_state["dataset_choice"] = dataset  # the select box below shows the new dataset
    notify("success", message, skipped)
    st.rerun()


def grid(digests: list[str], captions: list[str], ticked_by_default: bool, key: str) -> list[str]:
    return grid_of(store, digests, captions, ticked_by_default, key)


def assign(ticked: list[str], classes: list[str], dataset: str, base: int, key: str, suggested: str | None = None,
           picker: str = "") -> None:
    """The class for the ticked images: a select box (starting on `suggested`; its state is per `picker`, so a
    new group starts on its own suggestion) or a typed name, which is always a class, whatever it reads."""
    left, middle, right = st.columns([2, 2, 1], vertical_alignment="bottom")
    options = [*classes, POOL, REMOVE]
    target = left.selectbox("Give the ticked images the class", options, key=f"to_{key}{picker}",
                            index=options.index(suggested) if suggested in classes else None,
                            placeholder="choose a class", format_func=option_text)
    if st.session_state.pop("label_saved", False):
        st.session_state[f"new_{key}"] = ""  # else a name typed for the last save would silently win again
    typed = middle.text_input("...or a new class", key=f"new_{key}").strip()
    chosen = typed or target
    if right.button(f"Label {len(ticked)} ticked", key=f"assign_{key}", disabled=not ticked or chosen is None,
                    type="primary"):
        if chosen is REMOVE:
            save(dataset, base, Edit(remove=set(ticked), message=f"removed {len(ticked)}"))
        label = None if chosen is POOL else chosen
        save(dataset, base, Edit(set_label=dict.fromkeys(ticked, label), message=f"labelled {len(ticked)}"))


def add_images(dataset: str, base: int, classes: list[str]) -> None:
    files = st.file_uploader("Images, or zips of images (any folders)", accept_multiple_files=True, key="add_files",
                             type=[s.lstrip(".") for s in IMAGE_SUFFIXES] + ["zip"])
    target = st.selectbox("Put them in", [POOL, *classes], key="add_to", format_func=option_text)
    if st.button("Add them", key="add", disabled=not files):
        with st.spinner("Checking every image..."):
            result = intake.add_uploads(store, dataset, base, [(f.name, f.getvalue()) for f in files],
                                        None if target is POOL else target, paths.home())
        duplicates = f" Already there: {', '.join(result.duplicates[:5])}." if result.duplicates else ""
        notify("success", f"Version {result.version.number}: {result.summary()}{duplicates}", result.skipped)
        st.rerun()
    st.markdown("##### Camera: each photo goes straight into a class")
    if not classes:
        st.info("Create a class first (label some images, or name one when you create the dataset).")
        return
    # Off until asked for: the camera widget makes the browser ask for camera access as soon as it is drawn.
    if not st.toggle("Use the camera", key="label_camera"):
        return
    shot_class = st.selectbox("Class for the photos", classes, key="camera_class", format_func=plain)
    photo = st.camera_input("Take a photo", key="camera")
    if photo is not None and st.session_state.get("camera_done") != photo.file_id:
        st.session_state["camera_done"] = photo.file_id
        result = intake.add_camera_shot(store, dataset, base, photo.getvalue(), shot_class)
        notify("success", f"Photo added to {shot_class} (version {result.version.number}).", result.skipped)
        st.rerun()


def label_images(version, base: int) -> None:
    dataset, classes = version.dataset, version.classes
    mode = st.radio("How to label", MODES, horizontal=True, key="mode")
    suggestions = cached_suggestions(str(store.root), dataset, version.number) if mode in MODES[1:3] else []
    ready, why = labelling.ready_for_suggestions(version)
    if mode == MODES[0]:
        if not version.pool():
            st.info("The unlabelled pool is empty.")
            return
        count = st.slider("Number of groups", 2, 20, min(max(2, len(classes)), 20), key="groups")
        groups = cached_groups(str(store.root), dataset, version.number, count)
        chosen = st.selectbox("Group", range(len(groups)), key="group",
                              format_func=lambda i: f"Group {i + 1} ({len(groups[i])} images)")
        st.caption("Untick the images that do not belong, then label the group at once.")
        ticked = grid(groups[chosen], [f"{i + 1}" for i in range(len(groups[chosen]))], True, f"g{version.number}")
        suggested = group_suggestion(version, groups[chosen]) if ready else None
        assign(ticked, classes, dataset, base, "group", suggested, f"_{version.number}_{chosen}")
    elif not ready and mode in MODES[1:3]:
        st.info(why)
    elif mode == MODES[1]:
        threshold = st.slider("Show suggestions at least this sure", 0.5, 0.99, 0.8, key="threshold")
        sure = labelling.confident(suggestions, threshold)
        st.caption(f"{len(sure)} of {len(suggestions)} unlabelled images. Untick the wrong ones, then accept.")
        ticked = set(grid([s.digest for s in sure], [f"{s.label} ({s.confidence:.0%})" for s in sure], True,
                          f"s{version.number}"))
        if st.button(f"Accept {len(ticked)} ticked suggestions", key="accept", disabled=not ticked, type="primary"):
            save(dataset, base, Edit(set_label={s.digest: s.label for s in sure if s.digest in ticked},
                                     message=f"accepted {len(ticked)} suggestions"))
    elif mode == MODES[2]:
        ordered = labelling.most_uncertain_first(suggestions)
        st.caption("The images the model is least sure about teach it the most: label these first.")
        ticked = grid([s.digest for s in ordered], [f"maybe {s.label} ({s.confidence:.0%})" for s in ordered], False,
                      f"u{version.number}")
        assign(ticked, classes, dataset, base, "uncertain")
    else:
        browse(version, base)


def group_suggestion(version, members: list[str]) -> str | None:
    """The class the suggestions name most often for this group's images."""
    by_digest = {s.digest: s.label for s in cached_suggestions(str(store.root), version.dataset, version.number)}
    votes = Counter(by_digest[d] for d in members if d in by_digest)
    return votes.most_common(1)[0][0] if votes else None


def browse(version, base: int) -> None:
    shown = st.selectbox("Show", [*version.classes, POOL], key="browse", format_func=option_text)
    label = None if shown is POOL else shown
    members = sorted((d for d, e in version.images.items() if e["label"] == label),
                     key=lambda d: version.images[d]["name"])
    ticked = grid(members, [version.images[d]["name"] for d in members], False, f"b{version.number}")
    assign(ticked, version.classes, version.dataset, base, "browse")
    if label is not None:
        renamed = st.text_input(f"Rename (or merge) {md(label)} into", key="rename_to")
        if st.button("Rename", key="rename", disabled=not renamed.strip()):
            save(version.dataset, base, Edit(rename={label: renamed.strip()}, message=f"renamed {label}"))


def versions(version) -> None:
    log = store.log(version.dataset)
    st.dataframe([{"version": v.number, "change": v.summary(), "note": v.message,
                   "labelled": sum(v.counts().values()), "unlabelled": len(v.pool())} for v in log], hide_index=True)
    numbers = [v.number for v in log]
    if st.session_state.get("label_head") != version.ref:  # a save (here or in another tab): show the newest
        st.session_state["label_head"] = version.ref
        st.session_state.update(use_version=version.number, new=version.number, old=numbers[min(1, len(numbers) - 1)])
    left, right = st.columns(2)
    old = left.selectbox("Compare version", numbers, key="old")
    new = right.selectbox("with version", numbers, key="new")
    changes = diff(store.version(version.dataset, old).images, store.version(version.dataset, new).images)
    cells = st.columns(len(changes))
    for cell, (kind, hashes) in zip(cells, changes.items()):
        cell.metric(kind, len(hashes))
    chosen = st.selectbox("Version to train on or export", numbers, key="use_version")
    left, right = st.columns(2)
    if left.button("Train on this version", key="train_on", type="primary"):
        folder = checkout.materialize(store, version.dataset, chosen)
        ws.set_dataset(folder, f"{version.name} (version {chosen})")
        notify("success", f"Version {chosen} is now the dataset to train on.")
        st.session_state["label_go_train"] = True
        st.rerun()
    if st.session_state.get("label_go_train"):
        st.page_link("views/train.py", label="Go to 2. Train", icon=":material/arrow_forward:")
    if right.button("Export as a zip", key="export"):
        target = ws.uploads / f"dataset-{version.dataset}-v{chosen}.zip"
        st.session_state["label_export"] = str(checkout.export_zip(store, version.dataset, chosen, target))
    exported = st.session_state.get("label_export")
    if exported and Path(exported).exists():
        st.download_button("Download the zip", Path(exported).read_bytes, file_name=Path(exported).name,  # on click
                           mime="application/zip", key="download")


st.title("Label your images")
st.markdown("Bring in images without labels, label them quickly with the model's help, and keep every step as a "
            "version you can train on, compare, or download.")
with st.container():  # always one element here, so a notice does not shift the tabs and widgets below it
    show_notice()
try:
    with st.expander("Start a new dataset", expanded=not store.datasets()):
        start_dataset()
    known = {v.dataset: v for v in store.datasets()}
    if not known:
        st.stop()
    chosen = pick_dataset(known)
    head = store.version(chosen)
    base = st.session_state.get(f"seen_{chosen}", head.number)  # what this tab showed when the user acted
    st.session_state[f"seen_{chosen}"] = head.number
    counts = head.counts()
    cells = st.columns(4)
    cells[0].metric("Version", head.number, help=md(head.summary()))
    cells[1].metric("Classes", len(counts))
    cells[2].metric("Labelled", sum(counts.values()))
    cells[3].metric("Unlabelled", len(head.pool()))
    if counts:
        st.caption(" · ".join(f"{md(label)}: {n}" for label, n in counts.items()))
    add_tab, label_tab, versions_tab = st.tabs(["Add images", "Label", "Versions"], key="label_tab",
                                               on_change="rerun")  # kept by the server: a save stays on its tab
    with add_tab:
        add_images(chosen, base, head.classes)
    with label_tab:
        label_images(head, base)
    with versions_tab:
        versions(head)
except ArchiveRefused as error:
    show_error(f"This archive cannot be used: {error}")  # show_error escapes it
except StoreError as error:
    show_error(str(error))
except OSError as error:
    show_error("The dataset could not be read or written. Please try again.", repr(error))
