"""What to label next, on small synthetic feature arrays: typical picks, diverse unsure picks, the task
uncertainties, and the learning-curve estimate (tests/test_labelling.py runs the whole round on real images)."""
from __future__ import annotations

import numpy as np
import pytest

from core.labelling import curve, select, uncertainty
from core.labelling import suggest as labelling


def blobs(sizes: list[int], seed: int = 0, spread: float = 0.3, dims: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """Well-separated Gaussian groups of the given sizes: rows and the group of each."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 1, (len(sizes), dims)) * 4
    x = np.vstack([centres[g] + rng.normal(0, spread, (n, dims)) for g, n in enumerate(sizes)])
    return x, np.repeat(np.arange(len(sizes)), sizes)


def test_typical_picks_cover_every_group_once_and_skip_outliers():
    x, group = blobs([30, 25, 20, 15, 10])
    outliers = np.random.default_rng(1).normal(0, 1, (4, x.shape[1])) * 12  # far from every group
    pool = select.geometry(np.vstack([x, outliers]))  # the space the Label page selects in
    picks = select.typical_diverse(pool, np.zeros((0, pool.shape[1])), 5)
    assert len(picks) == 5 and all(p.index < len(x) for p in picks)  # no outlier: they are the least typical
    assert sorted(group[p.index] for p in picks) == [0, 1, 2, 3, 4]  # one image of each group
    for p in picks:  # each the most typical of its group: near its centre, not at its edge
        members = x[group == group[p.index]]
        distance = np.linalg.norm(members - members.mean(axis=0), axis=1)
        assert np.linalg.norm(x[p.index] - members.mean(axis=0)) <= np.percentile(distance, 50)
        assert p.kind == "typical"


def test_typical_picks_skip_groups_that_already_have_a_label():
    x, group = blobs([30, 25, 20, 15, 10])
    space = select.geometry(x)
    labelled = space[[0, 30]]  # one image of group 0 and one of group 1 are labelled already
    pool = np.delete(space, [0, 30], axis=0)
    pool_group = np.delete(group, [0, 30])
    picks = select.typical_diverse(pool, labelled, 3)
    assert sorted(pool_group[p.index] for p in picks) == [2, 3, 4]


def test_a_batch_never_holds_two_near_identical_picks():
    x, _ = blobs([40, 40, 40], seed=2)
    rng = np.random.default_rng(3)
    copies = x[0] + rng.normal(0, 1e-3, (15, x.shape[1]))  # 15 near-copies of one image (a burst of photos)
    pool = select.geometry(np.vstack([x, copies]))
    unsure = np.full(len(pool), 0.2)
    unsure[120:] = 1.0  # ...and the head is most unsure about exactly those: uncertainty-first takes them all
    unsure[0] = 1.0
    old_order = np.argsort(-unsure, kind="stable")[:8]
    assert sum(i == 0 or i >= 120 for i in old_order) == 8  # the order the page used before: all copies
    for seed in range(5):
        picks = [p.index for p in select.uncertain_diverse(pool, unsure, np.zeros((0, pool.shape[1])), 8, seed)]
        assert len(set(picks)) == 8
        assert sum(i == 0 or i >= 120 for i in picks) == 1  # one of the burst, then other unsure images
        radius = select.DUPLICATE * select.median_neighbour_distance(pool)
        pair = np.linalg.norm(pool[picks][:, None] - pool[picks][None], axis=2) + np.eye(8) * 1e9
        assert pair.min() > radius


def test_unsure_picks_come_from_the_most_uncertain_images_but_not_from_one_corner_of_them():
    x, group = blobs([60, 60, 60, 60], seed=4, spread=1.0)
    rng = np.random.default_rng(5)
    clump = x[120] + rng.normal(0, 0.3, (12, x.shape[1]))  # 12 similar images (not copies) in group 2...
    pool = select.geometry(np.vstack([x, clump]))
    group = np.r_[group, np.full(12, 2)]
    unsure = np.where(group >= 2, rng.uniform(0.8, 0.9, len(group)), 0.05)  # unsure about groups 2 and 3
    unsure[240:] = 0.99  # ...and most unsure about the clump: the old order takes the whole batch from it
    assert all(i >= 240 for i in np.argsort(-unsure, kind="stable")[:6])
    for seed in range(5):
        picks = [p.index for p in select.uncertain_diverse(pool, unsure, np.zeros((0, pool.shape[1])), 6, seed)]
        assert all(group[i] >= 2 for i in picks)  # never a sure image for diversity's sake
        assert sum(i >= 240 for i in picks) <= 3  # at most half the batch from the clump


def test_picks_avoid_near_copies_of_labelled_images():
    x, _ = blobs([50, 50], seed=5)
    pool = select.geometry(x)
    labelled = pool[:3] + 1e-4  # the three images the head is most unsure about already have labels (copies)
    unsure = np.full(len(pool), 0.3)
    unsure[:3] = 1.0
    picks = {p.index for p in select.uncertain_diverse(pool, unsure, labelled, 5)}
    assert not picks & {0, 1, 2}


def test_margin_orders_single_label_images_by_the_gap_between_the_two_likeliest():
    p = np.array([[0.98, 0.01, 0.01], [0.45, 0.44, 0.11], [0.6, 0.3, 0.1], [0.36, 0.33, 0.31]])
    assert np.argsort(-uncertainty.margin(p), kind="stable").tolist() == [1, 3, 2, 0]
    assert uncertainty.margin(np.array([[1.0, 0.0]]))[0] == 0 and uncertainty.margin(np.array([[0.5, 0.5]]))[0] == 1


def test_multi_label_uncertainty_is_closeness_of_each_sigmoid_to_one_half():
    p = np.array([[0.99, 0.01, 0.98],  # sure about every label
                  [0.5, 0.02, 0.97],  # unsure about one label
                  [0.5, 0.55, 0.45],  # unsure about all three
                  [0.8, 0.2, 0.9]])
    scores = uncertainty.multi_label(p)
    assert np.argsort(-scores).tolist() == [2, 1, 3, 0]
    assert scores.min() >= 0 and scores.max() <= 1
    assert uncertainty.multi_label(np.full((1, 4), 0.5))[0] == pytest.approx(1.0)


def test_regression_uncertainty_is_larger_where_the_labelled_values_leave_the_answer_open():
    rng = np.random.default_rng(6)
    labelled = rng.uniform(0, 1, (30, 3))  # labelled images only cover a small part of feature space
    values = labelled @ np.array([2.0, -1.0, 0.5]) + rng.normal(0, 0.1, 30)
    inside = rng.uniform(0.2, 0.8, (10, 3))
    far = rng.uniform(4, 6, (10, 3))  # ...these are far outside it: the bootstrap heads disagree there
    scores = uncertainty.regression(labelled, values, np.vstack([inside, far]), seed=0)
    assert scores[10:].min() > scores[:10].max()
    assert 0 <= scores.min() and scores.max() < 1
    ensemble = np.array([[1.0, 2.0, 3.0], [1.0, 2.5, 6.0], [1.0, 1.5, 0.0]])  # 3 heads, 3 images
    assert np.argsort(uncertainty.spread(ensemble, scale=1.0)).tolist() == [0, 1, 2]


def test_the_interval_for_labels_still_needed_contains_the_truth_on_a_synthetic_curve():
    floor, scale, rate = 0.0, 1.2, 0.5  # error = 1.2 * labels^-0.5: 90% accuracy at 144 labels
    truth = (scale / 0.1) ** (1 / rate)
    labelled, covered, answered = 120, 0, 0
    sizes = np.unique(np.geomspace(24, 96, 5).round().astype(int))
    for seed in range(20):  # accuracies as cross-validation measures them: 24 held-out images per split
        rng = np.random.default_rng(seed)
        accuracy = np.array([[rng.binomial(24, 1 - floor - scale * s ** -rate) / 24 for _ in range(10)]
                             for s in sizes])
        more, low, high = curve.extrapolate(sizes, accuracy, 0.9, labelled, seed)
        if high is not None:
            answered += 1
            covered += low <= truth - labelled <= high and low <= more <= high
    assert answered >= 15 and covered >= 0.7 * answered  # an 80% interval: right about 4 times in 5


def test_a_flat_curve_says_cannot_tell():
    sizes = np.array([10, 14, 20, 28, 40])
    flat = np.tile(np.array([[0.7], [0.71], [0.69], [0.7], [0.7]]), (1, 10))
    assert curve.extrapolate(sizes, flat, 0.9, 50) == (None, None, None)
    estimate = curve.CurveEstimate(50, 0.7, 0.9, None, None, None)
    assert estimate.sentence().endswith("Cannot tell yet how many more labels it needs to reach 90%.")
    open_ended = curve.CurveEstimate(50, 0.8, 0.9, 60, 17, None).sentence()  # only the low end is known
    assert "Perhaps about 60 more labels to reach 90% (at least 17); too early to say how many at most." in open_ended


def test_an_accuracy_above_the_target_on_few_labels_is_not_called_reached():
    low, high = curve.wilson(0.93, 22)  # 22 labels: the accuracy so far is known to about +-8 points
    assert low < 0.9 < 0.93 < high and high - low > 0.12
    maybe = curve.CurveEstimate(22, 0.93, 0.9, None, None, None, (), (low, high)).sentence()
    assert "about 93% (between" in maybe and "It may have reached 90%: too few labels to be sure yet." in maybe
    sure = curve.CurveEstimate(400, 0.93, 0.9, None, None, None, (), curve.wilson(0.93, 400)).sentence()
    assert sure.endswith("It has reached 90%.")


def gaussian_classes(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Two overlapping Gaussian classes in 32 dimensions."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 2
    direction = np.random.default_rng(0).normal(0, 1, 32)
    x = rng.normal(0, 1, (n, 32)) + np.outer(2 * y - 1, 1.4 * direction / np.linalg.norm(direction))
    return x, np.where(y == 1, "rose", "tulip")


def test_the_curve_is_measured_by_cross_validation_on_the_labels_so_far():
    x, y = gaussian_classes(2100, seed=7)
    estimate = curve.estimate(x[:100], y[:100].tolist())
    head = labelling.fit_head(x[:100], y[:100].tolist())
    unseen = float(np.mean(head.predict(labelling._normalised(x[100:])) == y[100:]))
    assert estimate.labelled == 100 and abs(estimate.accuracy - unseen) <= 0.06
    assert [m for m, _ in estimate.points][-1] == 80 and estimate.points[0][1] < estimate.points[-1][1]
    assert estimate.target == next(t for t in curve.TARGETS if t > estimate.accuracy)
    assert f"{estimate.accuracy:.0%}" in estimate.sentence()


def test_too_few_labels_cannot_tell_yet():
    x, y = gaussian_classes(10, seed=8)
    estimate = curve.estimate(x, y.tolist())
    assert estimate.accuracy is None and estimate.sentence().startswith("Cannot tell yet")
