"""The two heads a frozen backbone can have, scored on the user's own images: the linear head (logistic regression,
as the audit fits it) and the prototype head (cosine nearest class mean, core.training.prototype).

Every image is predicted by a head that never saw it: k stratified folds, or leave-one-out when a class has fewer
than FEW_PER_CLASS images (then each fold would hold one or two images a class, and every image counts). Accuracy
comes with a Wilson 95% interval over the images, which says plainly how little 5 images a class can tell.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from sklearn.model_selection import LeaveOneOut, StratifiedKFold, cross_val_predict
from threadpoolctl import threadpool_limits

from core.insight.audit import linear_head
from core.stats.intervals import macro_f1, wilson
from core.training import prototype

HEADS = ("linear", "prototype")
FEW_PER_CLASS = 10  # below this many images in some class, leave-one-out instead of k folds
LOO_MAX_IMAGES = 300  # leave-one-out fits the linear head once per image: beyond this, k folds


@dataclass(frozen=True)
class Plan:
    """How the images are held out: 'leave-one-out' or k stratified folds."""
    method: str
    folds: int

    @property
    def words(self) -> str:
        return "leave-one-out" if self.method == "leave-one-out" else f"{self.folds}-fold cross-validation"


@dataclass(frozen=True)
class HeadScore:
    head: str
    method: str
    correct: int
    images: int
    accuracy: float
    accuracy_low: float
    accuracy_high: float
    macro_f1: float
    fit_seconds: float  # scoring this head on every fold

    def to_json(self) -> dict[str, Any]:
        values = asdict(self)
        return {k: round(v, 4) if isinstance(v, float) else v for k, v in values.items()}


def plan(counts: list[int], folds: int) -> Plan:
    """Leave-one-out for few images a class (and not too many in all), else min(folds, smallest class) folds."""
    if min(counts) < FEW_PER_CLASS and sum(counts) <= LOO_MAX_IMAGES:
        return Plan("leave-one-out", sum(counts))
    return Plan("k-fold", max(2, min(folds, min(counts))))


def score_heads(features: np.ndarray, targets: np.ndarray, classes: int, how: Plan, seed: int = 0,
                heads: tuple[str, ...] = HEADS) -> list[HeadScore]:
    """Each head's out-of-fold predictions for every image, scored."""
    scores = []
    for head in heads:
        started = time.perf_counter()
        with threadpool_limits(limits=1):  # small matrices on a shared server: one BLAS thread (see the audit)
            guess = _predictions(head, features, targets, classes, how, seed)
        correct = int((guess == targets).sum())
        low, high = wilson(correct, len(targets))
        scores.append(HeadScore(head, how.words, correct, len(targets), correct / len(targets), low, high,
                                macro_f1(targets, guess, classes), time.perf_counter() - started))
    return scores


def _predictions(head: str, features: np.ndarray, targets: np.ndarray, classes: int, how: Plan,
                 seed: int) -> np.ndarray:
    if head == "prototype" and how.method == "leave-one-out":  # exact in one pass
        return prototype.leave_one_out(torch.from_numpy(features), torch.from_numpy(targets), classes).numpy()
    splits = LeaveOneOut() if how.method == "leave-one-out" else StratifiedKFold(how.folds, shuffle=True,
                                                                                 random_state=seed)
    if head == "linear":
        return cross_val_predict(linear_head(), features, targets, cv=splits)
    guess = np.empty_like(targets)
    x, y = torch.from_numpy(features), torch.from_numpy(targets)
    for train, held in splits.split(features, targets):
        means = prototype.prototypes(x[train], y[train], classes)
        guess[held] = prototype.predict(x[held], means).numpy()
    return guess
