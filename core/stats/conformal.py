"""Split conformal prediction: answers that hold the truth at a chosen rate on new data from the same source.

From held-out (validation) images the model did not train on: for values, the quantile of the absolute errors
gives an interval "6.2, between 5.1 and 7.4" that holds the true value for 90% of new images (Vovk et al.;
Lei et al. 2018); for classes, the quantile of 1 - p(true class) gives a prediction set "rose or tulip" that holds
the true class for 90% of new images (LAC, Sadinle et al. 2019). The guarantee is marginal (over images, not for
each one) and assumes new images come like the validation ones. `cross_fitted_coverage` measures it honestly: each
held-out part is judged with a quantile fitted on the others.

>>> round(conformal_quantile(np.arange(1, 11) / 10, 0.9), 2)
1.0
>>> interval(5.0, 0.5)
(4.5, 5.5)
"""
from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np
from sklearn.model_selection import KFold

from core.i18n import _, number, percent

DEFAULT_COVERAGE = 0.9


def conformal_quantile(scores: np.ndarray, coverage: float = DEFAULT_COVERAGE) -> float:
    """The finite-sample corrected quantile: the ceil((n + 1) * coverage)-th smallest score; infinite when there
    are too few held-out images to promise `coverage` at all (then every answer is as wide as it gets)."""
    scores = np.sort(np.asarray(scores, dtype=float))
    rank = math.ceil((len(scores) + 1) * coverage)
    return float("inf") if rank > len(scores) or not len(scores) else float(scores[rank - 1])


MAX_KEPT_SCORES = 2000  # held-out scores a run keeps, so any coverage can be asked for when predicting


def kept_scores(scores: np.ndarray) -> list[float]:
    """The held-out scores, sorted (a seeded even thinning past MAX_KEPT_SCORES keeps their distribution)."""
    ordered = np.sort(np.asarray(scores, dtype=float))
    if len(ordered) > MAX_KEPT_SCORES:
        ordered = ordered[np.linspace(0, len(ordered) - 1, MAX_KEPT_SCORES).round().astype(int)]
    return [round(float(v), 6) for v in ordered]


def stored_quantile(stored: dict, prefix: str, coverage: float | None) -> tuple[float | None, float | None]:
    """(quantile, coverage) from a run's calibration: the stored one, or one for `coverage` from the stored scores.
    The quantile is None when too few held-out images can promise that coverage."""
    key = f"{prefix}_" if prefix else ""
    if coverage is None or not stored.get(f"{key}scores"):
        found = stored.get(f"{key}quantile" if prefix else "half_width")
        return (None if found is None else float(found)), stored.get(f"{key}coverage")
    if not 0.0 < coverage < 1.0:
        raise ValueError(f"the coverage must be between 0 and 1 (for example 0.9), not {coverage}")
    found = conformal_quantile(np.asarray(stored[f"{key}scores"], dtype=float), coverage)
    return (found if np.isfinite(found) else None), coverage


def interval(value: float, width: float) -> tuple[float, float]:
    return value - width, value + width


def residual_scores(predicted: np.ndarray, truth: np.ndarray) -> np.ndarray:
    return np.abs(np.asarray(truth, dtype=float) - np.asarray(predicted, dtype=float))


def class_scores(probabilities: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """1 - the probability given to the true class: small when the model was right and sure."""
    return 1.0 - probabilities[np.arange(len(truth)), truth]


def prediction_sets(probabilities: np.ndarray, quantile: float) -> list[list[int]]:
    """For each image, the classes whose probability is at least 1 - quantile, most probable first (never empty:
    the most probable class is always in it)."""
    sets = []
    for row in probabilities:
        order = np.argsort(-row, kind="stable")
        chosen = [int(k) for k in order if row[k] >= 1.0 - quantile]
        sets.append(chosen or [int(order[0])])
    return sets


def cross_fitted_coverage(scores: np.ndarray, coverage: float, covered: Callable[[np.ndarray, float], np.ndarray],
                          folds: int = 5, seed: int = 0) -> float | None:
    """The share of held-out images whose answer held the truth, each part judged with a quantile fitted on the
    other parts (`covered(indices, quantile)` says which of those images were covered). None when too few."""
    n = len(scores)
    if n < 2 * folds:
        folds = n // 4
    if folds < 2:
        return None
    hits = np.zeros(n, dtype=bool)
    for fit, held_out in KFold(folds, shuffle=True, random_state=seed).split(scores):
        hits[held_out] = covered(held_out, conformal_quantile(scores[fit], coverage))
    return float(hits.mean())


def in_words(conformal: dict[str, Any]) -> str | None:
    """The conformal promise in plain words, beside how often it held on validation images it was not fitted on."""
    promised, measured = conformal.get("coverage"), conformal.get("measured_coverage")
    if conformal.get("half_width") is not None:
        said = _("Each predicted number comes with a range (± {width}) meant to hold the true value {rate} of the "
                 "time.").format(width=f"{conformal['half_width']:.3g}", rate=percent(promised))
    elif conformal.get("mean_set_size") is not None:
        said = _("Predict also gives a short list of classes meant to hold the right one {rate} of the time; on "
                 "average it names {size} class(es).").format(rate=percent(promised),
                                                             size=number(conformal["mean_set_size"], 1))
    elif promised:
        return _("Too few validation images to promise a range that holds {rate} of the time.").format(
            rate=percent(promised))
    else:
        return None
    if not measured:
        return said
    return _("{promise} On validation images it was not fitted on, it held {rate} of the time.").format(
        promise=said, rate=percent(measured))
