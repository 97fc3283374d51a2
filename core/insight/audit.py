"""The label audit: which labels are probably wrong, which images are odd ones out, which are near-copies.

Every image gets a prediction from a linear head that never saw it (k stratified, seeded folds on the frozen
backbone's cached features); cleanlab ranks the labels from those out-of-fold probabilities and finds
outliers and near-duplicates in the embeddings. Seconds, not another training.
"""
from __future__ import annotations

import time
import zipfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Literal

import numpy as np
from cleanlab.datalab.internal.issue_manager.duplicate import NearDuplicateIssueManager
from cleanlab.filter import find_label_issues
from cleanlab.internal.neighbor.knn_graph import create_knn_graph_and_index
from cleanlab.outlier import OutOfDistribution
from cleanlab.rank import get_label_quality_scores
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_val_predict
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from core.data.datasets import inspect_data
from core.data.report import DataReport, ImageRecord
from core.insight.embeddings import FeatureSpec, dataset_features
from core.models.features import FeatureCache

MIN_FOLDS = 2
NEIGHBOURS = 10
NEAR_DUPLICATE_RADIUS = 0.13  # cleanlab Datalab's default: closer than 0.13 x the median nearest-neighbour distance
OUTLIER_IQR_SCALE = 1 / 0.37037 - 1  # cleanlab Datalab's default rule: avg distance > Q3 + 1.7 x IQR
MAX_SHOWN = 200

Action = Literal["keep", "relabel", "remove"]
Marks = dict[str, dict[str, Any]]  # {path: {"action": "keep" | "relabel" | "remove", "label": str | None}}


class AuditImpossible(ValueError):
    """The audit cannot run on this data; the message says why and what to do."""


@dataclass
class AuditResult:
    labels: list[str]
    records: list[ImageRecord]
    probabilities: np.ndarray  # out-of-fold, (N, classes)
    suspicion: np.ndarray  # 1 - cleanlab's label quality: higher = more likely mislabelled
    flagged: list[int]  # cleanlab's label issues, most suspicious first
    outliers: list[tuple[int, float]]
    near_duplicates: list[tuple[int, int, float]]
    folds: int
    seconds: float
    root: Path = field(default=Path("."))

    def ranking(self) -> list[int]:
        """Every image, most suspicious label first."""
        return [int(i) for i in np.argsort(-self.suspicion, kind="stable")]

    def suggested(self, i: int) -> str:
        return self.labels[int(self.probabilities[i].argmax())]

    def reason(self, i: int) -> str:
        given, guess = self.records[i].label, self.suggested(i)
        p_given = self.probabilities[i][self.labels.index(given)]
        p_guess = self.probabilities[i].max()
        return (f"A model that never saw this image calls it '{guess}' ({p_guess:.0%} sure) and gives its label "
                f"'{given}' only {p_given:.0%}.")

    def to_json(self) -> dict[str, Any]:
        path = [r.path for r in self.records]
        return {
            "label_issues": [{"path": path[i], "given": self.records[i].label, "suggested": self.suggested(i),
                              "score": round(float(self.suspicion[i]), 4)} for i in self.flagged[:MAX_SHOWN]],
            "near_duplicates": [{"a": path[a], "b": path[b], "similarity": round(s, 4)}
                                for a, b, s in self.near_duplicates[:MAX_SHOWN]],
            "outliers": [{"path": path[i], "score": round(s, 4)} for i, s in self.outliers[:MAX_SHOWN]],
            "folds": self.folds,
            "seconds": round(self.seconds, 2),
        }


def check_auditable(labels: list[str], counts: dict[str, int], folds: int) -> None:
    """Raise AuditImpossible with a sentence a newcomer can act on."""
    if folds < MIN_FOLDS:
        raise AuditImpossible(f"The audit needs at least {MIN_FOLDS} folds, not {folds}.")
    if len(labels) < 2:
        raise AuditImpossible("The audit compares classes, so it needs at least two classes of images; "
                              f"this data has {len(labels)}.")
    small = [label for label in labels if counts.get(label, 0) < folds]
    if small:
        raise AuditImpossible(
            f"The audit splits every class into {folds} parts, so each class needs at least {folds} images; "
            f"'{small[0]}' has only {counts.get(small[0], 0)}. Add images or use fewer folds.")


