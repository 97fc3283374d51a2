"""What every task's part of the Monitor shares: the drift score, and the panel a task's summary becomes.

Drift uses the population stability index (PSI) between a reference sample (the run's validation answers) and
the served answers: PSI = sum over bins of (served% - reference%) * ln(served% / reference%), with bins cut at
the reference's quantiles. Usual reading: below 0.1 stable, 0.1-0.25 a moderate shift, above 0.25 a large one.
Chance alone gives a PSI of about (bins - 1) * (1/reference + 1/served) on unchanged images: 0.3 for ten bins
over 40 validation images, a "large shift" from nothing. So the score uses fewer bins for fewer images (one
per BIN_IMAGES of the smaller sample, 2 to 10), which keeps that chance level near 0.05; and a shift is called
one only when chance alone would give such a score less than 5% of the time for samples of these sizes (a
permutation test, seeded: the same log gives the same verdict).

A task's watch (core.serving.monitor_classes, _tags, _values) reads its reference from the run's evaluation,
summarises the logged rows, and turns the summary into `Panel`s: headings, metrics, sentences and figures that
the page shows as they come, so the page never asks which task it shows.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import plotly.graph_objects as go

from core.i18n import N_, _, percent
from core.tasks import Evaluation

MIN_FOR_DRIFT = 30  # fewer served images than this: a PSI says more about chance than about drift
PSI_BINS = 10
BIN_IMAGES = 30
CHANCE_ROUNDS, CHANCE_SAMPLE = 200, 5000  # permutations, and the values each side keeps for them
MODERATE_PSI, LARGE_PSI = 0.1, 0.25


@dataclass(frozen=True)
class Drift:
    psi: float | None
    verdict: str
    served: int
    reference: int
    shift: bool = False  # a moderate or large shift, beyond chance


def population_stability_index(reference: list[float], served: list[float], bins: int = PSI_BINS) -> float:
    """PSI of served against reference, bins at the reference's quantiles (empty bins smoothed, not infinite)."""
    ref, new = np.asarray(reference, dtype=float), np.asarray(served, dtype=float)
    if ref.size == 0 or new.size == 0:
        raise ValueError("both samples need at least one value")
    edges = np.unique(np.quantile(ref, np.linspace(0, 1, bins + 1)[1:-1]))
    ref_share = np.bincount(np.searchsorted(edges, ref, side="right"), minlength=edges.size + 1) / ref.size
    new_share = np.bincount(np.searchsorted(edges, new, side="right"), minlength=edges.size + 1) / new.size
    ref_share, new_share = np.clip(ref_share, 1e-4, None), np.clip(new_share, 1e-4, None)
    return float(np.sum((new_share - ref_share) * np.log(new_share / ref_share)))


# What is compared (`what` of drift() and too_few()), each with its own sentences: a noun slotted into one
# sentence would not read right in every language.
NOTHING_TO_COMPARE = {
    "confidence": N_("No validation confidence to compare with for this model."),
    "distance to the training images": N_("No validation distance to the training images to compare with for this "
                                          "model."),
    "values": N_("No validation values to compare with for this model."),
}
VERDICTS = {
    "confidence": {
        "stable": N_("Stable: the confidence of the answers looks like on the validation images."),
        "within chance": N_("Stable as far as can be told: in confidence, the answers differ from the validation "
                            "images no more than chance does with this few images."),
        "moderate": N_("A moderate shift in confidence: the images sent differ somewhat from the training images. "
                       "Keep watching."),
        "large": N_("A large shift in confidence: the images sent are not like the training images. Check them, "
                    "and consider adding such images to the data and training again."),
    },
    "distance to the training images": {
        "stable": N_("Stable: the distance to the training images of the answers looks like on the validation "
                     "images."),
        "within chance": N_("Stable as far as can be told: in distance to the training images, the answers differ "
                            "from the validation images no more than chance does with this few images."),
        "moderate": N_("A moderate shift in distance to the training images: the images sent differ somewhat from "
                       "the training images. Keep watching."),
        "large": N_("A large shift in distance to the training images: the images sent are not like the training "
                    "images. Check them, and consider adding such images to the data and training again."),
    },
}


def too_few(reference: list[float], served: list[float], what: str) -> Drift | None:
    """The verdict when there is too little to compare, else None."""
    if len(reference) < 5:
        return Drift(None, _(NOTHING_TO_COMPARE[what]), len(served), len(reference))
    if len(served) < MIN_FOR_DRIFT:
        return Drift(None, too_few_answers(len(served)), len(served), len(reference))
    return None


