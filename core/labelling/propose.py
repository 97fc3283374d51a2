"""What to label next, in one call for the Label page: the images, why each comes next, and how far there is to go.

    proposal = next_to_label(store, version, cache, image_size=160, batch=12)
    proposal.digests      # label these next, in this order
    proposal.reasons      # one plain sentence per image (class names inside are user data: escape them)
    proposal.captions     # a few words per image, for under its thumbnail ("bees or ants?", "typical of 95")
    proposal.why          # one sentence for the whole batch
    proposal.curve.sentence()  # "About 40 more labels (between 25 and 70) to reach 90%." or "Cannot tell yet..."

The learning curve fits 50 heads: with curve_up_to, it is left out (None) above that many labels, for the page
to compute on request with labels_still_needed() (17 s at 500 labels, 44 s at 2,000 of 1,280-wide features,
measured on 2 heavily shared cores).

Cold start (fewer than COLD_START labels in some class): typical images of groups nobody has labelled yet.
After that: images the head is unsure about, spread over the collection, never two near-identical ones.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from sklearn.linear_model import LogisticRegression
from threadpoolctl import threadpool_limits

from core.data.store import DatasetStore, Version
from core.labelling import curve, select, suggest, uncertainty
from core.models.features import FeatureCache

BATCH = 12
MAX_BATCH = 100
COLD_START = 3  # labels a class below which typical images teach more than unsure ones (see bench/active_learning)
HESITATES = 0.15  # a runner-up at least this likely: the head hesitates between two classes


@dataclass(frozen=True)
class Proposal:
    digests: list[str]
    reasons: list[str]
    why: str
    stage: str  # "typical" (cold start), "uncertain", or "done" (nothing left to label)
    curve: curve.CurveEstimate | None  # None: not computed (more labels than curve_up_to)
    captions: list[str] = field(default_factory=list)  # a few words per image, to draw under its thumbnail
    suggestions: dict[str, suggest.Suggestion] = field(default_factory=dict)  # the head's guesses (not cold start)


def next_to_label(store: DatasetStore, version: Version, cache: FeatureCache, image_size: int | None = None,
                  batch: int = BATCH, seed: int = 0, curve_up_to: int | None = None) -> Proposal:
    """The next `batch` images to label in `version`'s pool, each with the reason, and the learning curve
    (unless more than `curve_up_to` images are labelled)."""
    labelled = [(d, e["label"]) for d, e in sorted(version.images.items()) if e["label"] is not None]
    pool = sorted(version.pool())
    features = suggest.embed(store, [d for d, _ in labelled] + pool, cache, image_size)
    labels = [label for _, label in labelled]
    with threadpool_limits(limits=1):  # as in the audit: small matrices on a busy server, threads only contend
        wanted = curve_up_to is None or len(labelled) <= curve_up_to
        estimate = curve.estimate(features[:len(labelled)], labels, seed=seed) if wanted else None
        if not pool:
            return Proposal([], [], "Every image is labelled: nothing left to propose.", "done", estimate)
        chosen = choose(features, labels, version.classes, batch, seed)
    digests = [pool[p.index] for p in chosen.picks]
    if chosen.stage == "typical":
        reasons = [typical_reason(p.group_size) for p in chosen.picks]
        captions = [f"typical of {p.group_size}" if p.group_size > 1 else "unlike the rest" for p in chosen.picks]
        why = ("Few labels yet: these are typical images of groups of similar images that have no label, "
               "so each label teaches the model about a whole group.")
        return Proposal(digests, reasons, why, "typical", estimate, captions)
    classes = [str(c) for c in chosen.head.classes_]
    rows = [chosen.probabilities[p.index] for p in chosen.picks]
    guesses = suggest.suggest(chosen.head, features[len(labelled):][[p.index for p in chosen.picks]], digests)
    why = ("The model is least sure about these images, and they differ from each other, "
           "so each label corrects a different mistake.")
    return Proposal(digests, [uncertain_reason(r, classes) for r in rows], why, "uncertain", estimate,
                    [uncertain_caption(r, classes) for r in rows], {s.digest: s for s in guesses})


def labels_still_needed(store: DatasetStore, version: Version, cache: FeatureCache, image_size: int | None = None,
                        seed: int = 0) -> curve.CurveEstimate:
    """The learning curve alone, as next_to_label computes it."""
    labelled = [(d, e["label"]) for d, e in sorted(version.images.items()) if e["label"] is not None]
    features = suggest.embed(store, [d for d, _ in labelled], cache, image_size)
    with threadpool_limits(limits=1):
        return curve.estimate(features, [label for _, label in labelled], seed=seed)


@dataclass(frozen=True)
class Choice:
    picks: list[select.Pick]  # rows of the pool, in the order to label them
    stage: str
    head: LogisticRegression | None = None
    probabilities: np.ndarray | None = None  # the head's (pool, classes) probabilities


def choose(features: np.ndarray, labels: list[str], classes: list[str], batch: int, seed: int = 0) -> Choice:
    """The selection itself, on arrays (the bench runs exactly this): `features` holds the labelled rows first
    (one per label in `labels`), then the pool's."""
    batch = max(1, min(int(batch), MAX_BATCH))
    space = select.geometry(features, seed=seed)
    in_labelled, in_pool = space[:len(labels)], space[len(labels):]
    if cold_start(classes, labels):
        return Choice(select.typical_diverse(in_pool, in_labelled, batch, seed), "typical")
    head = suggest.fit_head(features[:len(labels)], labels, seed)
    probabilities = head.predict_proba(suggest._normalised(features[len(labels):]))
    # the task's uncertainty: a multi-label or regression task plugs uncertainty.multi_label / .regression in here
    picks = select.uncertain_diverse(in_pool, uncertainty.margin(probabilities), in_labelled, batch, seed)
    return Choice(picks, "uncertain", head, probabilities)


def cold_start(classes: list[str], labels: list[str]) -> bool:
    """Too few labels in some class (or fewer than two classes labelled) for a head's doubts to mean much."""
    counts = {c: 0 for c in classes}
    for label in labels:
        counts[label] = counts.get(label, 0) + 1
    used = [n for n in counts.values() if n]
    return len(used) < 2 or min(counts.values()) < COLD_START


def typical_reason(group_size: int) -> str:
    if group_size > 1:
        return f"Typical of a group of {group_size} similar images that has no label yet."
    return "Unlike every other image here: no group of similar images stands for it."


def uncertain_reason(probabilities: np.ndarray, classes: list[str]) -> str:
    (first, p1), (second, p2) = _two_likeliest(probabilities, classes)
    if p2 >= HESITATES:
        return (f"The model hesitates between {first} ({p1:.0%}) and {second} ({p2:.0%}), "
                "unlike anything else picked here.")
    return f"The model guesses {first} ({p1:.0%}) but has few labelled images like this one."


def uncertain_caption(probabilities: np.ndarray, classes: list[str]) -> str:
    (first, p1), (second, p2) = _two_likeliest(probabilities, classes)
    return f"{first} or {second}?" if p2 >= HESITATES else f"maybe {first} ({p1:.0%})"


def _two_likeliest(probabilities: np.ndarray, classes: list[str]) -> tuple[tuple[str, float], tuple[str, float]]:
    order = np.argsort(-probabilities, kind="stable")
    top = [(classes[i], float(probabilities[i])) for i in order[:2]]
    return top[0], top[1] if len(top) > 1 else ("", 0.0)
