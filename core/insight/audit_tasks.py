"""What the label audit does for each task of core.tasks: how a model that never saw an image predicts it, how
cleanlab ranks the given label against that prediction, and what the page suggests instead.

One entry per task name (`AUDITS`, tested over the registry): one label (softmax of a logistic regression,
stratified folds, cleanlab.filter / cleanlab.rank), tags (one-vs-rest logistic regressions, folds stratified per
tag, cleanlab.multilabel_classification) and values (ridge regression, random folds, cleanlab.regression with
Datalab's issue rule). Every fit is on the frozen backbone's cached features: seconds, not a training.
"""
from __future__ import annotations

import warnings
from abc import ABC, abstractmethod
from collections import Counter
from typing import Any, ClassVar

import numpy as np
from cleanlab.datalab.internal.issue_manager.regression.label import find_issues_with_predictions
from cleanlab.filter import find_label_issues
from cleanlab.multilabel_classification import filter as multilabel_filter
from cleanlab.multilabel_classification import rank as multilabel_rank
from cleanlab.rank import get_label_quality_scores
from cleanlab.regression.rank import get_label_quality_scores as value_quality_scores
from iterstrat.ml_stratifiers import MultilabelStratifiedKFold
from sklearn.linear_model import LogisticRegression, RidgeCV
from sklearn.model_selection import KFold, StratifiedKFold, cross_val_predict
from sklearn.multiclass import OneVsRestClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from core.data.report import ImageRecord
from core.i18n import _, ngettext, percent, quoted
from core.insight.audit_words import listed, number, tags_text

MIN_FOLDS = 2
MIN_TAG_IMAGES = 2  # a tag on one image is unseen whenever that image is held out: the audit cannot judge it
REGRESSION_THRESHOLD = 0.05  # cleanlab Datalab's rule: a value is an issue when its quality < 0.05 x the median
RIDGE_ALPHAS = np.logspace(-2, 4, 13)
SHOWN_TAGS = 3


class AuditImpossible(ValueError):
    """The audit cannot run on this data; the message says why and what to do."""


def linear_head():
    """The linear head the audit, cross-validation and the comparison fit on frozen features (scikit-learn: a fit
    takes milliseconds, against seconds for the run's own torch head)."""
    return make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=300))


def check_folds(folds: int, images: int) -> None:
    if folds < MIN_FOLDS:
        raise AuditImpossible(_("The audit needs at least {minimum} folds, not {folds}.").format(minimum=MIN_FOLDS,
                                                                                                folds=folds))
    if images < folds:
        raise AuditImpossible(_("The audit splits your images into {folds} parts, so it needs at least {folds} "
                                "images; this data has {count}.").format(folds=folds, count=images))


class TaskAudit(ABC):
    """The audit's steps for one task. `correction` names what a relabel mark carries: "label", "labels", "value"."""
    correction: ClassVar[str]

    def check(self, records: list[ImageRecord], labels: list[str], folds: int) -> list[str]:
        """Raise AuditImpossible with a sentence a newcomer can act on; else the notes worth telling."""
        check_folds(folds, len(records))
        return []

    @abstractmethod
    def targets(self, records: list[ImageRecord], labels: list[str]) -> np.ndarray:
        """What each image was given, as numbers."""

    @abstractmethod
    def out_of_fold(self, features: np.ndarray, targets: np.ndarray, folds: int, seed: int) -> np.ndarray:
        """Every image's prediction from a head fitted on the other folds."""

    @abstractmethod
    def rank(self, targets: np.ndarray, predictions: np.ndarray) -> tuple[np.ndarray, list[int]]:
        """(suspicion per image: 1 - cleanlab's label quality, the flagged images, most suspicious first)."""

    @abstractmethod
    def given(self, record: ImageRecord) -> Any:
        """The record's label as the user gave it (JSON)."""

    @abstractmethod
    def suggested(self, labels: list[str], targets: np.ndarray, predictions: np.ndarray, i: int) -> Any:
        """The correction the audit proposes for image i (JSON): a label, a list of tags, a value."""

    @abstractmethod
    def reason(self, labels: list[str], record: ImageRecord, targets: np.ndarray, predictions: np.ndarray,
               i: int) -> str:
        """Why image i is flagged, in plain words."""

    def headline(self, labels: list[str], record: ImageRecord, suggestion: Any) -> str:
        return _("Labelled {given}, looks like {guess}").format(given=quoted(record.label), guess=quoted(suggestion))

    def details(self, labels: list[str], record: ImageRecord, suggestion: Any) -> dict[str, Any]:
        """Extra keys of the image's JSON entry beside path, given, suggested and score."""
        return {}


