"""A number per image (a score: severity, ripeness, coverage, a count): one output, a robust loss on the
standardised error, MAE, RMSE and R² with bootstrap intervals, and a conformal interval with every answer
("6.2, between 5.1 and 7.4, 90% coverage")."""
from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from core.data.report import ImageRecord
from core.i18n import N_, _, percent
from core.stats import conformal, intervals
from core.tasks.base import Evaluation, Measure, Task


class ScaledLinear(nn.Linear):
    """A linear layer that learns the standardised value and answers in the user's units: output = mean + std * z.
    The mean and spread of the training values are buffers, so they travel with the weights (run folder, export)."""

    def __init__(self, in_features: int, out_features: int = 1) -> None:
        super().__init__(in_features, out_features)
        self.register_buffer("mean", torch.zeros(out_features))
        self.register_buffer("std", torch.ones(out_features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x) * self.std + self.mean


class _StandardisedHuber(nn.Module):
    """Huber loss on the error in standard deviations of the training values: scale-free, and one wild label
    pulls less than with a squared error."""

    def __init__(self, std: float) -> None:
        super().__init__()
        self.std = max(std, 1e-6)

    def forward(self, predicted: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return nn.functional.huber_loss(predicted.squeeze(1) / self.std, target / self.std, delta=1.0)


class Regression(Task):
    name = "regression"
    title = N_("a number per image (a score)")
    score_name = "R²"
    measures = (Measure("mae", N_("Typical error"), N_("Mean absolute error: how far the model's number is from the true "
                        "one on average, in your units."), percent=False),
                Measure("rmse", N_("Error, large ones weighed more"), N_("Root mean squared error: like the typical error, "
                        "but a few large misses raise it a lot."), percent=False),
                Measure("r2", N_("Explained variation (R²)"), N_("1 is perfect; 0 is no better than always answering the "
                        "average; below 0 is worse than that."), percent=False))
    figures = ("scatter",)
    mistakes_title = N_("Largest errors")
    backbone_advice = False
    heatmap_note = N_("For a number, the heatmap shows what moved the answer away from the average of the training "
                    "values: what pushed it up for a high answer, what pulled it down for a low one.")
    python_example = 'print(result["value"], result.get("interval"), result["unsure"])'
    monitor = "values"
    truth = "value"

    def verdict(self, answer: dict[str, Any], guess: bool = False) -> str:
        found = f"{answer['value']:.3g}"
        if answer.get("interval") and answer.get("coverage"):
            low, high = answer["interval"]
            return _("{value} (between {low} and {high}: such ranges hold the true value {coverage} of the "
                     "time)").format(value=found, low=f"{low:.3g}", high=f"{high:.3g}",
                                     coverage=percent(answer["coverage"]))
        return found

    def describe(self, prediction: dict[str, Any]) -> str:
        return _("true: {true} · predicted: {predicted} (off by {error})").format(
            true=f"{float(prediction['true']):.3g}", predicted=f"{float(prediction['predicted']):.3g}",
            error=f"{float(prediction['error']):.2g}")

    def outputs(self, labels: list[str]) -> int:
        return 1

    def targets(self, records: list[ImageRecord], labels: list[str]) -> torch.Tensor:
        return torch.tensor([float(r.value) for r in records], dtype=torch.float32)

    def adapt_head(self, model: nn.Module) -> None:
        last = model.head[-1]
        if not isinstance(last, ScaledLinear):
            scaled = ScaledLinear(last.in_features)
            scaled.load_state_dict(last.state_dict(), strict=False)
            model.head[-1] = scaled

    def criterion(self, train_targets: torch.Tensor) -> nn.Module:
        return _StandardisedHuber(float(train_targets.std()) if len(train_targets) > 1 else 1.0)

    def prepare_head(self, linear: nn.Linear, train_targets: torch.Tensor) -> None:
        std = float(train_targets.std()) if len(train_targets) > 1 else 1.0
        linear.mean.fill_(float(train_targets.mean()) if len(train_targets) else 0.0)
        linear.std.fill_(max(std, 1e-6))

    def batch_score(self, logits: torch.Tensor, targets: torch.Tensor, criterion: nn.Module) -> float:
        """1 - (error / spread of the training values)² summed: its mean over an epoch is about R², higher is
        better like the other tasks' scores."""
        return float((1.0 - ((logits.squeeze(1) - targets) / criterion.std) ** 2).sum())

    def answers(self, logits: torch.Tensor) -> torch.Tensor:
        return logits.float().reshape(-1, 1)

    def evaluate(self, labels: list[str], records: list[ImageRecord], answers: torch.Tensor) -> Evaluation:
        truth = self.targets(records, labels).numpy().astype(float)
        predicted = answers.float().numpy().reshape(-1).astype(float)
        n = len(truth)
        if not n:
            return Evaluation(self.name, labels, 0, dict.fromkeys(("mae", "rmse", "r2")))
        metrics = _metrics(truth, predicted, np.arange(n))
        spread = intervals.bootstrap(lambda idx: tuple(_metrics(truth, predicted, idx).values()), n)
        found = dict(zip(metrics, spread))
        notes = [] if n >= 30 else [f"With {n} validation images, these errors could be quite different on new "
                                    "images: see the intervals."]
        errors = np.abs(truth - predicted)
        preds = [{"path": r.path, "sha256": r.sha256, "true": round(float(t), 6), "predicted": round(float(p), 6),
                  "error": round(float(e), 6), "correct": bool(e <= metrics["mae"])}
                 for r, t, p, e in zip(records, truth, predicted, errors)]
        return Evaluation(self.name, labels, n, metrics, found, notes, [], [], preds)

    def calibrate(self, answers: np.ndarray, targets: np.ndarray) -> dict[str, Any]:
        coverage = conformal.DEFAULT_COVERAGE
        scores = conformal.residual_scores(answers.reshape(-1), targets.astype(float))
        width = conformal.conformal_quantile(scores, coverage)
        measured = conformal.cross_fitted_coverage(scores, coverage, lambda idx, q: scores[idx] <= q)
        known = bool(np.isfinite(width))
        report = {"coverage": coverage, "half_width": width if known else None, "measured_coverage": measured,
                  "images": int(len(targets))}
        predict = {"coverage": coverage, "half_width": width if known else None, "scores": conformal.kept_scores(scores)}
        return {"predict": predict, "report": {"conformal": report}}

    def answer(self, answers: torch.Tensor, labels: list[str], trust: dict[str, Any], top_k: int,
               coverage: float | None = None) -> list[dict[str, Any]]:
        width, rate = conformal.stored_quantile(trust, "", coverage)
        out = []
        for value in answers.float().numpy().reshape(-1):
            answer: dict[str, Any] = {"predictions": [], "value": round(float(value), 6), "unsure": width is None}
            if width is not None:
                low, high = conformal.interval(float(value), float(width))
                answer.update(interval=[round(low, 6), round(high, 6)], coverage=rate)
            out.append(answer)
        return out

    def uncertainty(self, answers: np.ndarray) -> np.ndarray:
        """One value per image says nothing of its own uncertainty: the Label page measures it with an ensemble
        of heads on the features instead (core.labelling); here every image counts the same."""
        return np.zeros(len(answers))


def _metrics(truth: np.ndarray, predicted: np.ndarray, idx: np.ndarray) -> dict[str, float]:
    t, p = truth[idx], predicted[idx]
    error = t - p
    spread = float(((t - t.mean()) ** 2).sum())
    return {"mae": float(np.abs(error).mean()), "rmse": float(np.sqrt((error ** 2).mean())),
            "r2": 1.0 - float((error ** 2).sum()) / spread if spread > 0 else float("nan")}
