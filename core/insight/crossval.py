"""k-fold cross-validation of a configuration: mean and spread across folds, next to the single split.

With feature extraction the backbone is frozen, so each fold is one linear-head fit on the cached features
(seconds). Fine-tuning would be k full trainings; `estimate_seconds` says how long that would take instead.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.metrics import accuracy_score, f1_score
from sklearn.model_selection import StratifiedKFold
from threadpoolctl import threadpool_limits

from core.i18n import _, duration, percent
from core.insight.audit import labelled_features
from core.insight.embeddings import FeatureSpec
from core.models.features import FeatureCache


@dataclass(frozen=True)
class CrossValidation:
    folds: int
    accuracy: list[float]
    macro_f1: list[float]
    seconds: float

    def summary(self) -> dict[str, Any]:
        return {"folds": self.folds, "accuracy_mean": float(np.mean(self.accuracy)),
                "accuracy_std": float(np.std(self.accuracy)), "macro_f1_mean": float(np.mean(self.macro_f1)),
                "macro_f1_std": float(np.std(self.macro_f1)), "accuracy_per_fold": self.accuracy,
                "macro_f1_per_fold": self.macro_f1, "seconds": round(self.seconds, 2)}

    def sentence(self) -> str:
        s = self.summary()
        return _("Across {folds} folds the accuracy is {mean} ± {spread} (lowest {lowest}, highest {highest}).").format(
            folds=self.folds, mean=percent(s["accuracy_mean"]), spread=percent(s["accuracy_std"]),
            lowest=percent(min(self.accuracy)), highest=percent(max(self.accuracy)))


def cross_validate_features(features: np.ndarray, targets: np.ndarray, folds: int, seed: int) -> CrossValidation:
    from core.insight.audit import out_of_fold  # the same linear head and folds as the audit

    started = time.perf_counter()
    cv = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    with threadpool_limits(limits=1):  # as in the audit: small matrices, busy server
        predicted = out_of_fold(features, targets, folds, seed).argmax(1)
    accuracy, macro = [], []
    for _fit, held_out in cv.split(features, targets):
        truth, guess = targets[held_out], predicted[held_out]
        accuracy.append(float(accuracy_score(truth, guess)))
        macro.append(float(f1_score(truth, guess, average="macro", labels=np.unique(targets), zero_division=0)))
    return CrossValidation(folds, accuracy, macro, time.perf_counter() - started)


def cross_validate(data: Path, spec: FeatureSpec = FeatureSpec(), folds: int = 5, seed: int = 0,
                   work_dir: Path | None = None, cache: FeatureCache | None = None) -> CrossValidation:
    """Feature extraction only: k linear heads on the frozen backbone's cached features."""
    started = time.perf_counter()
    report, records, features = labelled_features(data, spec, folds, work_dir, cache, "cross-validated")
    targets = np.array([report.labels.index(r.label) for r in records])
    result = cross_validate_features(features, targets, folds, seed)
    return CrossValidation(folds, result.accuracy, result.macro_f1, time.perf_counter() - started)


def estimate_seconds(single_run_seconds: float, folds: int) -> float:
    """Fine-tuning: k trainings, each on (k-1)/k of the data (the single run trained on ~80% of it)."""
    return single_run_seconds * folds * ((folds - 1) / folds) / 0.8


def fine_tuning_note(folds: int, single_run_seconds: float | None) -> str:
    if single_run_seconds:
        return _("With fine-tuning, cross-validation means {folds} full trainings: about {time} here. Choose "
                 "feature extraction for a cross-validation in seconds.").format(
            folds=folds, time=duration(estimate_seconds(single_run_seconds, folds)))
    return _("With fine-tuning, cross-validation means {folds} full trainings, each as long as one run. Choose "
             "feature extraction for a cross-validation in seconds.").format(folds=folds)
