"""Conformal answers hold the truth at the promised rate on new data from the same source."""
from __future__ import annotations

import numpy as np

from core.stats import conformal


def test_intervals_from_held_out_errors_cover_new_values_at_the_chosen_rate():
    rng = np.random.default_rng(0)
    covered = []
    for _ in range(200):  # many small calibration sets, as users have: the guarantee is on average over them
        truth = rng.normal(0, 1, 60)
        predicted = truth + rng.normal(0, 0.5, 60)
        width = conformal.conformal_quantile(conformal.residual_scores(predicted[:40], truth[:40]), 0.9)
        covered.append(np.mean(np.abs(truth[40:] - predicted[40:]) <= width))
    assert 0.87 <= np.mean(covered) <= 0.95


def test_prediction_sets_cover_the_true_class_and_grow_when_the_model_hesitates():
    rng = np.random.default_rng(1)
    n, classes = 2000, 4
    logits = rng.normal(0, 1.5, (n, classes))
    probabilities = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    truth = np.array([rng.choice(classes, p=p) for p in probabilities])  # a calibrated model
    q = conformal.conformal_quantile(conformal.class_scores(probabilities[:1000], truth[:1000]), 0.9)
    sets = conformal.prediction_sets(probabilities[1000:], q)
    assert 0.88 <= np.mean([t in s for t, s in zip(truth[1000:], sets)]) <= 0.92
    sure = np.array([[0.97, 0.01, 0.01, 0.01]])
    torn = np.array([[0.4, 0.38, 0.12, 0.1]])
    assert len(conformal.prediction_sets(sure, q)[0]) < len(conformal.prediction_sets(torn, q)[0])


def test_too_few_held_out_images_promise_nothing_instead_of_too_much():
    assert conformal.conformal_quantile(np.array([0.1, 0.2, 0.3]), 0.9) == float("inf")
    assert conformal.prediction_sets(np.array([[0.6, 0.3, 0.1]]), float("inf"))[0] == [0, 1, 2]


def test_cross_fitted_coverage_is_measured_on_parts_the_quantile_never_saw():
    rng = np.random.default_rng(2)
    scores = np.abs(rng.normal(0, 1, 300))
    measured = conformal.cross_fitted_coverage(scores, 0.9, lambda idx, q: scores[idx] <= q)
    assert 0.85 <= measured <= 0.95
    assert conformal.cross_fitted_coverage(scores[:5], 0.9, lambda idx, q: scores[idx] <= q) is None