def too_few_answers(count: int) -> str:
    return _("Too few answers yet to judge ({count}; at least {minimum} needed).").format(count=count,
                                                                                        minimum=MIN_FOR_DRIFT)


def drift_score(reference: list[float], served: list[float]) -> float:
    """The PSI with as many bins as the smaller sample can fill (see the module's note on chance)."""
    bins = max(2, min(PSI_BINS, min(len(reference), len(served)) // BIN_IMAGES))
    return population_stability_index(reference, served, bins)


def _thinned(values: list[float]) -> np.ndarray:
    ordered = np.sort(np.asarray(values, dtype=float))
    return ordered if ordered.size <= CHANCE_SAMPLE else ordered[np.linspace(0, ordered.size - 1, CHANCE_SAMPLE).astype(int)]


def chance_level(reference: list[float], served: list[float], seed: int = 0) -> float:
    """The score that chance exceeds 5% of the time between samples of these sizes from one source: both
    samples pooled, dealt out again at random CHANCE_ROUNDS times."""
    ref, new = _thinned(reference), _thinned(served)
    pooled, rng = np.concatenate([ref, new]), np.random.default_rng(seed)
    scores = []
    for _round in range(CHANCE_ROUNDS):
        order = rng.permutation(pooled.size)
        scores.append(drift_score(pooled[order[:ref.size]], pooled[order[ref.size:]]))
    return float(np.quantile(scores, 0.95))


def drift_level(reference: list[float], served: list[float]) -> tuple[float, str]:
    """(score, "stable" | "within chance" | "moderate" | "large")."""
    psi = drift_score(reference, served)
    if psi < MODERATE_PSI:
        return psi, "stable"
    if psi <= chance_level(reference, served):
        return psi, "within chance"
    return psi, "moderate" if psi < LARGE_PSI else "large"


def drift(reference: list[float], served: list[float], what: str) -> Drift:
    """PSI with a verdict in words; `what` names the quantity: a key of VERDICTS."""
    lacking = too_few(reference, served, what)
    if lacking is not None:
        return lacking
    psi, level = drift_level(reference, served)
    verdict = _(VERDICTS[what][level])
    return Drift(psi, verdict, len(served), len(reference), level in ("moderate", "large"))


def shifted(found: Drift) -> bool:
    return found.shift


@dataclass(frozen=True)
class Metric:
    label: str
    value: str
    help: str = ""


@dataclass(frozen=True)
class Note:
    """A sentence for the page: `title` is the page's own words (bold), `text` may quote tag names (escaped)."""
    title: str
    text: str
    warn: bool = False


@dataclass(frozen=True)
class Panel:
    """One section of the Monitor page: a heading, a row of metrics, sentences, figures, an optional table."""
    key: str  # unique among the page's panels (the widgets' keys)
    heading: str
    metrics: tuple[Metric, ...] = ()
    notes: tuple[Note, ...] = ()
    figures: tuple[go.Figure, ...] = ()
    table: tuple[dict[str, Any], ...] = ()
    table_title: str = ""


@dataclass(frozen=True)
class Reference:
    """What served answers are compared with: the task's own part (`answers`) and the validation images'
    distances to the training images (any task)."""
    task: str = "classes"  # the watch's name (Task.monitor)
    answers: Any = None
    ood_scores: list[float] = field(default_factory=list)


class Watch(ABC):
    """What the Monitor summarises of one kind of answer (named by Task.monitor)."""
    name: ClassVar[str]
    answer_key: ClassVar[str | None] = None  # the key of the logged `answer` JSON that marks this kind of answer

    @abstractmethod
    def reference(self, evaluation: Evaluation | None, labels: list[str]) -> Any:
        """The task's reference from the run's evaluation (None when it is missing or damaged)."""

    @abstractmethod
    def summarize(self, rows: list[dict[str, Any]], reference: Any) -> Any:
        """The task's summary of the logged rows (a frozen dataclass: equal rows give an equal summary)."""

    @abstractmethod
    def panels(self, summary: Any, reference: Any) -> list[Panel]:
        """The summary as the page shows it."""


def share(value: float | None) -> str:
    return none_yet() if value is None else percent(value)


def none_yet() -> str:
    """A metric's value while nothing has been measured."""
    return _("none yet")


def answer_of(row: dict[str, Any]) -> dict[str, Any]:
    """The logged answer beyond top_k (tags, a value and its interval); {} for rows logged before it existed."""
    answer = row.get("answer")
    return answer if isinstance(answer, dict) else {}
