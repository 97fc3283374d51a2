"""Several labels per image (tags): a sigmoid per label, a loss weighted for rare labels, a threshold per label
chosen on held-out answers, and per-label precision/recall/F1, micro and macro F1, mAP and exact-set accuracy, each
with a 95% interval."""
from __future__ import annotations

from typing import Any

import numpy as np
import torch
from sklearn.metrics import average_precision_score
from sklearn.model_selection import KFold
from torch import nn

from core.data.report import ImageRecord
from core.i18n import N_, _
from core.stats import intervals
from core.tasks.base import Evaluation, Measure, Task

MAX_POSITIVE_WEIGHT = 20.0  # a label on 1 image in 200 would otherwise dominate the loss
UNSURE_BAND = 0.1  # a label whose probability is this close to its threshold makes the whole answer "not sure"
CANDIDATE_THRESHOLDS = np.round(np.arange(0.05, 0.96, 0.05), 2)


class MultiLabel(Task):
    name = "multi"
    title = N_("several labels per image (tags)")
    score_name = "exact-set accuracy"
    measures = (Measure("micro_f1", N_("Tags found (F1)"), N_("F1 over every tag of every image: the balance between "
                        "tags given wrongly and tags missed.")),
                Measure("macro_f1", N_("Tag-balanced score"), N_("Macro F1: the average over tags of each tag's F1. Low "
                        "when any one tag does badly, even a rare one.")),
                Measure("map", N_("Ranking quality (mAP)"), N_("Mean average precision: how well each tag's images rank "
                        "above the others, whatever the threshold.")),
                Measure("exact_match", N_("Exactly right"), N_("Share of images given exactly their tags, none missing "
                        "and none extra.")))
    label_columns = (Measure("precision", N_("precision"), N_("When the model gives this tag, how often it is right.")),
                     Measure("recall", N_("recall"), N_("Of the images with this tag, how many get it.")),
                     Measure("f1", N_("F1"), N_("The balance of the two.")),
                     Measure("ap", N_("average precision"), N_("How well this tag's images rank above the others.")),
                     Measure("support", N_("images"), N_("Validation images with this tag."), percent=False))
    figures = ("recall_intervals", "tag_errors")
    mistakes_title = N_("Images whose tags were not exactly right")
    per_label_heading = N_("Per tag")
    python_example = 'print(result["labels"], result["unsure"])'
    monitor = "tags"
    truth = "tags"

    def interval_notes(self, evaluation: Evaluation) -> list[str]:
        return intervals.wide_notes(evaluation.num_images, N_("the share of images with exactly the right labels"),
                                    evaluation.intervals.get("exact_match"), evaluation.per_label, tagged=True)

    def verdict(self, answer: dict[str, Any], guess: bool = False) -> str:
        given = answer.get("labels") or []
        return _("tags: {tags}").format(tags=", ".join(given)) if given else _("no tag applies")

    def describe(self, prediction: dict[str, Any]) -> str:
        true, given = prediction.get("true") or [], prediction.get("predicted") or []
        return _("true: {true} · given: {given}").format(true=", ".join(true) or _("no tag"),
                                                          given=", ".join(given) or _("no tag"))

    def explained_label(self, prediction: dict[str, Any]) -> str | None:
        given = prediction.get("predicted") or []
        return given[0] if given else None

    def outputs(self, labels: list[str]) -> int:
        return len(labels)

    def targets(self, records: list[ImageRecord], labels: list[str]) -> torch.Tensor:
        index = {label: i for i, label in enumerate(labels)}
        multi_hot = torch.zeros(len(records), len(labels))
        for row, record in enumerate(records):
            for label in record.labels:
                multi_hot[row, index[label]] = 1.0
        return multi_hot

    def criterion(self, train_targets: torch.Tensor) -> nn.Module:
        positives = train_targets.sum(0)
        weight = ((len(train_targets) - positives) / positives.clamp_min(1.0)).clamp(1.0, MAX_POSITIVE_WEIGHT)
        return nn.BCEWithLogitsLoss(pos_weight=weight)

    def batch_score(self, logits: torch.Tensor, targets: torch.Tensor, criterion: nn.Module) -> float:
        return float(((logits > 0) == (targets > 0.5)).all(1).sum())

    def answers(self, logits: torch.Tensor) -> torch.Tensor:
        return logits.float().sigmoid()

    def evaluate(self, labels: list[str], records: list[ImageRecord], answers: torch.Tensor) -> Evaluation:
        truth = self.targets(records, labels).numpy().astype(bool)
        if not len(truth):
            return Evaluation(self.name, labels, 0, dict.fromkeys(("micro_f1", "macro_f1", "map", "exact_match")))
        scores = answers.float().numpy()
        # Honest numbers: each image is judged with thresholds chosen without it (cross-fitted).
        predicted = scores >= cross_fitted_thresholds(scores, truth)
        return _evaluation(self.name, labels, records, truth, scores, predicted)

    def calibrate(self, answers: np.ndarray, targets: np.ndarray) -> dict[str, Any]:
        thresholds = best_thresholds(answers, targets.astype(bool)) if len(targets) else np.full(answers.shape[1], 0.5)
        chosen = [round(float(t), 3) for t in thresholds]
        return {"predict": {"thresholds": chosen}, "report": {"thresholds": chosen}}

    def answer(self, answers: torch.Tensor, labels: list[str], trust: dict[str, Any], top_k: int,
               coverage: float | None = None) -> list[dict[str, Any]]:
        thresholds = np.array(trust.get("thresholds") or [0.5] * len(labels), dtype=float)
        out = []
        for row in answers.float().numpy():
            ranked = np.argsort(-row, kind="stable")
            out.append({"predictions": [{"label": labels[i], "probability": round(float(row[i]), 6)} for i in ranked],
                        "labels": [labels[i] for i in ranked if row[i] >= thresholds[i]],
                        "unsure": bool((np.abs(row - thresholds) < UNSURE_BAND).any())})
        return out

    def uncertainty(self, answers: np.ndarray) -> np.ndarray:
        """How close each label's probability is to a coin toss, averaged over labels."""
        return (1.0 - np.abs(2.0 * answers - 1.0)).mean(axis=1)


