"""One label per image (classification): softmax head, cross-entropy, accuracy and macro-F1 with intervals,
temperature scaling and the "not sure" threshold."""
from __future__ import annotations

from typing import Any

import numpy as np
import torch
from sklearn.metrics import confusion_matrix, precision_recall_fscore_support
from torch import nn

from core.data.report import ImageRecord
from core.i18n import N_, _, percent
from core.stats import calibration, conformal, intervals
from core.tasks.base import Evaluation, Measure, Task


class SingleLabel(Task):
    name = "single"
    title = N_("one label per image")
    score_name = "accuracy"
    measures = (Measure("accuracy", N_("Accuracy"), N_("Share of validation images predicted correctly.")),
                Measure("macro_f1", N_("Class-balanced score"), N_("Macro F1: the average over classes of each class's F1 "
                        "(the balance between precision and recall). Low when any one class does badly, even a "
                        "small one.")))
    label_columns = (Measure("precision", N_("precision"), N_("When the model says this class, how often it is right.")),
                     Measure("recall", N_("recall"), N_("Of the images of this class, how many it finds.")),
                     Measure("f1", N_("F1"), N_("The balance of the two.")),
                     Measure("support", N_("images"), N_("Validation images of this class."), percent=False))
    figures = ("recall_intervals", "confusion")
    mistakes_title = N_("Misclassified images")
    top_k_choice = True
    per_label_heading = N_("Per class")
    compares_backbones = reports_accuracy = True
    python_example = 'best = result["predictions"][0]\nprint(best["label"], best["probability"], result["unsure"])'

    def interval_notes(self, evaluation: Evaluation) -> list[str]:
        return intervals.wide_notes(evaluation.num_images, N_("the accuracy"), evaluation.intervals.get("accuracy"),
                                    evaluation.per_label, tagged=False)

    def verdict(self, answer: dict[str, Any], guess: bool = False) -> str:
        best = answer["predictions"][0]
        sure = percent(best["probability"])
        if guess:
            return _("{label}, {probability}").format(label=best["label"], probability=sure)
        if len(answer.get("set") or []) > 1 and answer.get("set_coverage"):
            # Translators: {labels} is a list of class names, e.g. 'rose', 'tulip'.
            return _("{label} ({probability} sure); one of {labels}, as such lists are right {coverage} of the "
                     "time").format(label=best["label"], probability=sure, labels=", ".join(answer["set"]),
                                    coverage=percent(answer["set_coverage"]))
        return _("{label} ({probability} sure)").format(label=best["label"], probability=sure)

    def describe(self, prediction: dict[str, Any]) -> str:
        return _("true: {true} · predicted: {predicted} ({confidence})").format(
            true=prediction["true"], predicted=prediction["predicted"],
            confidence=percent(float(prediction.get("confidence") or 0)))

    def outputs(self, labels: list[str]) -> int:
        return len(labels)

    def targets(self, records: list[ImageRecord], labels: list[str]) -> torch.Tensor:
        index = {label: i for i, label in enumerate(labels)}
        return torch.tensor([index[r.label] for r in records], dtype=torch.long)

    def criterion(self, train_targets: torch.Tensor) -> nn.Module:
        return nn.CrossEntropyLoss()

    def batch_score(self, logits: torch.Tensor, targets: torch.Tensor, criterion: nn.Module) -> float:
        return float((logits.argmax(1) == targets).sum())

    def answers(self, logits: torch.Tensor) -> torch.Tensor:
        return logits.float().softmax(1)

    def evaluate(self, labels: list[str], records: list[ImageRecord], answers: torch.Tensor) -> Evaluation:
        y_true = self.targets(records, labels).tolist()
        if not y_true:
            return Evaluation(self.name, labels, 0, {"accuracy": None, "macro_f1": None})
        confidence, predicted = answers.max(1)
        y_pred = predicted.tolist()
        every = list(range(len(labels)))
        precision, recall, f1, support = precision_recall_fscore_support(y_true, y_pred, labels=every, zero_division=0)
        per_label = [{"label": label, "precision": float(precision[i]), "recall": float(recall[i]), "f1": float(f1[i]),
                      "support": int(support[i])} for i, label in enumerate(labels)]
        predictions = [{"path": r.path, "sha256": r.sha256, "true": r.label, "predicted": labels[p],
                        "confidence": round(float(c), 4), "correct": r.label == labels[p]}
                       for r, p, c in zip(records, y_pred, confidence)]
        correct = sum(t == p for t, p in zip(y_true, y_pred))
        evaluation = Evaluation(self.name, labels, len(y_true),
                                {"accuracy": correct / len(y_true),
                                 "macro_f1": intervals.macro_f1(np.array(y_true), np.array(y_pred), len(labels))},
                                per_label=per_label, confusion=confusion_matrix(y_true, y_pred, labels=every).tolist(),
                                predictions=predictions)
        return _with_intervals(evaluation, y_true, y_pred)

    def calibrate(self, answers: np.ndarray, targets: np.ndarray) -> dict[str, Any]:
        if not len(targets):
            return {"predict": {"temperature": 1.0, "threshold": 0.0}, "report": {}}
        targets = targets.astype(int)
        report = calibration.calibrate(answers, targets)
        abstention = report.pop("abstention")
        calibrated = calibration.apply_temperature(calibration.log_probabilities(answers), report["temperature"])
        sets = prediction_sets(calibrated, targets)
        return {"predict": {"temperature": report["temperature"], "threshold": abstention["threshold"],
                            "set_coverage": sets["coverage"], "set_quantile": sets["quantile"],
                            "set_scores": conformal.kept_scores(conformal.class_scores(calibrated, targets))},
                "report": {"calibration": report, "abstention": abstention, "conformal": sets}}

    def answer(self, answers: torch.Tensor, labels: list[str], trust: dict[str, Any], top_k: int,
               coverage: float | None = None) -> list[dict[str, Any]]:
        temperature, threshold = float(trust.get("temperature", 1.0)), float(trust.get("threshold", 0.0))
        # softmax(log p / T) == softmax(logits / T): the temperature applies to probabilities as well.
        calibrated = (answers.float().clamp_min(1e-12).log() / temperature).softmax(1)
        values, indices = calibrated.topk(min(top_k, len(labels)), dim=1)
        answers = [{"predictions": [{"label": labels[i], "probability": round(float(p), 6)} for p, i in zip(row_p, row_i)],
                    "unsure": bool(row_p[0] < threshold)} for row_p, row_i in zip(values.tolist(), indices.tolist())]
        quantile, rate = conformal.stored_quantile(trust, "set", coverage)
        if quantile is not None:  # "rose or tulip, 90% coverage": the classes a new image's truth is among
            for answer, chosen in zip(answers, conformal.prediction_sets(calibrated.numpy(), quantile)):
                answer["set"] = [labels[k] for k in chosen]
                answer["set_coverage"] = rate
        return answers

    def uncertainty(self, answers: np.ndarray) -> np.ndarray:
        """1 - (top probability - runner-up): the smaller the margin, the more unsure."""
        ordered = np.sort(answers, axis=1)
        runner_up = ordered[:, -2] if answers.shape[1] > 1 else 0.0
        return 1.0 - (ordered[:, -1] - runner_up)


