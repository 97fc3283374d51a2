"""How unsure a head is about each unlabelled image, one function per task, all on plain arrays.

Every function returns one number per image in [0, 1] (0: sure, 1: as unsure as it gets), so the selection in
`select.py` mixes it with diversity the same way whatever the task: a task entry only has to say which function
turns its head's outputs into this score.
"""
from __future__ import annotations

import numpy as np
from sklearn.linear_model import Ridge, RidgeCV

RIDGE_HEADS = 10
RIDGE_ALPHAS = (0.001, 0.01, 0.1, 1.0, 10.0)


def margin(probabilities: np.ndarray) -> np.ndarray:
    """Single-label classification: 1 minus the gap between the two likeliest classes (N, C) -> (N,).

    The margin, not the entropy: with many classes, entropy rates an image spread thinly over unlikely classes as
    unsure, while the margin asks the useful question, which of two close classes this is."""
    p = _two_dimensional(probabilities)
    if p.shape[1] < 2:
        return np.zeros(len(p))
    top = -np.sort(-p, axis=1)
    return np.clip(1.0 - (top[:, 0] - top[:, 1]), 0.0, 1.0)


def multi_label(probabilities: np.ndarray) -> np.ndarray:
    """Multi-label: how close each label's sigmoid is to 0.5, averaged over the labels (N, L) -> (N,).

    The mean, not the max: an image unsure about several labels teaches more than one unsure about one, and the
    max would rank every image with a single borderline label alike."""
    p = _two_dimensional(probabilities)
    if p.shape[1] == 0:
        return np.zeros(len(p))
    return np.clip(1.0 - 2.0 * np.abs(p - 0.5), 0.0, 1.0).mean(axis=1)


def spread(predictions: np.ndarray, scale: float | None = None) -> np.ndarray:
    """Regression: how much an ensemble's predictions disagree, (H heads, N images) -> (N,).

    The standard deviation over heads, divided by `scale` (the spread of the labelled values: a disagreement of
    2 means a lot for values near 1 and nothing for values near 1000) and squashed into [0, 1)."""
    values = np.asarray(predictions, dtype=np.float64)
    if values.ndim != 2 or values.shape[0] < 2:
        return np.zeros(values.shape[-1] if values.ndim else 0)
    std = values.std(axis=0)
    scale = scale if scale and scale > 0 else float(np.median(std)) or 1.0
    return std / (std + scale)


def ridge_ensemble(labelled: np.ndarray, values: np.ndarray, pool: np.ndarray, heads: int = RIDGE_HEADS,
                   seed: int = 0) -> np.ndarray:
    """(heads, N) predictions for the pool from ridge heads fitted on bootstrap resamples of the labelled images:
    where the labelled images leave a value open, the heads disagree (the pool's regression uncertainty)."""
    rng = np.random.default_rng(seed)
    x, y = np.asarray(labelled, dtype=np.float64), np.asarray(values, dtype=np.float64)
    alpha = ridge_alpha(x, y)
    out = np.empty((heads, len(pool)))
    for h in range(heads):
        rows = rng.integers(0, len(y), len(y))
        out[h] = Ridge(alpha=alpha).fit(x[rows], y[rows]).predict(pool)
    return out


def ridge_alpha(x: np.ndarray, y: np.ndarray) -> float:
    """The ridge penalty with the smallest leave-one-out error on the labelled images (sklearn's closed form, one
    fit), chosen once for every head. A fixed 1.0 shrinks guesses on unit-length features towards the mean: on 12
    shape images with values 1/5/9 (one split) its error was 1.78 against 1.24 at 0.01."""
    if len(y) < 3:
        return 1.0
    return float(RidgeCV(alphas=RIDGE_ALPHAS).fit(x, y).alpha_)


def regression(labelled: np.ndarray, values: np.ndarray, pool: np.ndarray, seed: int = 0) -> np.ndarray:
    """Regression uncertainty from features and labelled values alone: the spread of bootstrap ridge heads,
    relative to the spread of the values themselves."""
    if len(values) < 2 or len(pool) == 0:
        return np.ones(len(pool))
    return spread(ridge_ensemble(labelled, values, pool, seed=seed), float(np.std(values)))


def _two_dimensional(probabilities: np.ndarray) -> np.ndarray:
    p = np.asarray(probabilities, dtype=np.float64)
    return p.reshape(len(p), -1) if p.ndim != 2 else p
