"""Opening any image a user has as correct RGB, and the exact resize/crop/normalise of a backbone.

Training, evaluation, prediction and the exported `predict.py` all go through `load_rgb` and
`Preprocessing.to_uint8`, so a prediction sees exactly what validation saw.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np
import torch
import torchvision.transforms.functional as TF
from PIL import Image, ImageOps
from torchvision.transforms import InterpolationMode

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".jpe", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff"})


class ImageRejected(ValueError):
    """A file that cannot be used as a training image; the message is the reason shown to the user."""


@dataclass(frozen=True)
class Preprocessing:
    resize_size: int
    crop_size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    interpolation: str  # "bilinear" | "bicubic"

    def scaled_to(self, crop_size: int) -> "Preprocessing":
        resize = round(crop_size * self.resize_size / self.crop_size)
        return dataclasses.replace(self, resize_size=resize, crop_size=crop_size)

    def to_uint8(self, image: Image.Image) -> torch.Tensor:
        """Resize the shorter side, centre-crop: a (3, crop, crop) uint8 tensor, cheap to keep in memory."""
        mode = InterpolationMode(self.interpolation)
        image = TF.resize(image, [self.resize_size], interpolation=mode, antialias=True)
        return TF.pil_to_tensor(TF.center_crop(image, [self.crop_size]))

    def normalize(self, batch: torch.Tensor) -> torch.Tensor:
        """uint8 (N, 3, H, W) -> float, scaled and standardised as the backbone was trained."""
        mean = torch.tensor(self.mean, device=batch.device).view(1, 3, 1, 1)
        std = torch.tensor(self.std, device=batch.device).view(1, 3, 1, 1)
        return (batch.float() / 255.0 - mean) / std

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "Preprocessing":
        return cls(values["resize_size"], values["crop_size"], tuple(values["mean"]), tuple(values["std"]),
                   values["interpolation"])


def load_rgb(source: str | Path | IO[bytes], min_size: int | None = None) -> Image.Image:
    """Open, guard against decompression bombs, apply EXIF orientation, convert to RGB.

    `min_size` lets JPEG decode at a reduced scale that is still at least that large (much faster for
    camera photos); the result is deterministic, so training and prediction agree.
    """
    try:
        image = Image.open(source)
        width, height = image.size
        if width * height > Image.MAX_IMAGE_PIXELS:
            raise ImageRejected(f"image too large ({width}x{height}): refused by the decompression-bomb guard")
        if min_size and image.format == "JPEG":
            image.draft("RGB", (min_size, min_size))
        image.load()
        image = ImageOps.exif_transpose(image)
        return to_rgb(image)
    except Image.DecompressionBombError as error:
        raise ImageRejected(f"image too large: refused by the decompression-bomb guard ({error})") from error
    except ImageRejected:
        raise
    except (OSError, SyntaxError, ValueError) as error:  # Pillow's ways of saying unreadable
        raise ImageRejected(f"not a readable image ({_short(error)})") from error


def to_rgb(image: Image.Image) -> Image.Image:
    """Any mode to RGB: 16-bit and float rescaled (not clipped), transparency composited on white."""
    if image.mode.startswith("I") or image.mode == "F":
        image = Image.fromarray(_rescale_to_uint8(np.asarray(image)), "L")
    has_alpha = image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in image.info
    if has_alpha:
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    return image if image.mode == "RGB" else image.convert("RGB")


def _rescale_to_uint8(values: np.ndarray) -> np.ndarray:
    values = values.astype(np.float64)
    if values.size and values.min() >= 0 and values.max() <= 255 and np.issubdtype(values.dtype, np.integer):
        return values.astype(np.uint8)
    if values.size and values.max() > 255 and values.min() >= 0 and values.max() <= 65535:
        return np.round(values / 257.0).astype(np.uint8)  # 16-bit: 65535 -> 255
    low, high = (float(values.min()), float(values.max())) if values.size else (0.0, 1.0)
    span = high - low if high > low else 1.0
    return np.round((values - low) / span * 255.0).astype(np.uint8)


def thumbnail(source: str | Path, size: int = 160) -> Image.Image:
    """A small RGB preview for galleries (JPEGs decode at reduced scale, so this is quick)."""
    image = load_rgb(source, min_size=size)
    image.thumbnail((size, size))
    return image


def is_image_name(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES


def _short(error: Exception) -> str:
    text = str(error).strip() or type(error).__name__
    return text if len(text) < 120 else text[:117] + "..."
