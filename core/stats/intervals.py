"""95% intervals for small validation sets: Wilson for proportions, a seeded bootstrap for macro-F1."""
from __future__ import annotations

import math
from typing import Callable

import numpy as np
from scipy import stats

from core.i18n import _, ngettext, percent, quoted

Z95 = 1.959963984540054
WIDE = 0.20  # an interval wider than 20 points gets a plain sentence
BOOTSTRAP_SAMPLES = 1000


def wilson(successes: int, total: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval; unlike the normal approximation it stays inside [0, 1] and works at 0% and 100%."""
    if total <= 0:
        return 0.0, 1.0
    p = successes / total
    centre = (p + z * z / (2 * total)) / (1 + z * z / total)
    half = z * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / (1 + z * z / total)
    return max(0.0, centre - half), min(1.0, centre + half)


def macro_f1(y_true: np.ndarray, y_pred: np.ndarray, classes: int) -> float:
    """Macro-F1 over every class (absent ones count 0), in numpy: the bootstrap calls it a thousand times."""
    true_positive = np.bincount(y_true[y_true == y_pred], minlength=classes)
    predicted, actual = np.bincount(y_pred, minlength=classes), np.bincount(y_true, minlength=classes)
    denominator = predicted + actual
    f1 = np.divide(2 * true_positive, denominator, out=np.zeros(classes), where=denominator > 0)
    return float(f1.mean())


def bootstrap_macro_f1(y_true: list[int], y_pred: list[int], classes: int, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap over images (true and predicted label resampled together)."""
    truth, guess = np.asarray(y_true), np.asarray(y_pred)
    if len(truth) < 2 or len(set(zip(y_true, y_pred))) < 2:
        value = macro_f1(truth, guess, classes)
        return value, value
    result = stats.bootstrap((truth, guess), lambda t, g: macro_f1(t, g, classes), paired=True, vectorized=False,
                             n_resamples=BOOTSTRAP_SAMPLES, method="percentile", random_state=seed)
    return float(result.confidence_interval.low), float(result.confidence_interval.high)


def is_wide(interval: tuple[float, float]) -> bool:
    return interval[1] - interval[0] > WIDE


def wide_sentence(what: str, count: int, noun: str, interval: tuple[float, float]) -> str | None:
    """E.g. "With 10 images of 'rose', its recall could be anywhere from 55% to 98%." or None when narrow."""
    if not is_wide(interval):
        return None
    return f"With {count} {noun}, {what} could be anywhere from {interval[0]:.0%} to {interval[1]:.0%}."


def wide_notes(count: int, share_words: str, share: list[float] | None, rows: list[dict], tagged: bool) -> list[str]:
    """The same sentences as `wide_sentence`, in the reader's language, rebuilt from a stored evaluation: the
    headline share over `count` validation images (`share_words`, translated here), then each label's recall."""
    notes = []
    if share is not None and is_wide(tuple(share)):
        notes.append(ngettext("With {count} validation image, {what} could be anywhere from {low} to {high}.",
                              "With {count} validation images, {what} could be anywhere from {low} to {high}.",
                              count).format(count=count, what=_(share_words), low=percent(share[0]),
                                            high=percent(share[1])))
    for row in rows:
        interval = row.get("recall_interval")
        if not row.get("support") or interval is None or not is_wide(tuple(interval)):
            continue
        said = ngettext("With {count} image tagged {name}, its recall could be anywhere from {low} to {high}.",
                        "With {count} images tagged {name}, its recall could be anywhere from {low} to {high}.",
                        row["support"]) if tagged else \
            ngettext("With {count} image of {name}, its recall could be anywhere from {low} to {high}.",
                     "With {count} images of {name}, its recall could be anywhere from {low} to {high}.", row["support"])
        notes.append(said.format(count=row["support"], name=quoted(row["label"]), low=percent(interval[0]),
                                 high=percent(interval[1])))
    return notes


def bootstrap(statistic: Callable[[np.ndarray], tuple[float, ...]], count: int, seed: int = 0,
              samples: int = BOOTSTRAP_SAMPLES) -> list[list[float]]:
    """Percentile 95% intervals of each number `statistic(indices)` returns, over images resampled with
    replacement (seeded: the same data gives the same interval)."""
    if count < 2:
        value = statistic(np.arange(count))
        return [[float(v), float(v)] for v in value]
    rng = np.random.default_rng(seed)
    draws = np.array([statistic(rng.integers(0, count, count)) for _ in range(samples)], dtype=float)
    low, high = np.nanpercentile(draws, [2.5, 97.5], axis=0)
    return [[float(a), float(b)] for a, b in zip(np.atleast_1d(low), np.atleast_1d(high))]