def linear_head():
    """The linear head the audit, cross-validation and the comparison fit on frozen features (scikit-learn: a fit
    takes milliseconds, against seconds for the run's own torch head)."""
    return make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=300))


def out_of_fold(features: np.ndarray, targets: np.ndarray, folds: int, seed: int) -> np.ndarray:
    """Class probabilities for every image from a linear head fitted on the other folds."""
    cv = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    return cross_val_predict(linear_head(), features, targets, cv=cv, method="predict_proba")


def audit_features(features: np.ndarray, records: list[ImageRecord], labels: list[str], folds: int = 5,
                   seed: int = 0) -> AuditResult:
    """The audit proper, on given features (one row per record)."""
    started = time.perf_counter()
    check_auditable(labels, Counter(r.label for r in records), folds)
    index = {label: i for i, label in enumerate(labels)}
    targets = np.array([index[r.label] for r in records])
    # Small matrices: one BLAS thread is faster, and on a busy server multi-threaded BLAS spins (20x slower seen).
    with threadpool_limits(limits=1):
        probabilities = out_of_fold(features, targets, folds, seed)
        suspicion = 1.0 - get_label_quality_scores(targets, probabilities)
        flagged = find_label_issues(targets, probabilities, return_indices_ranked_by="self_confidence", n_jobs=1)
        outliers, duplicates = _neighbourhood_issues(features)
    return AuditResult(labels, records, probabilities, suspicion, [int(i) for i in flagged], outliers, duplicates,
                       folds, time.perf_counter() - started)


def _neighbourhood_issues(features: np.ndarray) -> tuple[list[tuple[int, float]], list[tuple[int, int, float]]]:
    """Outliers and near-duplicates, by cleanlab's Datalab rules on a cosine k-NN graph of the embeddings."""
    k = min(NEIGHBOURS, len(features) - 1)
    graph, _ = create_knn_graph_and_index(features, n_neighbors=k, metric="cosine")
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
    `folds` folds can be made. Raises AuditImpossible, ArchiveRefused."""
    report = inspect_data(Path(data), work_dir)
    if not report.trainable:
        raise AuditImpossible(report.error or f"This data cannot be {purpose}.")
    records = [r for r in report.images if r.split != "test"]
    check_auditable(report.labels, Counter(r.label for r in records), folds)
    return report, records, dataset_features(report.root, records, report.labels, spec, cache)


def audit(data: Path, spec: FeatureSpec = FeatureSpec(), folds: int = 5, seed: int = 0,
          work_dir: Path | None = None, cache: FeatureCache | None = None) -> AuditResult:
    """Audit every labelled image of a dataset (zip or folder). Raises AuditImpossible, ArchiveRefused."""
    started = time.perf_counter()
    report, records, features = labelled_features(data, spec, folds, work_dir, cache, "audited")
    result = audit_features(features, records, report.labels, folds, seed)
    result.root, result.seconds = report.root, time.perf_counter() - started
    return result


def corrected_path(record: ImageRecord, new_label: str) -> str:
    """The record's path with its class folder renamed: [split/]label/... -> [split/]new_label/..."""
    parts = list(PurePosixPath(record.path).parts)
    position = 1 if record.split is not None and len(parts) > 2 else 0
    parts[position] = new_label
    return "/".join(parts)


def corrected_zip(root: Path, records: list[ImageRecord], marks: Marks, destination: Path) -> Path:
    """A zip of the data with the marks applied: removed images left out, relabelled ones in their new folder."""
    taken: set[str] = set()
    tmp = destination.with_name(destination.name + ".tmp")
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED) as archive:  # images are compressed already
        for record in records:
            mark = marks.get(record.path, {})
            if mark.get("action") == "remove":
                continue
            name = corrected_path(record, mark["label"]) if mark.get("action") == "relabel" and mark.get(
                "label") else record.path
            name = _unique(name, taken)
            archive.write(root / record.path, name)
    tmp.replace(destination)
    return destination


def _unique(name: str, taken: set[str]) -> str:
    path, n = PurePosixPath(name), 1
    while name in taken:
        name = str(path.with_name(f"{path.stem}_{n}{path.suffix}"))
        n += 1
    taken.add(name)
    return name
