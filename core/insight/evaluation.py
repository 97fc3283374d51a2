"""The validation report: accuracy, macro-F1, per-class precision/recall/F1/support, confusion, mistakes."""
from __future__ import annotations

from typing import Any

import torch
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, precision_recall_fscore_support

from core.data.report import ImageRecord


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
    return {
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
