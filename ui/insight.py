"""What the Evaluate, Predict and Review pages share for the trust loop: one loaded model per run, cached
heatmaps, cross-validation on the run's own cached features."""
from __future__ import annotations

import traceback
from pathlib import Path

import streamlit as st

from core import paths
from core.data.archive import ArchiveRefused
from core.i18n import _
from core.insight.audit import AuditImpossible
from core.insight.crossval import cross_validate, fine_tuning_note
from core.insight.embeddings import FeatureSpec
from core.insight.explain import explain
from core.models.features import FeatureCache
from core.runs.folder import Run, RunSummary
from core.serving.inference import Predictor
from core.training.config import TrainConfig
from ui.common import show_error


@st.cache_resource(max_entries=4, show_spinner=False)  # predictor_for shows it, in the page's language
def load_predictor(run_path: str, modified: float) -> Predictor:
    """Loaded once per run (and per model file version), then every prediction reuses it."""
    return Predictor(run_path)


def predictor_for(run_path: str | Path) -> Predictor:
    with st.spinner(_("Loading the model...")):  # st.spinner waits a moment: a cached model shows nothing
        return load_predictor(str(run_path), (Path(run_path) / "model.safetensors").stat().st_mtime)


@st.cache_resource
def feature_cache() -> FeatureCache:
    """The on-disk cache training uses: an audit or cross-validation after a run reuses its features."""
    return FeatureCache(paths.home() / "feature-cache")


@st.cache_data(max_entries=256, show_spinner=False)
def heatmap_overlay(run_path: str, digest: str, label: str | None):
    """The Grad-CAM overlay for `label` (None: the head's strongest output, or a number's one) on one validation
    image (by content hash), or None when the run does not hold it (runs made before the run folder kept its
    validation images)."""
    predictor = predictor_for(run_path)
    picture = Run(run_path).val_pixels(digest)
    if picture is None:
        return None
    index = predictor.labels.index(label) if label in predictor.labels else None
    return explain(predictor.model, predictor.preprocessing, picture, index).image


def spec_of(config: dict) -> FeatureSpec:
    return FeatureSpec(config.get("backbone", FeatureSpec.backbone), config.get("weights", "default"),
                       config.get("seed", 0), config.get("image_size"), "auto")


def cross_validation(run: RunSummary, folds: int = 5) -> None:
    """Feature extraction: k head fits on the cached features, now. Fine-tuning: say what it would cost."""
    config = run.config
    if not TrainConfig.from_dict(config).trains_head_only():
        st.info(fine_tuning_note(folds, run.status.get("elapsed_s")))
        return
    key = f"cv_{run.id}"
    if key not in st.session_state:
        try:
            with st.spinner(_("Fitting {folds} heads on the cached features...").format(folds=folds)):
                st.session_state[key] = cross_validate(Path(config["data"]), spec_of(config), folds, config.get(
                    "seed", 0), paths.home(), feature_cache())
        except (AuditImpossible, ArchiveRefused) as error:
            show_error(_("Cross-validation cannot run: {reason}").format(reason=error))
            return
        except Exception:  # never a bare traceback
            show_error(_("Cross-validation did not work on this data."), traceback.format_exc())
            return
    result = st.session_state[key]
    st.markdown(_("{sentence} Each fold trains the same new last layer on what the unchanged pretrained network "
                  "sees in your images, on all of them.").format(sentence=result.sentence()))
