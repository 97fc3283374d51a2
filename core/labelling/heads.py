"""The Label page's quick model for each task, on cached backbone features: when it can start, what it suggests
for each unlabelled image, how unsure it is (core.labelling.uncertainty) and why, in a sentence.

One entry per task name (the same names as core.tasks and core.data.answers): one label per image gets a
logistic-regression head and the margin; tags get one logistic head per tag, thresholds chosen on held-out
answers as the trained model's are (core.tasks.multi.best_thresholds), and the mean closeness to a coin toss;
values get bootstrap ridge heads, their mean as the guess and their disagreement as the doubt.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, Callable, ClassVar

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import KFold

from core.data import answers as stored_answers
from core.i18n import _, ngettext, percent
from core.labelling import uncertainty
from core.labelling.suggest import Suggestion, _normalised, fit_head
from core.tasks.multi import best_thresholds

COLD_START = 3  # labels below which typical images teach more than unsure ones (see bench/active_learning)
HESITATES = 0.15  # a runner-up at least this likely: the head hesitates between two classes
THRESHOLD_FOLDS, THRESHOLDS_FROM = 3, 12  # tagged images from which a tag's threshold is chosen on held-out ones
NEAR_COIN_TOSS = 0.25  # a tag whose probability is this close to 50%: the head is unsure about it


@dataclass(frozen=True)
class Guesses:
    """The head's guess for each pool image (rows in pool order), and how it explains one."""
    answers: list[Any]  # each in its stored form (core.data.answers): a class, a list of tags, a number
    texts: list[str]
    confidence: np.ndarray  # (N,) how likely the whole guess is right, in [0, 1]: the surest first to accept
    unsure: np.ndarray  # (N,) the task's uncertainty in [0, 1]: what to label next
    explain: Callable[[int], tuple[str, str]]  # row -> (why it comes next, a few words for under its picture)

    def suggestions(self, digests: list[str]) -> list[Suggestion]:
        return [Suggestion(d, self.texts[i], float(self.confidence[i]), float(1.0 - self.unsure[i]),
                           self.answers[i]) for i, d in enumerate(digests)]


class Head(ABC):
    task: ClassVar[str]
    curve: ClassVar[bool] = False  # whether the learning curve (accuracy of one label per image) applies

    @abstractmethod
    def ready(self, classes: list[str], answers: list[Any]) -> tuple[bool, str]:
        """Whether the labels so far are enough for the head's doubts to mean something; if not, what is missing."""

    @abstractmethod
    def guess(self, labelled: np.ndarray, answers: list[Any], pool: np.ndarray, classes: list[str],
              seed: int = 0) -> Guesses:
        """Guesses for the `pool` rows from a head fitted on the `labelled` rows and their answers."""


class OneLabelHead(Head):
    task, curve = "single", True

    def ready(self, classes: list[str], answers: list[Any]) -> tuple[bool, str]:
        counts = {c: 0 for c in classes}
        for label in answers:
            counts[label] = counts.get(label, 0) + 1
        short = [label for label, n in counts.items() if n < COLD_START]
        if len([n for n in counts.values() if n]) < 2:
            return False, _("Label images of at least two classes to get suggestions.")
        if short:
            return False, ngettext("Suggestions start when every class has {per_class} labelled images; {count} class "
                                   "needs more.",
                                   "Suggestions start when every class has {per_class} labelled images; {count} classes "
                                   "need more.", len(short)).format(per_class=COLD_START, count=len(short))
        return True, ""

    def guess(self, labelled: np.ndarray, answers: list[Any], pool: np.ndarray, classes: list[str],
              seed: int = 0) -> Guesses:
        head = fit_head(labelled, answers, seed)
        p = head.predict_proba(_normalised(pool))
        names = [str(c) for c in head.classes_]
        best = [names[i] for i in p.argmax(axis=1)]
        return Guesses(best, best, p.max(axis=1), uncertainty.margin(p),
                       lambda i: (uncertain_reason(p[i], names), uncertain_caption(p[i], names)))


class TagsHead(Head):
    task = "multi"

    def ready(self, classes: list[str], answers: list[Any]) -> tuple[bool, str]:
        counts = {tag: sum(tag in tags for tags in answers) for tag in classes}
        if len(answers) < 2 * COLD_START or not any(COLD_START <= n <= len(answers) - COLD_START
                                                    for n in counts.values()):
            return False, _("Suggestions start once {count} images are tagged and a tag is on at least {least} of "
                            "them but not on {least} others.").format(count=2 * COLD_START, least=COLD_START)
        return True, ""

    def guess(self, labelled: np.ndarray, answers: list[Any], pool: np.ndarray, classes: list[str],
              seed: int = 0) -> Guesses:
        truth = np.array([[tag in tags for tag in classes] for tags in answers], dtype=bool).reshape(-1, len(classes))
        p = _tag_probabilities(_normalised(labelled), truth, _normalised(pool), seed)
        thresholds = _thresholds(_normalised(labelled), truth, seed)
        given = p >= thresholds
        guessed = [[classes[k] for k in np.flatnonzero(row)] for row in given]
        right = np.where(given, p, 1.0 - p).prod(axis=1)  # the chance the whole set is right, tags independent
        return Guesses(guessed, [stored_answers.of("multi").text(g) for g in guessed], right,
                       uncertainty.multi_label(p), lambda i: _tags_reason(p[i], classes, guessed[i]))


