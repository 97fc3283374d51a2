"""How many more labels the model is likely to need: a learning curve on what is labelled so far.

Cross-validated accuracy of the Label page's head at growing numbers of labels, a power law fitted to its error
(error = scale * labels^-rate, the usual shape of learning curves: Cortes et al. 1994, Hestness et al. 2017), and
a bootstrap over the cross-validation splits for the uncertainty: "about 40 more labels (between 25 and 70) to
reach 90%", or "cannot tell yet" while the curve is too short, too noisy or too flat to extrapolate.
The labels an expert gives in active-learning order are not a random sample, so the estimate leans pessimistic:
later labels, chosen where the head is unsure, teach more than the random subsets the curve is measured on.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.model_selection import RepeatedStratifiedKFold

from core.i18n import _, ngettext, percent
from core.labelling import suggest

TARGETS = (0.8, 0.9, 0.95, 0.98, 0.99)
MIN_LABELS, MIN_PER_CLASS = 12, 3  # below these a cross-validated curve is noise
SIZES, FOLDS, REPEATS, BOOTSTRAPS = 5, 5, 2, 200
INTERVAL = (10, 90)  # an 80% interval: wide enough to be honest, narrow enough to plan with
MAX_FACTOR = 10  # an answer beyond 10x the labels so far is extrapolation too far to call a number
Z80 = 1.2816  # the normal quantile of an 80% two-sided interval
MIN_RATE = 0.05  # error falling slower than labels^-0.05: the curve is flat


@dataclass(frozen=True)
class CurveEstimate:
    labelled: int
    accuracy: float | None  # cross-validated accuracy with the labels so far (None: too few to measure)
    target: float | None
    more: int | None  # labels still needed, the bootstrap median (None: cannot tell)
    low: int | None
    high: int | None
    points: tuple[tuple[int, float], ...] = ()  # (labels, cross-validated accuracy): the measured curve
    accuracy_range: tuple[float, float] | None = None  # an 80% interval for the accuracy so far

    def sentence(self) -> str:
        """What the curve says, in one or two sentences of the reader's language."""
        if self.accuracy is None or self.target is None:
            return _("Cannot tell yet how many more labels the model needs: label at least {per_class} images of every "
                     "class ({total} in all) first.").format(per_class=MIN_PER_CLASS, total=MIN_LABELS)
        bottom, top = self.accuracy_range or (self.accuracy, self.accuracy)
        now = _("Cross-validated accuracy with these {count} labels: about {accuracy} (between {low} and {high}).").format(
            count=self.labelled, accuracy=percent(self.accuracy), low=percent(bottom), high=percent(top))
        target = percent(self.target)
        if bottom >= self.target:
            return _("{now} It has reached {target}.").format(now=now, target=target)
        if self.accuracy >= self.target:
            return _("{now} It may have reached {target}: too few labels to be sure yet.").format(now=now, target=target)
        if self.more is None or self.low is None:
            return _("{now} Cannot tell yet how many more labels it needs to reach {target}.").format(now=now, target=target)
        if self.high is None:  # the bootstrap's upper end is out of reach: say what is known, the rest honestly
            if self.low:
                return _("{now} Perhaps about {more} more labels to reach {target} (at least {least}); too early to say "
                         "how many at most.").format(now=now, more=self.more, target=target, least=self.low)
            return _("{now} Perhaps about {more} more labels to reach {target}; too early to say how many at "
                     "most.").format(now=now, more=self.more, target=target)
        if self.more == 0:
            return _("{now} It should reach {target} with a few more labels.").format(now=now, target=target)
        return ngettext("{now} About {count} more label (between {low} and {high}) to reach {target}.",
                        "{now} About {count} more labels (between {low} and {high}) to reach {target}.",
                        self.more).format(now=now, count=self.more, low=self.low, high=self.high, target=target)


def estimate(features: np.ndarray, labels: list[str], target: float | None = None, seed: int = 0) -> CurveEstimate:
    """The learning curve of the labelled images' features, and the labels still needed to reach `target`
    (default: the next of TARGETS above the accuracy so far)."""
    y = np.asarray(labels)
    counts = np.unique(y, return_counts=True)[1] if len(y) else np.array([])
    if len(y) < MIN_LABELS or len(counts) < 2 or counts.min() < MIN_PER_CLASS:
        return CurveEstimate(len(y), None, target, None, None, None)
    sizes, accuracies = learning_curve(features, y, seed)
    # the last size trains on (folds-1)/folds of the labels: the curve's value there is the accuracy so far
    accuracy = float(accuracies[-1].mean())
    target = target if target is not None else next((t for t in TARGETS if t > accuracy + 0.005), TARGETS[-1])
    points = tuple((int(s), round(float(a), 4)) for s, a in zip(sizes, accuracies.mean(axis=1)))
    bounds = wilson(accuracy, len(y))
    if accuracy >= target:  # reached, or maybe: no count of labels to give either way
        return CurveEstimate(len(y), accuracy, target, None, None, None, points, bounds)
    more, low, high = extrapolate(sizes, accuracies, target, len(y), seed, level_sd(accuracy, len(y)))
    return CurveEstimate(len(y), accuracy, target, more, low, high, points, bounds)


