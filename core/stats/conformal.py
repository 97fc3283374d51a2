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
from typing import Callable

import numpy as np
from sklearn.model_selection import KFold

DEFAULT_COVERAGE = 0.9


def conformal_quantile(scores: np.ndarray, coverage: float = DEFAULT_COVERAGE) -> float:
    """The finite-sample corrected quantile: the ceil((n + 1) * coverage)-th smallest score; infinite when there
    are too few held-out images to promise `coverage` at all (then every answer is as wide as it gets)."""
    scores = np.sort(np.asarray(scores, dtype=float))
    rank = math.ceil((len(scores) + 1) * coverage)
    return float("inf") if rank > len(scores) or not len(scores) else float(scores[rank - 1])


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
