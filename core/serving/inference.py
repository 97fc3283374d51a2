"""Predict with a finished run: load it once, then top-k for any number of images, with calibrated
probabilities and the run's "not sure" and "unknown input" flags (core.insight.trust stores them)."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import torch
from PIL import Image, ImageOps

from core import tasks
from core.data.preprocessing import load_rgb, to_rgb
from core.runs.folder import Run
from core.stats import neighbours

ImageInput = str | Path | IO[bytes] | Image.Image
# On a CPU, a batch of 4-8 images costs the least per image (measured with the default backbone on 2 cores: 12-18 ms
# at 4 and 8, 20-31 ms at 16, where activations outgrow the caches); larger batches run as consecutive chunks.
CPU_CHUNK = 8


@dataclass
class Prediction:
    """One image's answer: the top-k labels with probabilities, and whether to trust it.

    `unsure`: the top probability is below the run's abstention threshold ("Not sure: refer to a person").
    `unknown`: the image is unlike every training image (out-of-distribution score above the run's threshold).
    """
    top_k: list[dict[str, Any]]
    unsure: bool = False
    unknown: bool = False
    ood_score: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"predictions": self.top_k, **self.extra, "unsure": self.unsure, "unknown": self.unknown,
                "ood_score": self.ood_score}


class Predictor:
    """Holds one run's model in memory; `predict` uses the run's exact validation preprocessing."""

    def __init__(self, run_dir: Path, device: str = "cpu") -> None:
        self.run_dir = Path(run_dir)
        run = Run(self.run_dir)
        self.model, self.labels, self.preprocessing, self.config = run.load_model()
        self.task = tasks.get(self.config.task)
        self.device = torch.device(device)
        # channels_last: the convolutions' faster layout for inference on CPUs (oneDNN) as on GPUs
        self.model.to(self.device, memory_format=torch.channels_last)
        self.trust = run.calibration()  # what the task's answers need (temperature, thresholds)
        self.temperature = float(self.trust.get("temperature", 1.0))
        self.threshold = float(self.trust.get("threshold", 0.0))  # below it: "not sure"
        self.ood_threshold = (self.trust.get("ood") or {}).get("threshold")
        self.neighbours = run.ood_reference((self.trust.get("ood") or {}).get("k", neighbours.K))

    def tensor(self, image: ImageInput) -> torch.Tensor:
        """One image as the model's uint8 input (3, crop, crop)."""
        if isinstance(image, Image.Image):
            picture = to_rgb(ImageOps.exif_transpose(image))
        else:
            picture = load_rgb(image, min_size=self.preprocessing.resize_size)
        return self.preprocessing.to_uint8(picture)

    @torch.inference_mode()
    def forward(self, images: list[ImageInput]) -> tuple[torch.Tensor, torch.Tensor]:
        """(the task's answers before calibration, embeddings): the head's last layer reads the embedding."""
        chunk = CPU_CHUNK if self.device.type == "cpu" else len(images)
        parts = [self._forward_chunk(images[start:start + chunk]) for start in range(0, len(images), chunk)]
        return torch.cat([p for p, _ in parts]), torch.cat([e for _, e in parts])

    def _forward_chunk(self, images: list[ImageInput]) -> tuple[torch.Tensor, torch.Tensor]:
        batch = self.preprocessing.normalize(torch.stack([self.tensor(image) for image in images]).to(self.device))
        batch = batch.contiguous(memory_format=torch.channels_last)
        embedding = self.model.head[:-1](self.model.run_stages(batch))
        logits = self.model.head[-1](embedding).float()
        return self.task.answers(logits).cpu(), embedding.float().cpu()

    def probabilities(self, images: list[ImageInput]) -> torch.Tensor:
        """Calibrated class probabilities (single-label runs), every class, in label order."""
        answers, _ = self.forward(images)
        return (answers.clamp_min(1e-12).log() / self.temperature).softmax(1)

    def predict(self, images: list[ImageInput], top_k: int = 3) -> list[list[dict[str, Any]]]:
        return [p.top_k for p in self.predict_details(images, top_k)]

    def predict_details(self, images: list[ImageInput], top_k: int = 3,
                        coverage: float | None = None) -> list[Prediction]:
        """The task's answers plus the unknown-input flag; serving, the CLI and the Predict page all answer from
        this. `coverage`: conformal sets or intervals at another rate than the run's 90%."""
        if not images:
            return []
        answers, embeddings = self.forward(images)
        given = self.task.answer(answers, self.labels, self.trust, top_k, coverage)
        scores = self.neighbours.score(embeddings.numpy()) if self.neighbours is not None else [None] * len(images)
        return [Prediction(answer.pop("predictions"), unsure=bool(answer.pop("unsure", False)),
                           unknown=bool(score is not None and self.ood_threshold is not None
                                        and score > self.ood_threshold),
                           ood_score=None if score is None else round(float(score), 6), extra=answer)
                for answer, score in zip(given, scores)]
