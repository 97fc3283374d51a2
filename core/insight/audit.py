"""The label audit: which labels are probably wrong, which images are odd ones out, which are near-copies.

Every image gets a prediction from a head that never saw it (k seeded folds on the frozen backbone's cached
features); cleanlab ranks the given labels against those out-of-fold predictions and finds outliers and
near-duplicates in the embeddings. Seconds, not another training. How each task predicts and ranks is its entry in
core.insight.audit_tasks: one label, tags, values.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
from cleanlab.datalab.internal.issue_manager.duplicate import NearDuplicateIssueManager
from cleanlab.internal.neighbor.knn_graph import create_knn_graph_and_index
from cleanlab.outlier import OutOfDistribution
from threadpoolctl import threadpool_limits

from core.data.datasets import inspect_data
from core.data.report import DataReport, ImageRecord
from core.i18n import N_, _
from core.insight.audit_corrections import corrected_path, corrected_zip
from core.insight.audit_tasks import AUDITS, MIN_FOLDS, AuditImpossible, SingleAudit, TaskAudit, linear_head
from core.insight.embeddings import FeatureSpec, dataset_features
from core.models.features import FeatureCache

__all__ = ["MIN_FOLDS", "AuditImpossible", "AuditResult", "audit", "audit_features", "corrected_path",
           "corrected_zip", "labelled_features", "linear_head", "out_of_fold"]

NEIGHBOURS = 10
NEAR_DUPLICATE_RADIUS = 0.13  # cleanlab Datalab's default: closer than 0.13 x the median nearest-neighbour distance
OUTLIER_IQR_SCALE = 1 / 0.37037 - 1  # cleanlab Datalab's default rule: avg distance > Q3 + 1.7 x IQR
MAX_SHOWN = 200

Action = Literal["keep", "relabel", "remove"]
# {path: {"action": "keep" | "relabel" | "remove", and for a relabel the task's correction: "label" (str),
# "labels" (list of tags) or "value" (float)}}
Marks = dict[str, dict[str, Any]]
# What labelled_features' caller does with the images (its `purpose`), each refusal a whole sentence
CANNOT = {"audited": N_("This data cannot be audited."), "cross-validated": N_("This data cannot be cross-validated.")}


@dataclass
class AuditResult:
    labels: list[str]  # the classes, or the tags; none for values
    records: list[ImageRecord]
    predictions: np.ndarray  # out-of-fold: class probabilities (N, classes), tag probabilities (N, tags), values (N,)
    suspicion: np.ndarray  # 1 - cleanlab's label quality: higher = more likely mislabelled
    flagged: list[int]  # cleanlab's label issues, most suspicious first
    outliers: list[tuple[int, float]]
    near_duplicates: list[tuple[int, int, float]]
    folds: int
    seconds: float
    root: Path = field(default=Path("."))
    task: str = "single"
    targets: np.ndarray | None = None  # what each image was given, as the task's numbers
    notes: list[str] = field(default_factory=list)  # sentences on what the audit could not judge

    @property
    def audit(self) -> TaskAudit:
        return AUDITS[self.task]

    @property
    def correction(self) -> str:
        """What a relabel mark carries for this task: "label", "labels" or "value"."""
        return self.audit.correction

    def ranking(self) -> list[int]:
        """Every image, most suspicious label first."""
        return [int(i) for i in np.argsort(-self.suspicion, kind="stable")]

    def suggested(self, i: int) -> Any:
        """The correction proposed for image i: a label, a list of tags or a value."""
        return self.audit.suggested(self.labels, self._targets(), self.predictions, i)

    def reason(self, i: int) -> str:
        return self.audit.reason(self.labels, self.records[i], self._targets(), self.predictions, i)

    def current_notes(self) -> list[str]:
        """The notes worded again in the current language (the page's language may have changed since the audit;
        the counts they come from are cheap)."""
        return self.audit.check(self.records, self.labels, self.folds)

    def headline(self, i: int) -> str:
        """What it was given and what it looks like, in a few words (plain text)."""
        return self.audit.headline(self.labels, self.records[i], self.suggested(i))

    def _targets(self) -> np.ndarray:
        if self.targets is None:
            self.targets = self.audit.targets(self.records, self.labels)
        return self.targets

    def to_json(self) -> dict[str, Any]:
        path = [r.path for r in self.records]
        issues = []
        for i in self.flagged[:MAX_SHOWN]:
            record, suggestion = self.records[i], self.suggested(i)
            issues.append({"path": path[i], "given": self.audit.given(record), "suggested": suggestion,
                           "score": round(float(self.suspicion[i]), 4),
                           **self.audit.details(self.labels, record, suggestion)})
        return {
            "label_issues": issues,
            "near_duplicates": [{"a": path[a], "b": path[b], "similarity": round(s, 4)}
                                for a, b, s in self.near_duplicates[:MAX_SHOWN]],
            "outliers": [{"path": path[i], "score": round(s, 4)} for i, s in self.outliers[:MAX_SHOWN]],
            "folds": self.folds,
            "seconds": round(self.seconds, 2),
        } | ({"task": self.task, "notes": self.notes} if self.task != "single" else {})


def out_of_fold(features: np.ndarray, targets: np.ndarray, folds: int, seed: int) -> np.ndarray:
    """Class probabilities for every image from a linear head fitted on the other folds (one label per image)."""
    return SingleAudit().out_of_fold(features, targets, folds, seed)


def audit_features(features: np.ndarray, records: list[ImageRecord], labels: list[str], folds: int = 5,
                   seed: int = 0, task: str = "single") -> AuditResult:
    """The audit proper, on given features (one row per record)."""
    started = time.perf_counter()
    steps = AUDITS[task]
    notes = steps.check(records, labels, folds)
    targets = steps.targets(records, labels)
    # Small matrices: one BLAS thread is faster, and on a busy server multi-threaded BLAS spins (20x slower seen).
    with threadpool_limits(limits=1):
        predictions = steps.out_of_fold(features, targets, folds, seed)
        suspicion, flagged = steps.rank(targets, predictions)
        outliers, duplicates = _neighbourhood_issues(features)
    return AuditResult(labels, records, predictions, suspicion, flagged, outliers, duplicates, folds,
                       time.perf_counter() - started, task=task, targets=targets, notes=notes)


def _neighbourhood_issues(features: np.ndarray) -> tuple[list[tuple[int, float]], list[tuple[int, int, float]]]:
    """Outliers and near-duplicates, by cleanlab's Datalab rules on a cosine k-NN graph of the embeddings."""
    k = min(NEIGHBOURS, len(features) - 1)
    graph, _index = create_knn_graph_and_index(features, n_neighbors=k, metric="cosine")
    distances = graph.data.reshape(len(features), -1)
    median = max(float(np.median(distances[:, 0])), 1e-12)
    sets = NearDuplicateIssueManager._neighbors_within_radius(graph, NEAR_DUPLICATE_RADIUS, median)
    pairs = {(min(i, int(j)), max(i, int(j))) for i, group in enumerate(sets) for j in group if i != int(j)}
    similarity = lambda a, b: float(np.dot(features[a], features[b]) /  # noqa: E731
                                    max(np.linalg.norm(features[a]) * np.linalg.norm(features[b]), 1e-12))
    duplicates = sorted(((a, b, similarity(a, b)) for a, b in pairs), key=lambda t: -t[2])
    average = distances.mean(axis=1)
    q1, q3 = np.percentile(average, [25, 75])
    atypical = 1.0 - OutOfDistribution(params={"k": k}).fit_score(features=features, verbose=False)
    outliers = [(int(i), float(atypical[i])) for i in np.flatnonzero(average > q3 + OUTLIER_IQR_SCALE * (q3 - q1))]
    return sorted(outliers, key=lambda t: -t[1]), duplicates


