"""The Label page's widgets: the tick-box grid, class pickers whose extra choices are never strings, the
dataset picker that always names the current version, the 'Label next' header, notices, merging look-alike class
names and deleting a dataset."""
from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from enum import Enum
from pathlib import Path
from typing import Any

import streamlit as st

from core import paths, quota
from core.data import checkout, names
from core.data.store import DatasetStore, StoreError, Version
from core.i18n import N_, _, keeping_language, language, ngettext, quoted
from core.labelling import propose
from core.labelling import suggest as labelling
from core.labelling.curve import CurveEstimate
from core.labelling.propose import Proposal
from core.models.features import FeatureCache
from core.text import md, plain
from ui.common import Workspace, cached_thumbnail, show_error

PAGE_SIZE = 36
COLUMNS = 6
FEATURE_SIZE = 160  # smaller than the backbone's 224: suggestions in seconds on a CPU, still good features
CURVE_AUTO = 300  # labels up to which each proposal brings its learning curve (seconds); above, on request


class Target(Enum):
    """What a select box offers besides the classes. Members, never strings: a class may be called anything,
    '(unlabelled pool)' included, and must stay a class. The texts hold a '/', which no class name may contain,
    because Streamlit tells options apart by their text (each translation keeps its '/' too)."""
    POOL = N_("No class / back to the unlabelled pool")
    REMOVE = N_("Remove / take out of the dataset")
    LABELLED = N_("Every image with a value / smallest first")
    UNTAGGED = N_("No tag / images none of the tags apply to")


POOL, REMOVE, LABELLED, UNTAGGED = Target.POOL, Target.REMOVE, Target.LABELLED, Target.UNTAGGED


def option_text(option) -> str:
    return _(option.value) if isinstance(option, Target) else plain(option)


def shown_as(format_func: Callable[[Any], str]) -> Callable[[Any], str]:
    """A select box's format_func that speaks the page's language wherever it is called: Streamlit's test harness
    calls it outside the page's run, where the language would be English and no option would match its text."""
    return keeping_language(format_func)


