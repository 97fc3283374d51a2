"""k-fold cross-validation of a configuration: mean and spread across folds, next to the single split.

With feature extraction the backbone is frozen, so each fold is one head fit on the cached features (seconds), for
every task: one label, tags or a number, each scored with its own measures. Fine-tuning would be k full
trainings; `estimate_seconds` says how long that would take instead.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
from sklearn.metrics import accuracy_score, f1_score, mean_absolute_error, r2_score
from threadpoolctl import threadpool_limits

from core.i18n import N_, _, duration, number, percent, sentences
from core.insight.audit import labelled_features
from core.insight.audit_tasks import AUDITS
from core.insight.embeddings import FeatureSpec
from core.models.features import FeatureCache

Scorer = Callable[[np.ndarray, np.ndarray], float]  # (truth, out-of-fold predictions of one fold) -> a measure


def _tags_of(probabilities: np.ndarray) -> np.ndarray:
    return (probabilities >= 0.5).astype(int)  # the folds' own heads: no held-out images left to tune thresholds


# Per task, the measures each fold reports (the first is the headline): key, words, whether a share, the scorer.
FOLD_MEASURES: dict[str, tuple[tuple[str, str, bool, Scorer], ...]] = {
    "single": (("accuracy", N_("the accuracy"), True, lambda t, p: accuracy_score(t, p.argmax(1))),
               ("macro_f1", N_("the class-balanced score (macro F1)"), True,
                lambda t, p: f1_score(t, p.argmax(1), average="macro", labels=np.arange(p.shape[1]),
                                      zero_division=0))),
    "multi": (("micro_f1", N_("F1 over all tags"), True,
               lambda t, p: f1_score(t, _tags_of(p), average="micro", zero_division=0)),
              ("exact", N_("the share of images with exactly the right tags"), True,
               lambda t, p: float(np.mean(np.all(_tags_of(p) == t, axis=1))))),
    "regression": (("mae", N_("the typical error (MAE)"), False, mean_absolute_error),
                   ("r2", N_("R²"), False, r2_score)),
}


@dataclass(frozen=True)
class CrossValidation:
    folds: int
    scores: dict[str, list[float]]  # FOLD_MEASURES' keys of the task -> one value per fold
    seconds: float
    task: str = "single"

    @property
    def accuracy(self) -> list[float]:
        return self.scores.get("accuracy", [])

    def summary(self) -> dict[str, Any]:
        found: dict[str, Any] = {"folds": self.folds, "task": self.task}
        for key, values in self.scores.items():
            found |= {f"{key}_mean": float(np.mean(values)), f"{key}_std": float(np.std(values)),
                      f"{key}_per_fold": values}
        return found | {"seconds": round(self.seconds, 2)}

    def sentence(self) -> str:
        """One sentence per measure, the headline first."""
        said = []
        for key, words, share, _scorer in FOLD_MEASURES[self.task]:
            values = self.scores[key]
            shown = (lambda v: percent(v)) if share else (lambda v: number(v, 2))
            said.append(_("Across {folds} folds {measure} is {mean} ± {spread} (lowest {lowest}, highest "
                          "{highest}).").format(folds=self.folds, measure=_(words), mean=shown(np.mean(values)),
                                                spread=shown(np.std(values)), lowest=shown(min(values)),
                                                highest=shown(max(values))))
        return sentences(said)


def cross_validate_features(features: np.ndarray, targets: np.ndarray, folds: int, seed: int,
                            task: str = "single") -> CrossValidation:
    """The audit's out-of-fold predictions (the same heads and folds, core.insight.audit_tasks), scored fold by
    fold with the task's own measures."""
    started = time.perf_counter()
    steps = AUDITS[task]
    with threadpool_limits(limits=1):  # as in the audit: small matrices, busy server
        predicted = steps.out_of_fold(features, targets, folds, seed)
    scores: dict[str, list[float]] = {key: [] for key, *_rest in FOLD_MEASURES[task]}
    for _fit, held_out in steps.splitter(folds, seed).split(features, targets):
        for key, _words, _share, scorer in FOLD_MEASURES[task]:
            scores[key].append(float(scorer(targets[held_out], predicted[held_out])))
    return CrossValidation(folds, scores, time.perf_counter() - started, task)


def cross_validate(data: Path, spec: FeatureSpec = FeatureSpec(), folds: int = 5, seed: int = 0,
                   work_dir: Path | None = None, cache: FeatureCache | None = None) -> CrossValidation:
    """Feature extraction only: k heads on the frozen backbone's cached features, for every task."""
    started = time.perf_counter()
    report, records, features = labelled_features(data, spec, folds, work_dir, cache, "cross-validated")
    targets = AUDITS[report.task].targets(records, report.labels)
    result = cross_validate_features(features, targets, folds, seed, report.task)
    return CrossValidation(folds, result.scores, time.perf_counter() - started, report.task)


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