class SingleAudit(TaskAudit):
    correction = "label"

    def check(self, records: list[ImageRecord], labels: list[str], folds: int) -> list[str]:
        check_folds(folds, len(records))
        if len(labels) < 2:
            raise AuditImpossible(_("The audit compares classes, so it needs at least two classes of images; "
                                    "this data has {count}.").format(count=len(labels)))
        counts = Counter(r.label for r in records)
        small = [label for label in labels if counts.get(label, 0) < folds]
        if small:
            raise AuditImpossible(_(
                "The audit splits every class into {folds} parts, so each class needs at least {folds} images; "
                "{name} has only {count}. Add images or use fewer folds.").format(
                    folds=folds, name=quoted(small[0]), count=counts.get(small[0], 0)))
        return []

    def targets(self, records: list[ImageRecord], labels: list[str]) -> np.ndarray:
        index = {label: i for i, label in enumerate(labels)}
        return np.array([index[r.label] for r in records])

    def splitter(self, folds: int, seed: int) -> StratifiedKFold:
        return StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)

    def out_of_fold(self, features: np.ndarray, targets: np.ndarray, folds: int, seed: int) -> np.ndarray:
        cv = self.splitter(folds, seed)
        return cross_val_predict(linear_head(), features, targets, cv=cv, method="predict_proba")

    def rank(self, targets: np.ndarray, predictions: np.ndarray) -> tuple[np.ndarray, list[int]]:
        flagged = find_label_issues(targets, predictions, return_indices_ranked_by="self_confidence", n_jobs=1)
        return 1.0 - get_label_quality_scores(targets, predictions), [int(i) for i in flagged]

    def given(self, record: ImageRecord) -> Any:
        return record.label

    def suggested(self, labels: list[str], targets: np.ndarray, predictions: np.ndarray, i: int) -> Any:
        return labels[int(predictions[i].argmax())]

    def reason(self, labels: list[str], record: ImageRecord, targets: np.ndarray, predictions: np.ndarray,
               i: int) -> str:
        guess = self.suggested(labels, targets, predictions, i)
        p_given, p_guess = predictions[i][int(targets[i])], predictions[i].max()
        return _("A model that never saw this image calls it {guess} ({sure} sure) and gives its label {given} "
                 "only {share}.").format(guess=quoted(guess), sure=percent(p_guess), given=quoted(record.label),
                                         share=percent(p_given))


class MultiAudit(TaskAudit):
    """Tags the audit cannot judge (on fewer than two images) are taken as given: their prediction is the tag."""
    correction = "labels"

    def check(self, records: list[ImageRecord], labels: list[str], folds: int) -> list[str]:
        check_folds(folds, len(records))
        counts = Counter(tag for r in records for tag in r.labels)
        judged = [tag for tag in labels if counts[tag] >= MIN_TAG_IMAGES]
        if len(judged) < 2:
            raise AuditImpossible(_("The audit compares tags, so it needs at least two tags that are each on two "
                                    "or more images; this data has {count}.").format(count=len(judged)))
        notes = [(_("{tag} is on none of the images checked, so the audit cannot judge it.") if counts[tag] == 0 else
                  _("{tag} is on only one of the images checked, so the audit cannot judge it.")).format(tag=quoted(tag))
                 for tag in labels if tag not in judged]
        rare = [tag for tag in judged if counts[tag] < folds]
        if rare:
            notes.append(ngettext("{tags} is on fewer than {folds} images, so the audit's guesses about it rest on "
                                  "very few examples.", "{tags} are on fewer than {folds} images, so the audit's "
                                  "guesses about them rest on very few examples.", len(rare)).format(
                tags=listed([quoted(tag) for tag in rare]), folds=folds))
        return notes

    def targets(self, records: list[ImageRecord], labels: list[str]) -> np.ndarray:
        index = {label: i for i, label in enumerate(labels)}
        multi_hot = np.zeros((len(records), len(labels)), dtype=int)
        for row, record in enumerate(records):
            multi_hot[row, [index[tag] for tag in record.labels]] = 1
        return multi_hot

    def splitter(self, folds: int, seed: int) -> MultilabelStratifiedKFold:
        # Folds balanced per tag (iterative stratification): a tag on two images keeps one in training each time.
        return MultilabelStratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)

    def out_of_fold(self, features: np.ndarray, targets: np.ndarray, folds: int, seed: int) -> np.ndarray:
        judged = targets.sum(0) >= MIN_TAG_IMAGES
        cv = self.splitter(folds, seed)
        head = make_pipeline(StandardScaler(), OneVsRestClassifier(LogisticRegression(C=0.1, max_iter=300)))
        predictions = targets.astype(float)
        with warnings.catch_warnings():  # a tag on every training image: scikit-learn answers it always, and says so
            warnings.simplefilter("ignore", UserWarning)
            predictions[:, judged] = cross_val_predict(head, features, targets[:, judged], cv=cv,
                                                       method="predict_proba")
        return predictions

    def rank(self, targets: np.ndarray, predictions: np.ndarray) -> tuple[np.ndarray, list[int]]:
        judged = targets.sum(0) >= MIN_TAG_IMAGES
        given = [[int(k) for k in np.flatnonzero(row)] for row in targets[:, judged]]
        probabilities = predictions[:, judged]
        flagged = multilabel_filter.find_label_issues(given, probabilities, return_indices_ranked_by="self_confidence",
                                                      n_jobs=1)
        return 1.0 - multilabel_rank.get_label_quality_scores(given, probabilities), [int(i) for i in flagged]

    def given(self, record: ImageRecord) -> Any:
        return list(record.labels)

    def suggested(self, labels: list[str], targets: np.ndarray, predictions: np.ndarray, i: int) -> Any:
        add, doubt = _disputed(targets[i], predictions[i])
        chosen = {k for k in np.flatnonzero(targets[i])} - set(doubt) | set(add)
        return [labels[k] for k in sorted(chosen)]

    def reason(self, labels: list[str], record: ImageRecord, targets: np.ndarray, predictions: np.ndarray,
               i: int) -> str:
        add, doubt = _disputed(targets[i], predictions[i])
        p = predictions[i]
        added = listed([_("{tag} ({share} sure)").format(tag=quoted(labels[k]), share=percent(p[k]))
                         for k in add[:SHOWN_TAGS]])
        doubted = listed([_("{tag} ({share})").format(tag=quoted(labels[k]), share=percent(p[k]))
                           for k in doubt[:SHOWN_TAGS]])
        if add and doubt:
            return _("A model that never saw this image adds {added} and doubts {doubted}.").format(added=added,
                                                                                                 doubted=doubted)
        if add:
            return _("A model that never saw this image adds {added}.").format(added=added)
        return _("A model that never saw this image doubts {doubted}.").format(doubted=doubted)

    def headline(self, labels: list[str], record: ImageRecord, suggestion: Any) -> str:
        return _("Tagged {given}, looks like {guess}").format(given=tags_text(record.labels), guess=tags_text(suggestion))

    def details(self, labels: list[str], record: ImageRecord, suggestion: Any) -> dict[str, Any]:
        return {"add": sorted(set(suggestion) - set(record.labels)), "remove": sorted(set(record.labels) - set(suggestion))}