def wilson(accuracy: float, n: int, z: float = Z80) -> tuple[float, float]:
    """Wilson's interval for an accuracy measured on n images: every labelled image is held out once per repeat,
    so n is the number of labels. With 22 labels it spans about 15 points: the curve's level is that uncertain
    (on hymenoptera photos, cross-validated accuracy at 22 labels was 9 points from the held-out one, sd)."""
    centre = (accuracy + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(accuracy * (1 - accuracy) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return round(float(max(0.0, centre - half)), 4), round(float(min(1.0, centre + half)), 4)


def level_sd(accuracy: float, n: int) -> float:
    """How far the whole curve may sit from the truth: which images happen to be labelled moves every point of
    it together, which resampling the splits of those same images cannot show."""
    smoothed = (accuracy * n + 1) / (n + 2)
    return float(np.sqrt(smoothed * (1 - smoothed) / n))


def learning_curve(features: np.ndarray, y: np.ndarray, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Accuracy on each held-out fold of a head trained on growing random parts of the other folds:
    (sizes,) label counts and a (sizes, splits) matrix of accuracies."""
    folds = int(min(FOLDS, np.unique(y, return_counts=True)[1].min()))
    splitter = RepeatedStratifiedKFold(n_splits=folds, n_repeats=REPEATS, random_state=seed)
    largest = len(y) * (folds - 1) // folds
    smallest = min(largest, max(2 * len(np.unique(y)), largest // 4))
    sizes = np.unique(np.geomspace(smallest, largest, SIZES).round().astype(int))
    rng = np.random.default_rng(seed)
    columns = []
    for train, test in splitter.split(features, y):
        order = rng.permutation(train)
        columns.append([_accuracy(features, y, order[:m], test, seed) for m in sizes])
    return sizes, np.array(columns).T


def extrapolate(sizes: np.ndarray, accuracies: np.ndarray, target: float, labelled: int, seed: int = 0,
                level: float = 0.0) -> tuple[int | None, int | None, int | None]:
    """Labels still needed to reach `target` (median, low, high), from power laws fitted to bootstrap
    resamples of the splits (the columns of `accuracies`), each curve shifted as a whole by a draw of sd `level`.
    None where the answer is out of reach or too far."""
    rng = np.random.default_rng(seed)
    needed = []
    for _draw in range(BOOTSTRAPS):
        columns = rng.integers(0, accuracies.shape[1], accuracies.shape[1])
        shifted = np.clip(accuracies[:, columns].mean(axis=1) + rng.normal(0.0, level), 0.0, 1.0)
        needed.append(labels_for(sizes, shifted, target))
    # inf (never reaches it) sorts above every number; a finite stand-in keeps percentiles defined
    needed = np.minimum(np.array(needed), 1e12)
    median, low, high = np.percentile(needed, [50, *INTERVAL])
    cap = MAX_FACTOR * max(labelled, 1)

    def more(value: float) -> int | None:
        return None if value > cap else max(0, int(np.ceil(value)) - labelled)

    return more(median), more(low), more(high)


def labels_for(sizes: np.ndarray, accuracy: np.ndarray, target: float) -> float:
    """Labels at which the power law fitted to (sizes, accuracy) reaches `target`; inf where it never does.

    error = scale * labels^-rate, a straight line in log-log fitted by least squares weighted by the labels (larger
    sizes are measured on the same folds with less noise). Two parameters, not three: with five noisy points a
    floor term is not identifiable, and fits with one swung from tens to millions of labels on synthetic curves.
    Without a floor the law is optimistic where accuracy levels off below the target; MAX_FACTOR bounds that."""
    error = np.clip(1.0 - np.asarray(accuracy, dtype=np.float64), 1e-3, None)
    goal = 1.0 - target
    if error[-1] <= goal:
        return float(sizes[-1])
    if len(sizes) < 2:
        return float("inf")
    slope, intercept = np.polyfit(np.log(sizes), np.log(error), 1, w=np.sqrt(sizes))
    if -slope < MIN_RATE:  # flat or rising: more labels of this kind do not help the head measurably
        return float("inf")
    return float(np.exp((intercept - np.log(goal)) / -slope))


def _accuracy(features: np.ndarray, y: np.ndarray, train: np.ndarray, test: np.ndarray, seed: int) -> float:
    classes = np.unique(y[train])
    if len(classes) < 2:  # a head cannot be fitted on one class: it would answer that class for everything
        return float(np.mean(y[test] == classes[0]))
    head = suggest.fit_head(features[train], y[train].tolist(), seed)
    return float(np.mean(head.predict(suggest._normalised(features[test])) == y[test]))