def prediction_sets(calibrated: np.ndarray, targets: np.ndarray,
                    coverage: float = conformal.DEFAULT_COVERAGE) -> dict[str, Any]:
    """The conformal quantile of the calibrated validation answers, and the coverage it really had on validation
    images it was not fitted on (cross-fitted): what the Evaluate page shows beside the promise."""
    scores = conformal.class_scores(calibrated, targets)
    quantile = conformal.conformal_quantile(scores, coverage)
    measured = conformal.cross_fitted_coverage(scores, coverage, lambda idx, q: scores[idx] <= q)
    sizes = [len(s) for s in conformal.prediction_sets(calibrated, quantile)] if np.isfinite(quantile) else []
    return {"coverage": coverage, "quantile": quantile if np.isfinite(quantile) else None,
            "measured_coverage": measured, "mean_set_size": float(np.mean(sizes)) if sizes else None,
            "images": int(len(targets))}


def _with_intervals(evaluation: Evaluation, y_true: list[int], y_pred: list[int], seed: int = 0) -> Evaluation:
    """95% intervals for accuracy (Wilson), macro-F1 (bootstrap) and each class's recall (Wilson), plus a plain
    sentence for every interval too wide to trust the single number."""
    n, correct = len(y_true), sum(t == p for t, p in zip(y_true, y_pred))
    accuracy = intervals.wilson(correct, n)
    evaluation.intervals = {"accuracy": list(accuracy), "macro_f1": list(
        intervals.bootstrap_macro_f1(y_true, y_pred, len(evaluation.labels), seed))}
    notes = [intervals.wide_sentence("the accuracy", n, "validation images", accuracy)]
    for i, row in enumerate(evaluation.per_label):
        hits = sum(t == i and p == i for t, p in zip(y_true, y_pred))
        row["recall_interval"] = list(intervals.wilson(hits, row["support"]))
        noun = "image" if row["support"] == 1 else "images"
        notes.append(intervals.wide_sentence("its recall", row["support"], f"{noun} of '{row['label']}'",
                                             tuple(row["recall_interval"])) if row["support"] else None)
    evaluation.interval_notes = [note for note in notes if note]
    return evaluation