def best_thresholds(scores: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Per label, the threshold with the best F1 on these images (0.5 for a label with no positive among them)."""
    chosen = np.full(scores.shape[1], 0.5)
    for k in range(scores.shape[1]):
        if truth[:, k].any():
            f1 = [_f1(truth[:, k], scores[:, k] >= t) for t in CANDIDATE_THRESHOLDS]
            chosen[k] = CANDIDATE_THRESHOLDS[int(np.argmax(f1))]
    return chosen


def cross_fitted_thresholds(scores: np.ndarray, truth: np.ndarray, folds: int = 5, seed: int = 0) -> np.ndarray:
    """(N, labels): for each image, thresholds fitted on the other folds only."""
    folds = min(folds, len(scores) // 2)
    if folds < 2:
        return np.broadcast_to(best_thresholds(scores, truth), scores.shape)
    out = np.empty_like(scores)
    for fit, held_out in KFold(folds, shuffle=True, random_state=seed).split(scores):
        out[held_out] = best_thresholds(scores[fit], truth[fit])
    return out


def _f1(truth: np.ndarray, predicted: np.ndarray) -> float:
    tp = float((truth & predicted).sum())
    denominator = float(truth.sum() + predicted.sum())
    return 2 * tp / denominator if denominator else 0.0


def _evaluation(name: str, labels: list[str], records: list[ImageRecord], truth: np.ndarray, scores: np.ndarray,
                predicted: np.ndarray) -> Evaluation:
    n = len(truth)
    per_label, confusion = [], []
    for k, label in enumerate(labels):
        t, p = truth[:, k], predicted[:, k]
        tp, fp, fn = int((t & p).sum()), int((~t & p).sum()), int((t & ~p).sum())
        row = {"label": label, "support": int(t.sum()), "precision": tp / (tp + fp) if tp + fp else 0.0,
               "recall": tp / (tp + fn) if tp + fn else 0.0, "f1": _f1(t, p),
               "ap": float(average_precision_score(t, scores[:, k])) if t.any() else None,
               "precision_interval": list(intervals.wilson(tp, tp + fp)),
               "recall_interval": list(intervals.wilson(tp, tp + fn))}
        per_label.append(row)
        confusion.append([[int((~t & ~p).sum()), fp], [fn, tp]])  # rows: truth no/yes; columns: predicted no/yes
    exact = int((truth == predicted).all(1).sum())
    metrics = {"micro_f1": _f1(truth.ravel(), predicted.ravel()), "macro_f1": float(np.mean([r["f1"] for r in per_label])),
               "map": _mean([r["ap"] for r in per_label]), "exact_match": exact / n}
    spread = intervals.bootstrap(lambda idx: (_f1(truth[idx].ravel(), predicted[idx].ravel()),
                                              float(np.mean([_f1(truth[idx, k], predicted[idx, k])
                                                             for k in range(len(labels))]))), n)
    found = {"micro_f1": spread[0], "macro_f1": spread[1], "exact_match": list(intervals.wilson(exact, n))}
    notes = [intervals.wide_sentence("the share of images with exactly the right labels", n, "validation images",
                                     tuple(found["exact_match"]))]
    notes += [intervals.wide_sentence("its recall", r["support"], f"images tagged '{r['label']}'",
                                      tuple(r["recall_interval"])) for r in per_label if r["support"]]
    predictions = [{"path": r.path, "sha256": r.sha256, "true": list(r.labels),
                    "predicted": [labels[k] for k in np.flatnonzero(predicted[i])],
                    "probabilities": {labels[k]: round(float(scores[i, k]), 4) for k in range(len(labels))},
                    "correct": bool((truth[i] == predicted[i]).all())} for i, r in enumerate(records)]
    return Evaluation(name, labels, n, metrics, found, [x for x in notes if x], per_label, confusion, predictions)


def _mean(values: list[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return float(np.mean(known)) if known else None