def grid(store: DatasetStore, digests: list[str], captions: list[str], ticked_by_default: bool, key: str) -> list[str]:
    """Thumbnails with a tick box each, a page at a time; returns the ticked ones on this page."""
    pages = max(1, -(-len(digests) // PAGE_SIZE))
    page = int(st.number_input(_("Page (of {pages})").format(pages=pages), 1, pages, key=f"page_{key}")) \
        if pages > 1 else 1
    start = (page - 1) * PAGE_SIZE
    shown = list(zip(digests, captions))[start:start + PAGE_SIZE]
    keys = [f"tick_{key}_{digest[:24]}" for digest, _caption in shown]
    left, right, _spacer = st.columns([1, 1, 4])
    left.button(_("Tick all"), key=f"all_{key}", on_click=_set_ticks, args=(keys, True))
    right.button(_("Untick all"), key=f"none_{key}", on_click=_set_ticks, args=(keys, False))
    columns, ticked = st.columns(COLUMNS), []
    for i, ((digest, caption), tick_key) in enumerate(zip(shown, keys)):
        with columns[i % COLUMNS]:
            thumb = cached_thumbnail(str(store.object_path(digest)))
            if thumb is not None:
                st.image(thumb, width=120)
            if st.checkbox(md(caption), value=ticked_by_default, key=tick_key):
                ticked.append(digest)
    return ticked


def _set_ticks(keys: list[str], value: bool) -> None:
    for key in keys:
        st.session_state[key] = value


def pick_dataset(known: dict) -> str:
    """The dataset select box, its options naming each dataset's current version. The choice is set again on
    every run: an option's text changes with each save, and the browser would otherwise keep showing the old
    text ('version 2' beside 'Version 3')."""
    wanted = st.session_state.get("dataset_choice")
    wanted = wanted if wanted in known else st.session_state.get("label_dataset")
    st.session_state["dataset_choice"] = st.session_state["label_dataset"] = wanted if wanted in known else next(
        iter(known))
    names = Counter(v.name for v in known.values())
    return st.selectbox(_("Dataset"), list(known), key="dataset_choice", format_func=shown_as(lambda d: plain(
        _("{name} (version {number})").format(name=known[d].name, number=known[d].number)
        + (f" · {d[:6]}" if names[known[d].name] > 1 else ""))))


def notify(kind: str, text: str, details: list | None = None) -> None:
    """A notice for the top of the page's next run (kind: success, warning, error, info)."""
    st.session_state["label_notice"] = (kind, text, details or [])


def show_notice() -> None:
    kind, text, details = st.session_state.pop("label_notice", ("", "", []))
    if text:
        getattr(st, kind)(md(text))
    if details:
        with st.expander(_("Skipped files ({count}) and why").format(count=len(details))):
            st.dataframe([{_("file"): s.path, _("reason"): s.reason} for s in details], hide_index=True)


def proposal_header(proposal: Proposal, version: Version, measure: Callable[[], CurveEstimate] | None) -> None:
    """How far there is to go (the learning curve's sentence; measured on request with `measure` where the proposal
    left it out; None: the task has no such curve), then why these images come next, each in words."""
    estimate, asked = proposal.curve, st.session_state.get("label_curve") == version.ref
    if estimate is None and measure is not None and (asked or st.button(
            _("How many more labels does the model need?"), key="curve",
            help=_("A learning curve on your labels: up to a minute"))):
        st.session_state["label_curve"] = version.ref  # shown again on the next runs (cached) until a save
        estimate = measure()
    if estimate is not None:
        st.info(md(estimate.sentence()))
    if estimate is not None and estimate.accuracy is not None:
        st.caption(_("Measured by training on parts of your labels and testing on the rest; the range is where the "
                     "true figure lies 8 times in 10. Labels chosen here usually teach more than that, so it leans "
                     "pessimistic."))
    if not proposal.digests:
        st.success(md(proposal.why))
        return
    st.markdown(md(proposal.why))
    with st.expander(_("Why each of these images comes next")):
        # a table shows the reasons as text: the class names inside them are the user's
        st.dataframe([{_("image"): version.images[d]["name"], _("why"): reason}
                      for d, reason in zip(proposal.digests, proposal.reasons)], hide_index=True)


def merge_lookalikes(store: DatasetStore, version: Version, base: int) -> None:
    """Class names that differ only in case or look-alike characters: said, and merged into one on request."""
    groups = names.lookalike_groups(version.classes)
    if not groups:
        return
    # Translators: between groups of look-alike names ('a' and 'A'; 'b' and 'B').
    listed = _("; ").join(_(" and ").join(quoted(name) for name in group) for group in groups)
    st.warning(md(_("These class names look alike: {names}. Windows and macOS would put each group in one folder, "
                    "and a reader cannot tell them apart.").format(names=listed)))
    if st.button(_("Merge look-alike class names"), key="merge_lookalikes",
                 help=_("Each group becomes one class (the name most of its images have), saved as a new version.")):
        try:
            merged = store.merge_lookalikes(version.dataset, base)
        except StoreError as error:  # another tab changed the dataset meanwhile: one sentence says so
            notify("warning", str(error))
        else:
            notify("success", _("Merged look-alike class names: version {number}, {change}.").format(
                number=merged.number, change=merged.summary()))
        st.rerun()


def delete_dataset(store: DatasetStore, version: Version, workspace: Workspace) -> None:
    """Deleting a dataset and all its versions, once a tick box confirms it."""
    with st.expander(_("Delete this dataset")):
        sure = st.checkbox(md(ngettext("Yes, delete {name} and its only version. This cannot be undone.",
                                       "Yes, delete {name} and all {count} of its versions. This cannot be undone.",
                                       version.number).format(name=quoted(version.name), count=version.number)),
                           key=f"delete_sure_{version.dataset}")
        if st.button(_("Delete this dataset"), key="delete_dataset", disabled=not sure):
            current = workspace.dataset()
            if current and checkout.version_of_folder(current["path"], store).startswith(f"{version.dataset}@"):
                workspace.clear_dataset()  # the Train page would otherwise offer a folder that is gone
            store.delete(version.dataset)
            st.session_state.pop("dataset_choice", None)
            notify("success", _("Deleted the dataset {name}.").format(name=quoted(version.name)))
            st.rerun()


def export_zip(store: DatasetStore, workspace: Workspace, dataset: str, number: int, column) -> None:
    """The version as a zip of class folders, or of images beside a metadata.csv for tags and values (in the
    store's exports, which the clean-up empties after a day),
    refused in one sentence if a full copy of its images would take the workspace past its limit."""
    if column.button(_("Export as a zip"), key="export"):
        images = store.version(dataset, number).images
        try:
            quota.check(workspace.root, sum(store.object_path(d).stat().st_size for d in images))
        except quota.QuotaExceeded as error:
            show_error(_("The zip was not made: {reason}").format(reason=error))
        else:
            st.session_state["label_export"] = str(checkout.export_zip(store, dataset, number))
    exported = st.session_state.get("label_export")
    if exported and Path(exported).exists():
        st.download_button(_("Download the zip"), Path(exported).read_bytes, file_name=Path(exported).name,  # on click
                           mime="application/zip", key="download")


# The page's caches: keyed by the store's folder and a version, so a save (a new version) computes afresh.
@st.cache_resource
def feature_cache() -> FeatureCache:
    return FeatureCache(paths.home() / "feature-cache")


# A spinner in the reader's language only while one computes (st.spinner shows after half a second: not on a hit);
# the texts a result holds (reasons, captions, guesses in words) are in the language it was computed in: a key.
def cached_groups(root: str, dataset: str, number: int, groups: int) -> list[list[str]]:
    with st.spinner(_("Grouping similar images...")):
        return _groups(root, dataset, number, groups)


def cached_suggestions(root: str, dataset: str, number: int) -> list[labelling.Suggestion]:
    with st.spinner(_("Suggesting labels...")):
        return _suggestions(root, dataset, number, language())


def cached_proposal(root: str, dataset: str, number: int) -> propose.Proposal:
    with st.spinner(_("Choosing the images to label next...")):
        return _proposal(root, dataset, number, language())


def cached_curve(root: str, dataset: str, number: int) -> CurveEstimate:
    with st.spinner(_("Measuring the learning curve on your labels...")):
        return _curve(root, dataset, number)


@st.cache_data(max_entries=8, show_spinner=False)
def _groups(root: str, dataset: str, number: int, groups: int) -> list[list[str]]:
    pool_store = DatasetStore(Path(root))
    pool = sorted(pool_store.version(dataset, number).pool())
    features = labelling.embed(pool_store, pool, feature_cache(), FEATURE_SIZE)
    return [[pool[i] for i in members] for members in labelling.group(features, groups)]


@st.cache_data(max_entries=8, show_spinner=False)
def _suggestions(root: str, dataset: str, number: int, lang: str) -> list[labelling.Suggestion]:
    suggestion_store = DatasetStore(Path(root))
    return propose.suggestions_for(suggestion_store, suggestion_store.version(dataset, number), feature_cache(),
                                   FEATURE_SIZE)


@st.cache_data(max_entries=8, show_spinner=False)
def _proposal(root: str, dataset: str, number: int, lang: str) -> propose.Proposal:
    proposal_store = DatasetStore(Path(root))
    return propose.next_to_label(proposal_store, proposal_store.version(dataset, number), feature_cache(),
                                 FEATURE_SIZE, curve_up_to=CURVE_AUTO)


@st.cache_data(max_entries=8, show_spinner=False)
def _curve(root: str, dataset: str, number: int) -> CurveEstimate:
    curve_store = DatasetStore(Path(root))
    return propose.labels_still_needed(curve_store, curve_store.version(dataset, number), feature_cache(),
                                       FEATURE_SIZE)
