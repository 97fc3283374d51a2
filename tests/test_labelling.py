"""Model-assisted labelling on real shape images: groups, suggestions, uncertainty order, the feature cache."""
from __future__ import annotations

import hashlib
from collections import Counter
from pathlib import Path

import pytest

from core.data import intake
from core.data.store import DatasetStore, Edit
from core.labelling import propose
from core.labelling import suggest as labelling
from core.models.features import FeatureCache

SIZE = 96


@pytest.fixture(scope="module")
def pool(shapes_folder, tmp_path_factory):
    """The 36 shape images, all unlabelled, in a fresh store; plus the true class of each."""
    root = tmp_path_factory.mktemp("label-store")
    store = DatasetStore(root / "datasets")
    created = intake.new_pool(store, "shapes", [])
    files = [(p.name, p.read_bytes()) for p in sorted(Path(shapes_folder).rglob("*.jpg"))]
    added = intake.add_uploads(store, created.dataset, created.number, files, None, root / "work")
    truth = {hashlib.sha256(p.read_bytes()).hexdigest(): p.parent.name for p in Path(shapes_folder).rglob("*.jpg")}
    return store, added.version, truth, FeatureCache(root / "features")


def test_groups_gather_similar_images(pool):
    store, version, truth, cache = pool
    digests = version.pool()
    groups = labelling.group(labelling.embed(store, digests, cache, SIZE), 3)
    assert sorted(len(g) for g in groups) != [0, 0, 36] and sum(len(g) for g in groups) == 36
    purity = sum(Counter(truth[digests[i]] for i in g).most_common(1)[0][1] for g in groups) / 36
    assert purity >= 0.8  # a group is mostly one shape: labelling it at once is nearly right


def test_features_are_cached_by_content(pool, monkeypatch):
    store, version, _, cache = pool
    labelling.embed(store, version.pool(), cache, SIZE)

    def no_compute(*args, **kwargs):
        raise AssertionError("features were recomputed")

    monkeypatch.setattr(labelling, "_pooled", no_compute)
    assert labelling.embed(store, version.pool(), cache, SIZE).shape[0] == 36


def test_suggestions_start_at_three_labels_per_class_and_are_mostly_right(pool):
    store, version, truth, cache = pool
    by_class: dict[str, list[str]] = {}
    for digest in sorted(version.pool()):
        by_class.setdefault(truth[digest], []).append(digest)
    two_each = store.commit(version.dataset, version.number, Edit(set_label={
        d: label for label, ds in by_class.items() for d in ds[:2]}))
    ready, why = propose.ready_for_suggestions(two_each)
    assert not ready and "3 labelled images" in why
    assert propose.suggestions_for(store, two_each, cache, SIZE) == []
    three_each = store.commit(version.dataset, two_each.number, Edit(set_label={
        ds[2]: label for label, ds in by_class.items()}))
    suggestions = propose.suggestions_for(store, three_each, cache, SIZE)
    assert {s.digest for s in suggestions} == set(three_each.pool()) and len(suggestions) == 27
    assert sum(truth[s.digest] == s.label for s in suggestions) / 27 >= 0.8
    ordered = labelling.most_uncertain_first(suggestions)
    assert [s.margin for s in ordered] == sorted(s.margin for s in suggestions)
    sure = labelling.confident(suggestions, 0.5)
    assert all(s.confidence >= 0.5 for s in sure) and sure == sorted(sure, key=lambda s: -s.confidence)
    accepted = store.commit(version.dataset, three_each.number, Edit(set_label={s.digest: s.label for s in sure}))
    assert len(accepted.pool()) == 27 - len(sure) and accepted.changes["labelled"] == len(sure)


def test_next_to_label_starts_with_one_typical_image_of_each_shape_then_asks_where_the_head_hesitates(
        pool, shapes_folder, tmp_path):
    store, _, truth, cache = pool
    created = intake.new_pool(store, "shapes again", [])  # a dataset of its own: the tests above label theirs
    files = [(p.name, p.read_bytes()) for p in sorted(Path(shapes_folder).rglob("*.jpg"))]
    version = intake.add_uploads(store, created.dataset, created.number, files, None, tmp_path).version
    first = propose.next_to_label(store, version, cache, SIZE, batch=3)
    assert first.stage == "typical" and len(set(first.digests)) == 3 and set(first.digests) <= set(version.pool())
    # the grouping alone (the page's cold start before) hands over groups, not one image of each shape; a typical
    # image of each group is: three labels, three shapes
    assert sorted(truth[d] for d in first.digests) == ["circle", "square", "triangle"]
    assert all(r.startswith("Typical of a group of") for r in first.reasons)
    assert len(first.captions) == 3 and all(c.startswith("typical of") for c in first.captions)
    assert first.curve.accuracy is None and first.curve.sentence().startswith("Cannot tell yet")
    by_class: dict[str, list[str]] = {}
    for digest in sorted(version.pool()):
        by_class.setdefault(truth[digest], []).append(digest)
    labelled = store.commit(version.dataset, version.number, Edit(set_label={
        d: label for label, ds in by_class.items() for d in ds[:5]}))
    second = propose.next_to_label(store, labelled, cache, SIZE, batch=6)
    assert second.stage == "uncertain" and len(set(second.digests)) == 6
    assert set(second.digests) <= set(labelled.pool())
    assert all("The model" in r for r in second.reasons) and second.why
    assert set(second.suggestions) == set(second.digests)  # the head's guess for each, to show beside it
    assert len(second.captions) == 6 and all(c.endswith("?") or c.startswith("maybe") for c in second.captions)
    hesitant = [r for r in second.reasons if "hesitates between" in r]
    assert all(sum(shape in r for shape in ("circle", "square", "triangle")) == 2 for r in hesitant)
    assert second.curve.labelled == 15 and second.curve.accuracy is not None
    assert "15 labels" in second.curve.sentence()
    everything = store.commit(version.dataset, labelled.number, Edit(set_label={d: truth[d] for d in labelled.pool()}))
    done = propose.next_to_label(store, everything, cache, SIZE)
    assert done.stage == "done" and done.digests == [] and done.why
