"""Calibrated confidence and "not sure": temperature scaling, expected calibration error, abstention.

Temperature scaling (Guo et al., 2017) divides the logits by one number T fitted on held-out images; the
predicted class never changes, only how sure the model says it is. Validation log-probabilities are enough,
since softmax(log p / T) == softmax(logits / T).
"""
from __future__ import annotations

from typing import Any

import numpy as np
from scipy.optimize import minimize_scalar
from scipy.special import log_softmax, softmax
from sklearn.model_selection import KFold

BINS = 10
TARGET_ACCURACY = 0.95
LOG_T_RANGE = (-1.5, 3.0)  # T between 0.22 and 20
# A Gaussian prior on log T (MAP, not maximum likelihood): ten validation images without a mistake would
# otherwise drive T towards 0 and every answer to "100% sure". Its weight fades as validation grows.
PRIOR_SD = 0.5


def log_probabilities(probabilities: np.ndarray) -> np.ndarray:
    return np.log(np.clip(probabilities, 1e-12, 1.0))


def apply_temperature(log_probs: np.ndarray, temperature: float) -> np.ndarray:
    return softmax(log_probs / temperature, axis=1)


def fit_temperature(log_probs: np.ndarray, targets: np.ndarray) -> float:
    """The T that minimises the negative log-likelihood of the true classes (1.0 when there is nothing to fit)."""
    if len(targets) == 0:
        return 1.0

    def nll(log_t: float) -> float:
        likelihood = log_softmax(log_probs / np.exp(log_t), axis=1)[np.arange(len(targets)), targets].mean()
        return -float(likelihood) + log_t ** 2 / (2 * PRIOR_SD ** 2 * len(targets))

    return float(np.exp(minimize_scalar(nll, bounds=LOG_T_RANGE, method="bounded").x))


def reliability(probabilities: np.ndarray, targets: np.ndarray, bins: int = BINS) -> list[dict[str, float]]:
    """Per confidence bin: mean confidence, accuracy and image count (empty bins left out)."""
    confidence, correct = probabilities.max(1), probabilities.argmax(1) == targets
    which = np.minimum((confidence * bins).astype(int), bins - 1)
    return [{"confidence": float(confidence[which == b].mean()), "accuracy": float(correct[which == b].mean()),
             "count": int((which == b).sum())} for b in range(bins) if (which == b).any()]


def ece(probabilities: np.ndarray, targets: np.ndarray, bins: int = BINS) -> float:
    """Expected calibration error: the image-weighted gap between confidence and accuracy per bin."""
    rows, n = reliability(probabilities, targets, bins), max(len(targets), 1)
    return float(sum(r["count"] / n * abs(r["confidence"] - r["accuracy"]) for r in rows))


def cross_fitted(log_probs: np.ndarray, targets: np.ndarray, folds: int = 5, seed: int = 0) -> np.ndarray:
    """Calibrated probabilities where each image's T was fitted without it: an honest 'after' measurement."""
    if len(targets) < 2 * folds:
        folds = max(2, len(targets) // 2)
    if len(targets) < 4:
        return apply_temperature(log_probs, fit_temperature(log_probs, targets))
    out = np.zeros_like(log_probs)
    for fit_part, held_out in KFold(folds, shuffle=True, random_state=seed).split(log_probs):
        out[held_out] = apply_temperature(log_probs[held_out], fit_temperature(log_probs[fit_part], targets[fit_part]))
    return out


def coverage_curve(probabilities: np.ndarray, targets: np.ndarray) -> list[dict[str, float]]:
    """For each confidence threshold: the share of images answered and the accuracy on those."""
    confidence, correct = probabilities.max(1), probabilities.argmax(1) == targets
    order = np.argsort(-confidence, kind="stable")
    hits = np.cumsum(correct[order])
    return [{"threshold": float(confidence[order[i]]), "coverage": (i + 1) / len(targets),
             "accuracy": float(hits[i] / (i + 1))} for i in range(len(targets))]


def choose_threshold(probabilities: np.ndarray, targets: np.ndarray,
                     target: float = TARGET_ACCURACY) -> dict[str, Any]:
    """The lowest confidence threshold at which the answered images reach the target accuracy (the most
    answered); when no threshold reaches it, every answer is marked not sure (threshold 1.0)."""
    curve = coverage_curve(probabilities, targets)
    reaching = [point for point in curve if point["accuracy"] >= target]
    best = max(reaching, key=lambda p: p["coverage"]) if reaching else None
    threshold = best["threshold"] if best else 1.0
    return {"target_accuracy": target, "threshold": threshold, "coverage": best["coverage"] if best else 0.0,
            "accuracy": best["accuracy"] if best else None, "curve": _thin(curve)}


def _thin(curve: list[dict[str, float]], points: int = 200) -> list[dict[str, float]]:
    """At most `points` points: evaluation.json stays small on large validation sets."""
    step = max(1, len(curve) // points)
    return [{k: round(v, 4) for k, v in p.items()} for p in curve[::step]]


def calibrate(probabilities: np.ndarray, targets: np.ndarray, target: float = TARGET_ACCURACY) -> dict[str, Any]:
    """Everything the run stores: temperature, ECE before and after, reliability bins, abstention."""
    log_probs = log_probabilities(probabilities)
    temperature = fit_temperature(log_probs, targets)
    honest = cross_fitted(log_probs, targets)
    calibrated = apply_temperature(log_probs, temperature)
    return {"temperature": temperature, "ece_before": ece(probabilities, targets), "ece_after": ece(honest, targets),
            "bins_before": reliability(probabilities, targets), "bins_after": reliability(honest, targets),
            "abstention": choose_threshold(calibrated, targets, target)}
