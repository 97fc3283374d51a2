"""Predict with a finished run: load it once, then top-k for any number of images."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import torch
from PIL import Image, ImageOps

from core.data.preprocessing import load_rgb, to_rgb
from core.training import runs

ImageInput = str | Path | IO[bytes] | Image.Image


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
        return {"predictions": self.top_k, "unsure": self.unsure, "unknown": self.unknown,
                "ood_score": self.ood_score}


class Predictor:
    """Holds one run's model in memory; `predict` uses the run's exact validation preprocessing."""

    def __init__(self, run_dir: Path, device: str = "cpu") -> None:
        self.run_dir = Path(run_dir)
        self.model, self.labels, self.preprocessing, self.config = runs.load_model(self.run_dir)
        self.device = torch.device(device)
        self.model.to(self.device)

    def tensor(self, image: ImageInput) -> torch.Tensor:
        """One image as the model's uint8 input (3, crop, crop)."""
        if isinstance(image, Image.Image):
            picture = to_rgb(ImageOps.exif_transpose(image))
        else:
            picture = load_rgb(image, min_size=self.preprocessing.resize_size)
        return self.preprocessing.to_uint8(picture)

    @torch.inference_mode()
    def probabilities(self, images: list[ImageInput]) -> torch.Tensor:
        batch = torch.stack([self.tensor(image) for image in images]).to(self.device)
        return self.model(self.preprocessing.normalize(batch)).float().softmax(1).cpu()

    def predict(self, images: list[ImageInput], top_k: int = 3) -> list[list[dict[str, Any]]]:
        return [p.top_k for p in self.predict_details(images, top_k)]

    def predict_details(self, images: list[ImageInput], top_k: int = 3) -> list[Prediction]:
        """Top-k plus the trust flags; serving, the CLI and the Predict page all answer from this."""
        if not images:
            return []
        probabilities = self.probabilities(images)
        k = min(top_k, len(self.labels))
        values, indices = probabilities.topk(k, dim=1)
        return [Prediction([{"label": self.labels[i], "probability": round(float(p), 6)}
                            for p, i in zip(row_p, row_i)])
                for row_p, row_i in zip(values.tolist(), indices.tolist())]