def _disputed(given: np.ndarray, probabilities: np.ndarray) -> tuple[list[int], list[int]]:
    """(tags the model would add, tags it doubts), most confident first; when the model crosses no line (the image
    is flagged on the sum of small doubts), the one tag it disagrees with most."""
    add = sorted(np.flatnonzero((given == 0) & (probabilities >= 0.5)), key=lambda k: -probabilities[k])
    doubt = sorted(np.flatnonzero((given == 1) & (probabilities < 0.5)), key=lambda k: probabilities[k])
    if not add and not doubt:
        worst = int(np.argmin(np.where(given == 1, probabilities, 1.0 - probabilities)))
        (doubt if given[worst] else add).append(worst)
    return [int(k) for k in add], [int(k) for k in doubt]


class ValueAudit(TaskAudit):
    correction = "value"

    def check(self, records: list[ImageRecord], labels: list[str], folds: int) -> list[str]:
        check_folds(folds, len(records))
        if len({r.value for r in records}) < 2:
            raise AuditImpossible(_("Every image has the same value, so the audit has nothing to compare."))
        return []

    def targets(self, records: list[ImageRecord], labels: list[str]) -> np.ndarray:
        return np.array([float(r.value) for r in records])

    def out_of_fold(self, features: np.ndarray, targets: np.ndarray, folds: int, seed: int) -> np.ndarray:
        head = make_pipeline(StandardScaler(), RidgeCV(alphas=RIDGE_ALPHAS))  # its penalty by leave-one-out: cheap
        return cross_val_predict(head, features, targets, cv=self.splitter(folds, seed))

    def splitter(self, folds: int, seed: int) -> KFold:
        return KFold(folds, shuffle=True, random_state=seed)

    def rank(self, targets: np.ndarray, predictions: np.ndarray) -> tuple[np.ndarray, list[int]]:
        quality = value_quality_scores(targets, predictions)
        issues = find_issues_with_predictions(predictions, targets, threshold=REGRESSION_THRESHOLD)
        flagged = sorted(np.flatnonzero(issues["is_label_issue"].to_numpy()), key=lambda i: quality[i])
        return 1.0 - quality, [int(i) for i in flagged]

    def given(self, record: ImageRecord) -> Any:
        return record.value

    def suggested(self, labels: list[str], targets: np.ndarray, predictions: np.ndarray, i: int) -> Any:
        return round(float(predictions[i]), 6)

    def reason(self, labels: list[str], record: ImageRecord, targets: np.ndarray, predictions: np.ndarray,
               i: int) -> str:
        return _("Given {given}, a model that never saw this image predicts {guess}.").format(
            given=number(targets[i]), guess=number(predictions[i]))

    def headline(self, labels: list[str], record: ImageRecord, suggestion: Any) -> str:
        return _("Given {given}, looks like {guess}").format(given=number(record.value), guess=number(suggestion))


AUDITS: dict[str, TaskAudit] = {"single": SingleAudit(), "multi": MultiAudit(), "regression": ValueAudit()}
