"""The Monitor's part for a number per image (a score): the values given against the model's values for the
validation images (a drift score and a sentence saying which way they moved), the share of answers whose range is
wide or missing, and the typical error on the true values fed back.

Served values are compared with the model's own answers for the validation images, not with their true values:
a model's answers bunch towards the average, so true values would show a shift on unchanged images.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from core.i18n import N_, _, number, percent, sentences
from core.serving import monitor_charts
from core.serving.monitor_base import Drift, Metric, Note, Panel, Watch, answer_of, drift_level, none_yet, share, shifted, too_few
from core.tasks import Evaluation

CENTRE_MOVE = 0.25  # medians further apart than this many interquartile ranges are "higher" or "lower"
SPREAD_RATIO = 1.5  # a middle half this many times wider (or narrower) is "more spread out" (or "bunched")


@dataclass(frozen=True)
class ValueReference:
    values: list[float]  # the model's answers for the validation images
    truth: list[float]  # their true values: what a "wide" range is measured against
    mae: float | None  # the typical error on them


@dataclass(frozen=True)
class ValueSummary:
    values: list[float]
    drift: Drift
    wide: float | None  # share of answers whose range is wider than the middle half of the training values, or missing
    feedback: dict[str, Any]


def _number(text: Any) -> float | None:
    try:
        value = float(text)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def served_value(row: dict[str, Any]) -> float | None:
    return _number(answer_of(row).get("value"))


def _quartiles(values: list[float]) -> tuple[float, float, float]:
    low, median, high = np.percentile(np.asarray(values, dtype=float), [25, 50, 75])
    return float(low), float(median), float(high)


VERDICTS = {
    "stable": N_("Stable: the numbers given look like those for the validation images."),
    "within chance": N_("Stable as far as can be told: the numbers given differ from those for the validation "
                        "images no more than chance does with this few images."),
    "moderate": N_("A moderate shift: the numbers given differ somewhat from those for the validation images. "
                   "Keep watching."),
    "large": N_("A large shift: the numbers given are unlike those for the validation images. Check the images "
                "sent, and consider adding such images to the data and training again."),
}
CENTRES = {
    "higher": N_("Served values are higher than for the validation images (held out from the training data): "
                 "median {median} against {reference}."),
    "lower": N_("Served values are lower than for the validation images (held out from the training data): "
                "median {median} against {reference}."),
    "alike": N_("Served values are centred like for the validation images (held out from the training data): "
                "median {median} against {reference}."),
}
SPREADS = {
    "wider": N_("They are more spread out: their middle half lies between {low} and {high}, against "
                "{reference_low} and {reference_high}."),
    "narrower": N_("They are more bunched together: their middle half lies between {low} and {high}, against "
                   "{reference_low} and {reference_high}."),
}


def value(amount: float) -> str:
    """A served or reference value, three significant digits (values may be tiny or huge: no fixed decimals)."""
    return f"{amount:.3g}"


def which_way(reference: list[float], served: list[float], moved: bool) -> str:
    """Where the served values sit against the reference's, in words with the medians: which way they moved
    only when the drift score says they did (with few images the medians differ by chance)."""
    ref_low, ref_median, ref_high = _quartiles(reference)
    low, median, high = _quartiles(served)
    medians = {"median": value(median), "reference": value(ref_median)}
    if not moved:
        return _("Served values: median {median} against {reference} for the validation images.").format(**medians)
    spread = ref_high - ref_low or float(np.std(reference)) or 1e-9
    centre = ("higher" if median > ref_median else "lower") if abs(median - ref_median) >= CENTRE_MOVE * spread \
        else "alike"
    said = [_(CENTRES[centre]).format(**medians)]
    ratio = (high - low) / spread
    if ratio >= SPREAD_RATIO or ratio <= 1 / SPREAD_RATIO:
        said.append(_(SPREADS["wider" if ratio > 1 else "narrower"]).format(
            low=value(low), high=value(high), reference_low=value(ref_low), reference_high=value(ref_high)))
    return sentences(said)


def value_drift(reference: list[float], served: list[float]) -> Drift:
    lacking = too_few(reference, served, "values")
    if lacking is not None:
        return lacking
    psi, level = drift_level(reference, served)
    moved = level in ("moderate", "large")
    verdict = sentences([_(VERDICTS[level]), which_way(reference, served, moved)])
    return Drift(psi, verdict, len(served), len(reference), moved)


def wide_share(rows: list[dict[str, Any]], truth: list[float]) -> float | None:
    """Share of answers with no range, or one wider than the middle half of the training values (such a range
    says little about the image); with no training values known, only the missing ranges count."""
    if not rows:
        return None
    limit = None
    if len(truth) >= 4:
        low, _median, high = _quartiles(truth)
        limit = high - low
    wide = 0
    for row in rows:
        interval = answer_of(row).get("interval")
        if not isinstance(interval, list) or len(interval) != 2:
            wide += 1
        elif limit is not None and float(interval[1]) - float(interval[0]) > limit:
            wide += 1
    return wide / len(rows)


def value_feedback(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Typical error (MAE) on the images whose true value was reported (the first report counts), and how often
    their range held it."""
    errors, held, ranged = [], 0, 0
    for row in rows:
        truth, value = _number(row.get("feedback_label")), served_value(row)
        if truth is None or value is None:
            continue
        errors.append(abs(truth - value))
        interval = answer_of(row).get("interval")
        if isinstance(interval, list) and len(interval) == 2:
            ranged += 1
            held += float(interval[0]) <= truth <= float(interval[1])
    return {"images": len(errors), "mae": float(np.mean(errors)) if errors else None, "held": held, "ranged": ranged}