class ValueHead(Head):
    task = "regression"

    def ready(self, classes: list[str], answers: list[Any]) -> tuple[bool, str]:
        if len(answers) < 2 * COLD_START or len(set(answers)) < 2:
            return False, _("Suggestions start once {count} images have a value, not all the same one.").format(
                count=2 * COLD_START)
        return True, ""

    def guess(self, labelled: np.ndarray, answers: list[Any], pool: np.ndarray, classes: list[str],
              seed: int = 0) -> Guesses:
        values = np.asarray(answers, dtype=np.float64)
        ensemble = uncertainty.ridge_ensemble(_normalised(labelled), values, _normalised(pool), seed=seed)
        guess, (low, high) = ensemble.mean(axis=0), np.percentile(ensemble, [10, 90], axis=0)
        unsure = uncertainty.spread(ensemble, float(values.std()))
        texts = [_("about {value} ({low} to {high})").format(value=f"{v:.3g}", low=f"{a:.3g}", high=f"{b:.3g}")
                 for v, a, b in zip(guess, low, high)]
        # 1 - the heads' disagreement orders the guesses, but it is no chance of being right: the page shows ranges
        return Guesses([round(float(v), 6) for v in guess], texts, 1.0 - unsure, unsure,
                       lambda i: _value_reason(low[i], high[i]))


HEADS: dict[str, Head] = {head.task: head for head in (OneLabelHead(), TagsHead(), ValueHead())}


def of(task: str | None) -> Head:
    return HEADS[task or "single"]


def _value_reason(low: float, high: float) -> tuple[str, str]:
    shown = {"low": f"{low:.3g}", "high": f"{high:.3g}"}
    return (_("The model's guesses for it range from {low} to {high}, unlike anything else picked here.").format(**shown),
            _("{low} to {high}?").format(**shown))


def uncertain_reason(probabilities: np.ndarray, classes: list[str]) -> str:
    """Why an image comes next, in a sentence; the class names inside are the user's, never translated."""
    (first, p1), (second, p2) = _two_likeliest(probabilities, classes)
    if p2 >= HESITATES:
        return _("The model hesitates between {first} ({first_chance}) and {second} ({second_chance}), unlike "
                 "anything else picked here.").format(first=first, first_chance=percent(p1), second=second,
                                                      second_chance=percent(p2))
    return _("The model guesses {name} ({chance}) but has few labelled images like this one.").format(
        name=first, chance=percent(p1))


def uncertain_caption(probabilities: np.ndarray, classes: list[str]) -> str:
    (first, p1), (second, p2) = _two_likeliest(probabilities, classes)
    if p2 >= HESITATES:
        return _("{first} or {second}?").format(first=first, second=second)
    return _("maybe {name} ({chance})").format(name=first, chance=percent(p1))


def _two_likeliest(probabilities: np.ndarray, classes: list[str]) -> tuple[tuple[str, float], tuple[str, float]]:
    order = np.argsort(-probabilities, kind="stable")
    top = [(classes[i], float(probabilities[i])) for i in order[:2]]
    return top[0], top[1] if len(top) > 1 else ("", 0.0)


def _tag_probabilities(labelled: np.ndarray, truth: np.ndarray, pool: np.ndarray, seed: int) -> np.ndarray:
    """(pool, tags): one balanced logistic head per tag; a tag on every labelled image or on none says only how
    often it was given (smoothed, so it is never quite sure)."""
    out = np.empty((len(pool), truth.shape[1]))
    for k in range(truth.shape[1]):
        y = truth[:, k]
        if y.all() or not y.any():
            out[:, k] = (y.sum() + 1.0) / (len(y) + 2.0)
        else:
            head = LogisticRegression(max_iter=2000, C=10.0, class_weight="balanced", random_state=seed)
            out[:, k] = head.fit(labelled, y).predict_proba(pool)[:, 1]
    return out


def _thresholds(labelled: np.ndarray, truth: np.ndarray, seed: int) -> np.ndarray:
    """Per tag, the threshold with the best F1 on held-out tagged images (each fold's head never saw them); 0.5
    while too few images are tagged for that to mean anything."""
    if len(truth) < THRESHOLDS_FROM:
        return np.full(truth.shape[1], 0.5)
    held_out = np.empty(truth.shape, dtype=np.float64)
    for fit, rest in KFold(THRESHOLD_FOLDS, shuffle=True, random_state=seed).split(labelled):
        held_out[rest] = _tag_probabilities(labelled[fit], truth[fit], labelled[rest], seed)
    return best_thresholds(held_out, truth)


def _tags_reason(p: np.ndarray, classes: list[str], guessed: list[str]) -> tuple[str, str]:
    """In words, what made the image unsure (uncertainty.multi_label: tags near a coin toss), or its guess."""
    near = [k for k in np.argsort(np.abs(p - 0.5), kind="stable") if abs(p[k] - 0.5) < NEAR_COIN_TOSS]
    if near:
        listed = _(", ").join(_("{name} ({chance})").format(name=classes[k], chance=percent(p[k])) for k in near[:3])
        return (_("The model cannot tell whether these tags apply: {tags}.").format(tags=listed),
                " ".join(_("{name}?").format(name=classes[k]) for k in near[:2]))
    text = stored_answers.of("multi").text(guessed)
    return (_("The model guesses {tags} but has few tagged images like this one.").format(tags=text),
            _("maybe {tags}").format(tags=text))