def labelled_features(data: Path, spec: FeatureSpec, folds: int, work_dir: Path | None, cache: FeatureCache | None,
                      purpose: str) -> tuple[DataReport, list[ImageRecord], np.ndarray]:
    """The labelled (non-test) images of a dataset with their frozen-backbone features, once it is checked that
    `folds` folds can be made of them for its task. Raises AuditImpossible, ArchiveRefused."""
    report = inspect_data(Path(data), work_dir)
    if not report.trainable:
        raise AuditImpossible(report.error or _(CANNOT[purpose]))
    records = [r for r in report.images if r.split != "test"]
    AUDITS[report.task].check(records, report.labels, folds)
    return report, records, dataset_features(report.root, records, report.labels, spec, cache)


def audit(data: Path, spec: FeatureSpec = FeatureSpec(), folds: int = 5, seed: int = 0,
          work_dir: Path | None = None, cache: FeatureCache | None = None) -> AuditResult:
    """Audit every labelled image of a dataset (zip or folder), whatever its task. Raises AuditImpossible,
    ArchiveRefused."""
    started = time.perf_counter()
    report, records, features = labelled_features(data, spec, folds, work_dir, cache, "audited")
    result = audit_features(features, records, report.labels, folds, seed, report.task)
    result.root, result.seconds = report.root, time.perf_counter() - started
    return result
