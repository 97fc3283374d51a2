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

Cold start (fewer than COLD_START labels in some class; tags and values: see core.labelling.heads): typical images
of groups nobody has labelled yet. After that: images the task's head is unsure about, spread over the collection,
never two near-identical ones.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

from core.data.store import DatasetStore, Version
from core.i18n import _
from core.labelling import curve, heads, select, suggest
from core.models.features import FeatureCache

BATCH = 12
MAX_BATCH = 100
COLD_START = heads.COLD_START


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
    (one label per image only, and unless more than `curve_up_to` images are labelled)."""
    labelled = labelled_answers(version)
    pool = sorted(version.pool())
    features = suggest.embed(store, [d for d, _ in labelled] + pool, cache, image_size)
    labels = [label for _, label in labelled]
    with threadpool_limits(limits=1):  # as in the audit: small matrices on a busy server, threads only contend
        wanted = heads.of(version.task).curve and (curve_up_to is None or len(labelled) <= curve_up_to)
        estimate = curve.estimate(features[:len(labelled)], labels, seed=seed) if wanted else None
        if not pool:
            return Proposal([], [], _("Every image is labelled: nothing left to propose."), "done", estimate)
        chosen = choose(features, labels, version.classes, batch, seed, version.task)
    digests = [pool[p.index] for p in chosen.picks]
    if chosen.stage == "typical":
        reasons = [typical_reason(p.group_size) for p in chosen.picks]
        captions = [_("typical of {count}").format(count=p.group_size) if p.group_size > 1 else _("unlike the rest")
                    for p in chosen.picks]
        why = _("Few labels yet: these are typical images of groups of similar images that have no label, "
                "so each label teaches the model about a whole group.")
        return Proposal(digests, reasons, why, "typical", estimate, captions)
    explained = [chosen.guesses.explain(p.index) for p in chosen.picks]
    guessed = chosen.guesses.suggestions(pool)
    why = _("The model is least sure about these images, and they differ from each other, "
            "so each label corrects a different mistake.")
    return Proposal(digests, [r for r, _ in explained], why, "uncertain", estimate, [c for _, c in explained],
                    {guessed[p.index].digest: guessed[p.index] for p in chosen.picks})


def labels_still_needed(store: DatasetStore, version: Version, cache: FeatureCache, image_size: int | None = None,
                        seed: int = 0) -> curve.CurveEstimate:
    """The learning curve alone, as next_to_label computes it."""
    labelled = labelled_answers(version)
    features = suggest.embed(store, [d for d, _ in labelled], cache, image_size)
    with threadpool_limits(limits=1):
        return curve.estimate(features, [label for _, label in labelled], seed=seed)


def labelled_answers(version: Version) -> list[tuple[str, Any]]:
    """(hash, answer) of every labelled image, in hash order (an image tagged 'none of them' is labelled)."""
    return [(d, e["label"]) for d, e in sorted(version.images.items()) if e["label"] is not None]


def ready_for_suggestions(version: Version) -> tuple[bool, str]:
    """Whether the task's head can make suggestions yet, and if not, what is missing (a sentence for the user)."""
    return heads.of(version.task).ready(version.classes, [label for _, label in labelled_answers(version)])


def suggestions_for(store: DatasetStore, version: Version, cache: FeatureCache,
                    image_size: int | None = None) -> list[suggest.Suggestion]:
    """The whole round the page runs after each batch of labels: features (cached), the task's head, a
    suggestion for every pool image."""
    if not ready_for_suggestions(version)[0]:
        return []
    labelled = labelled_answers(version)
    pool = sorted(version.pool())
    if not pool:
        return []
    features = suggest.embed(store, [d for d, _ in labelled] + pool, cache, image_size)
    with threadpool_limits(limits=1):
        guesses = heads.of(version.task).guess(features[:len(labelled)], [a for _, a in labelled],
                                               features[len(labelled):], version.classes)
    return guesses.suggestions(pool)


@dataclass(frozen=True)
class Choice:
    picks: list[select.Pick]  # rows of the pool, in the order to label them
    stage: str
    guesses: heads.Guesses | None = None  # the task's head on the pool (not in the cold start)


def choose(features: np.ndarray, labels: list[Any], classes: list[str], batch: int, seed: int = 0,
           task: str = "single") -> Choice:
    """The selection itself, on arrays (the bench runs exactly this): `features` holds the labelled rows first
    (one per answer in `labels`), then the pool's; the task's head says how unsure it is about each."""
    batch = max(1, min(int(batch), MAX_BATCH))
    space = select.geometry(features, seed=seed)
    in_labelled, in_pool = space[:len(labels)], space[len(labels):]
    head = heads.of(task)
    if not head.ready(classes, labels)[0]:
        return Choice(select.typical_diverse(in_pool, in_labelled, batch, seed), "typical")
    guesses = head.guess(features[:len(labels)], labels, features[len(labels):], classes, seed)
    picks = select.uncertain_diverse(in_pool, guesses.unsure, in_labelled, batch, seed)
    return Choice(picks, "uncertain", guesses)


def cold_start(classes: list[str], labels: list[Any], task: str = "single") -> bool:
    """Too few labels (for one label per image: in some class, or fewer than two classes labelled) for a head's
    doubts to mean much."""
    return not heads.of(task).ready(classes, labels)[0]


def typical_reason(group_size: int) -> str:
    if group_size > 1:
        return _("Typical of a group of {count} similar images that has no label yet.").format(count=group_size)
    return _("Unlike every other image here: no group of similar images stands for it.")
