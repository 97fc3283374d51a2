"""The Monitor's part for one label per image: class shares against the training mix, confidence drift, the share
of "not sure" answers, and accuracy on the true labels fed back."""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

from core.i18n import _, ngettext, number
from core.serving import monitor_charts
from core.serving.monitor_base import Drift, Metric, Note, Panel, Watch, drift, share, shifted
from core.tasks import Evaluation


def class_distribution(rows: list[dict[str, Any]], training_counts: dict[str, int]) -> list[dict[str, Any]]:
    """Per label: share among served answers against share in the training data (labels of both, training order)."""
    served = Counter(r["label"] for r in rows if r.get("label") is not None)
    labels = list(training_counts) + sorted(set(served) - set(training_counts))
    served_total, training_total = sum(served.values()), sum(training_counts.values())
    return [{"label": label,
             "served": served[label] / served_total if served_total else 0.0,
             "training": training_counts.get(label, 0) / training_total if training_total else 0.0}
            for label in labels]


def feedback_accuracy(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Accuracy of the top-1 answer on the images whose true label was reported: the first label given (later
    ones are kept in the log's feedback history, but cannot rewrite the score)."""
    judged = [r for r in rows if r.get("feedback_label")]
    correct = sum(r["feedback_label"] == r["label"] for r in judged)
    return {"images": len(judged), "correct": correct, "accuracy": correct / len(judged) if judged else None}


@dataclass(frozen=True)
class ClassReference:
    training_counts: dict[str, int]  # validation support per class (the split is stratified like training)
    confidences: list[float]


@dataclass(frozen=True)
class ClassSummary:
    classes: list[dict[str, Any]]
    confidences: list[float]
    confidence_drift: Drift
    unsure: float | None
    feedback: dict[str, Any]


class ClassWatch(Watch):
    name = "classes"

    def reference(self, evaluation: Evaluation | None, labels: list[str]) -> ClassReference:
        if evaluation is None:  # damaged or missing: the classes are still known from the model
            return ClassReference({label: 0 for label in labels}, [])
        counts = {c["label"]: int(c.get("support", 0)) for c in evaluation.per_label}
        confidences = [float(p["confidence"]) for p in evaluation.predictions if p.get("confidence") is not None]
        return ClassReference(counts, confidences)

    def summarize(self, rows: list[dict[str, Any]], reference: ClassReference | None) -> ClassSummary:
        reference = reference or ClassReference({}, [])
        confidences = [float(r["confidence"]) for r in rows if r.get("confidence") is not None]
        unsure = sum(bool(r["unsure"]) for r in rows) / len(rows) if rows else None
        return ClassSummary(class_distribution(rows, reference.training_counts), confidences,
                            drift(reference.confidences, confidences, "confidence"), unsure, feedback_accuracy(rows))

    def panels(self, summary: ClassSummary, reference: ClassReference | None) -> list[Panel]:
        feedback, found = summary.feedback, summary.confidence_drift
        judged = ngettext("{correct} of {count} image whose true label was reported",
                          "{correct} of {count} images whose true label was reported",
                          feedback["images"]).format(correct=feedback["correct"], count=feedback["images"])
        metrics = (Metric(_("Accuracy on feedback"), share(feedback["accuracy"]), judged),
                   Metric(_("Not sure"), share(summary.unsure),
                          _("Answers below the confidence threshold shown on Evaluate.")))
        title = _("Confidence") if found.psi is None else \
            _("Confidence (drift score, PSI: {score})").format(score=number(found.psi, 2))
        figures = [monitor_charts.class_distribution(summary.classes)]
        if reference is not None and reference.confidences and summary.confidences:
            figures.append(monitor_charts.compared_histogram(reference.confidences, summary.confidences,
                                                             _("Confidence"), _("top probability")))
        return [Panel("classes", _("Classes given, against the training data"), metrics,
                      (Note(title, found.verdict, shifted(found)),), tuple(figures))]
