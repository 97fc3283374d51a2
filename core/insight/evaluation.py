"""The validation report: accuracy, macro-F1, per-class precision/recall/F1/support, confusion, mistakes, and a
95% interval for each headline number (small validation sets make single numbers misleading)."""
from __future__ import annotations

from typing import Any

import torch
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, precision_recall_fscore_support

from core.data.report import ImageRecord
from core.insight import intervals


def build_report(labels: list[str], records: list[ImageRecord], probabilities: torch.Tensor) -> dict[str, Any]:
    index = {label: i for i, label in enumerate(labels)}
    y_true = [index[r.label] for r in records]
    if not y_true:
        return {"accuracy": None, "macro_f1": None, "per_class": [], "confusion": [], "labels": labels,
                "mistakes": [], "predictions": [], "num_images": 0}
    confidence, predicted = probabilities.max(1)
    y_pred = predicted.tolist()
    every = list(range(len(labels)))
    precision, recall, f1, support = precision_recall_fscore_support(y_true, y_pred, labels=every, zero_division=0)
    predictions = [
        {"path": r.path, "true": r.label, "predicted": labels[p], "confidence": round(float(c), 4)}
        for r, p, c in zip(records, y_pred, confidence)
    ]
    mistakes = [m for m in predictions if m["true"] != m["predicted"]]
    report = {
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "macro_f1": float(f1_score(y_true, y_pred, labels=every, average="macro", zero_division=0)),
        "per_class": [
            {"label": label, "precision": float(precision[i]), "recall": float(recall[i]), "f1": float(f1[i]),
             "support": int(support[i])}
            for i, label in enumerate(labels)
        ],
        "confusion": confusion_matrix(y_true, y_pred, labels=every).tolist(),
        "labels": labels,
        "mistakes": sorted(mistakes, key=lambda m: -m["confidence"]),
        "predictions": predictions,
        "num_images": len(y_true),
    }
    return add_intervals(report, y_true, y_pred)


def add_intervals(report: dict[str, Any], y_true: list[int], y_pred: list[int], seed: int = 0) -> dict[str, Any]:
    """95% intervals for accuracy (Wilson), macro-F1 (bootstrap) and each class's recall (Wilson), plus a plain
    sentence for every interval too wide to trust the single number."""
    n, correct = len(y_true), sum(t == p for t, p in zip(y_true, y_pred))
    accuracy = intervals.wilson(correct, n)
    report["intervals"] = {"accuracy": list(accuracy),
                           "macro_f1": list(intervals.bootstrap_macro_f1(y_true, y_pred, len(report["labels"]), seed))}
    notes = [intervals.wide_sentence("the accuracy", n, "validation images", accuracy)]
    for i, row in enumerate(report["per_class"]):
        hits = sum(t == i and p == i for t, p in zip(y_true, y_pred))
        row["recall_interval"] = list(intervals.wilson(hits, row["support"]))
        noun = "image" if row["support"] == 1 else "images"
        notes.append(intervals.wide_sentence("its recall", row["support"], f"{noun} of '{row['label']}'",
                                             tuple(row["recall_interval"])) if row["support"] else None)
    report["interval_notes"] = [note for note in notes if note]
    return report