class ValueWatch(Watch):
    name = "values"
    answer_key = "value"

    def reference(self, evaluation: Evaluation | None, labels: list[str]) -> ValueReference:
        if evaluation is None:
            return ValueReference([], [], None)
        found = [(_number(p.get("predicted")), _number(p.get("true"))) for p in evaluation.predictions]
        return ValueReference([v for v, _ in found if v is not None], [t for _, t in found if t is not None],
                              evaluation.metric("mae"))

    def summarize(self, rows: list[dict[str, Any]], reference: ValueReference | None) -> ValueSummary:
        reference = reference or ValueReference([], [], None)
        values = [v for v in map(served_value, rows) if v is not None]
        return ValueSummary(values, value_drift(reference.values, values), wide_share(rows, reference.truth),
                            value_feedback(rows))

    def panels(self, summary: ValueSummary, reference: ValueReference | None) -> list[Panel]:
        feedback, found = summary.feedback, summary.drift
        how_far = [_("How far the answer was from the true value on average, over {count} images whose true value "
                     "was reported.").format(count=feedback["images"])]
        if reference is not None and reference.mae is not None:
            how_far.append(_("On the validation images it was {error}.").format(error=value(reference.mae)))
        if feedback["ranged"]:
            how_far.append(_("The range held the true value for {held} of {count}.").format(
                held=feedback["held"], count=feedback["ranged"]))
        metrics = (Metric(_("Typical error on feedback"),
                          none_yet() if feedback["mae"] is None else value(feedback["mae"]), sentences(how_far)),
                   Metric(_("Wide or no range"), share(summary.wide),
                          _("Answers whose range (meant to hold the true value {coverage} of the time) is wider than "
                            "the middle half of the training values, or that came without one.").format(
                              coverage=percent(0.9))),
                   Metric(_("Median value"), none_yet() if not summary.values else value(np.median(summary.values)),
                          _("The middle of the numbers given to the images sent.")))
        title = _("Values") if found.psi is None else \
            _("Values (drift score, PSI: {score})").format(score=number(found.psi, 2))
        figures = ()
        if reference is not None and reference.values and summary.values:
            figures = (monitor_charts.values_histogram(reference.values, summary.values),)
        return [Panel("values", _("Numbers given, against the training data"), metrics,
                      (Note(title, found.verdict, shifted(found)),), figures)]
