"""The zero-shot panel the Label and Predict pages call: class names, prompt templates, what zero-shot can and
cannot do, 'pre-label the pool' and 'try it before training'. Everything a user typed is data: shown with plain()
or md(), bounded in length, and put into prompts literally (core/models/zero_shot/classifier.py).

Label page:   choice = settings("label", version.classes); suggestions = prelabel_button(choice, store, version, cache)
              -> feed `suggestions` to labelling.confident / most_uncertain_first while ready_for_suggestions is False.
Predict page: choice = settings("predict", classes); run = try_button(choice, workspace) -> the run shows up in
              pick_run's list (it is a finished run) and predicts like a trained one.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import streamlit as st

from core.data.store import DatasetStore, Version
from core.i18n import _
from core.labelling import suggest
from core.labelling import zero_shot as prelabelling
from core.models import backbones
from core.models.entry import WeightsUnavailable
from core.models.features import FeatureCache
from core.models.zero_shot import about, classifier, text_tower
from core.runs import folder, zero_shot
from core.text import md, plain
from ui.common import Workspace, show_error

MAX_NAMES_CHARS = 20_000  # a thousand class names of twenty characters
MAX_TEMPLATE_LINES_CHARS = classifier.MAX_TEMPLATES * (classifier.MAX_TEMPLATE_CHARS + 1)


@dataclass(frozen=True)
class Choice:
    backbone: str
    names: tuple[str, ...]
    templates: tuple[str, ...]


def settings(key: str, classes: list[str] | tuple[str, ...] = ()) -> Choice | None:
    """The backbone, class names and templates; None (with a sentence) when no text tower can be used here."""
    offered = text_tower.backbones_with_text()
    if not offered:
        st.info(_("This server offers no backbone with a text tower, so zero-shot is not available."))
        return None
    backbone = st.selectbox(_("Backbone with a text tower"), offered, key=f"zs_backbone_{key}",
                            format_func=lambda name: plain(backbones.info(name).title))
    st.caption(md(about.can_and_cannot(backbones.info(backbone).title)))
    if not text_tower.available(backbone) and not backbones.downloads_allowed(backbone):
        st.warning(md(text_tower.missing_message(text_tower.repo_for(backbone))))
    names = st.text_area(_("Class names, one per line"), "\n".join(classes), max_chars=MAX_NAMES_CHARS,
                         key=f"zs_names_{key}")
    templates = st.text_area(_("Prompt templates, one per line ({braces} is the class name)").format(braces="{}"),
                             "\n".join(classifier.TEMPLATES), max_chars=MAX_TEMPLATE_LINES_CHARS,
                             key=f"zs_templates_{key}")
    return Choice(backbone, _lines(names), _lines(templates))


@st.cache_data(max_entries=8, show_spinner=False)  # the spinner is prelabel_button's, in the page's language
def _prelabel(root: str, dataset: str, number: int, feature_root: str, choice: Choice) -> list[suggest.Suggestion]:
    store = DatasetStore(Path(root))
    return prelabelling.prelabel(store, store.version(dataset, number), FeatureCache(Path(feature_root)),
                                 choice.backbone, choice.names, choice.templates)


def prelabel_button(choice: Choice, store: DatasetStore, version: Version,
                    cache_root: Path) -> list[suggest.Suggestion]:
    """Zero-shot suggestions for the pool once the button was pressed for this version (kept while it stays)."""
    wanted = (version.dataset, version.number, choice)
    if st.button(_("Pre-label the pool from the class names"), key="zs_prelabel", disabled=not version.pool()):
        st.session_state["zs_prelabelled"] = wanted
    if st.session_state.get("zs_prelabelled") != wanted:
        return []
    try:
        with st.spinner(_("Pre-labelling the pool from the class names...")):
            return _prelabel(str(store.root), version.dataset, version.number, str(cache_root), choice)
    except (WeightsUnavailable, classifier.PromptError) as error:
        show_error(str(error))
        return []


def try_button(choice: Choice, workspace: Workspace) -> folder.Run | None:
    """Make (or find) the zero-shot run for these names; it then predicts like any finished run."""
    if not st.button(_("Try it before training"), key="zs_try"):
        return None
    try:
        with st.spinner(_("Making a classifier from the class names...")):
            run = zero_shot.create(workspace.runs, choice.backbone, choice.names, choice.templates)
    except (WeightsUnavailable, classifier.PromptError) as error:
        show_error(str(error))
        return None
    st.success(_("A zero-shot model is ready: choose it under Trained model. {about}").format(about=zero_shot.MESSAGE))
    return run


def _lines(text: str) -> tuple[str, ...]:
    return tuple(dict.fromkeys(line.strip() for line in text.splitlines() if line.strip()))
