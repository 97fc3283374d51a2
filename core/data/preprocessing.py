"""Opening any image a user has as correct RGB, and the exact resize/crop/normalise of a backbone.

Training, evaluation, prediction and the exported `predict.py` all go through `load_rgb` and
`Preprocessing.to_uint8`, so a prediction sees exactly what validation saw. The resize is bounded by the output:
it never allocates more than the square the crop is taken from, whatever the input's aspect ratio.
"""
from __future__ import annotations

import contextlib
import dataclasses
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Iterator

import numpy as np
import torch
import torchvision.transforms.functional as TF
from PIL import Image, ImageOps

from core.i18n import N_, _, quoted

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".jpe", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff"})
# One image may take at most this much memory decoded (Pillow's own bomb guard allows ~90 megapixels, 3 GB
# for a 16-bit 9400x9400 PNG once converted); a camera JPEG stays far below it, as it decodes at reduced scale.
MAX_DECODED_BYTES = 128 << 20
# What decodes in flight may take together; more wait their turn. Converting to RGB costs ~8 bytes a pixel more.
DECODE_MEMORY = int(os.environ.get("TRANSFERLAB_DECODE_MEMORY_MB", "768")) << 20
_CONVERSION_BYTES_PER_PIXEL = 8
# The model sees a centre square: beyond this ratio of the longer to the shorter side it sees a sliver of the image
# (a 4000x1 strip is refused, not guessed at). The exported predict.py holds the same number.
MAX_ASPECT_RATIO = 20
_RESCALE_SLICE = 1 << 20  # elements per slice when rescaling high-bit-depth images
_BYTES_PER_PIXEL = {"1": 1, "L": 1, "P": 1, "LA": 2, "PA": 2, "La": 2, "RGB": 3, "YCbCr": 3, "LAB": 3, "HSV": 3,
                    "RGBA": 4, "RGBa": 4, "RGBX": 4, "CMYK": 4, "I": 4, "F": 4, "I;16": 2, "I;16L": 2, "I;16B": 2,
                    "I;16N": 2}


class ImageRejected(ValueError):
    """A file that cannot be used as a training image; the message is the reason shown to the user."""


class ImageTooLarge(ImageRejected):
    """Rejected for its size (the service answers 413, not 415): known by type, since the reason is translated."""


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

    def resized(self, image: Image.Image) -> Image.Image:
        """The resize step alone (see `bounded_resize`); to_uint8 of its result only crops."""
        return bounded_resize(image, self.resize_size, self.crop_size, self.interpolation)

    def to_uint8(self, image: Image.Image) -> torch.Tensor:
        """Resize the shorter side, centre-crop: a (3, crop, crop) uint8 tensor, cheap to keep in memory."""
        return TF.pil_to_tensor(TF.center_crop(self.resized(image), [self.crop_size]))

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


def bounded_resize(image: Image.Image, resize_size: int, crop_size: int, interpolation: str) -> Image.Image:
    """The centre square (side max(resize, crop)) of the image resized so its shorter side is `resize_size`.

    Only that square is computed: Pillow resamples a box of the input straight to it, so a 4000x1 strip costs a
    256x256 image, not the 256 x 1,024,000 a whole resize would. Its centre crop is the crop of the whole resize
    (same scale on both axes, same offsets as torchvision's resize then center_crop, the filter reading pixels
    beyond the box as a whole resize does); only the order of Pillow's two passes, hence rounding, may differ.
    A square of that side comes back unchanged, so resizing twice is free.
    """
    width, height = image.size
    short, long = min(width, height), max(width, height)
    new_long = int(resize_size * long / short)  # torchvision's rounding of the longer side
    new_width, new_height = (resize_size, new_long) if width <= height else (new_long, resize_size)
    side = max(resize_size, crop_size)
    box, size = [], []
    for new, old in ((new_width, width), (new_height, height)):
        keep = min(new, side)
        start = int(round((new - crop_size) / 2.0)) - int(round((keep - crop_size) / 2.0))
        scale = old / new
        box.append((start * scale, min(old, (start + keep) * scale)))
        size.append(keep)
    region = (box[0][0], box[1][0], box[0][1], box[1][1])
    return image.resize((size[0], size[1]), Image.Resampling[interpolation.upper()], box=region)


def load_rgb(source: str | Path | IO[bytes], min_size: int | None = None, name: str | None = None) -> Image.Image:
    """Open, guard against decompression bombs and over-budget images, apply EXIF orientation, convert to RGB.

    `min_size` lets JPEG decode at a reduced scale that is still at least that large (much faster for
    camera photos); the result is deterministic, so training and prediction agree. Any failure to decode
    this one file becomes ImageRejected with a reason (Pillow raises many types on crafted files), so a bad
    file is skipped and never hides the rest. `name` is how the reason names the file (e.g. an upload's name).
    """
    name = _given_name(source) if name is None else name  # "" names nothing (e.g. a path the user must not see)
    try:
        image = Image.open(source)
        if image.size[0] * image.size[1] > Image.MAX_IMAGE_PIXELS:  # Pillow itself only warns up to twice that
            raise ImageTooLarge(_named(name, _("too large ({width}x{height}): refused by the decompression-bomb "
                                               "guard").format(width=image.size[0], height=image.size[1])))
        if max(image.size) > MAX_ASPECT_RATIO * max(1, min(image.size)):
            raise ImageRejected(_too_thin(image.size, name))
        if min_size and image.format == "JPEG":
            image.draft("RGB", (min_size, min_size))
        cost = decoded_bytes(image.mode, image.size)
        if cost > MAX_DECODED_BYTES:
            raise ImageTooLarge(_too_large(image, cost, name))
        with _DECODES.reserve(cost + _CONVERSION_BYTES_PER_PIXEL * image.size[0] * image.size[1]):
            image.load()
            ImageOps.exif_transpose(image, in_place=True)
            return to_rgb(image)
    except ImageRejected:
        raise
    except Image.DecompressionBombError as error:
        raise ImageTooLarge(_named(name, _("too large: refused by the decompression-bomb guard"))) from error
    except Image.UnidentifiedImageError as error:  # its message holds the file object's repr, not a reason
        raise ImageRejected(_named(name, _("not an image (unknown or damaged format)"))) from error
    except MemoryError as error:
        raise ImageTooLarge(_named(name, _("too large to decode in the memory available"))) from error
    except Exception as error:  # noqa: BLE001 - crafted files make Pillow raise TypeError, IndexError, ...
        raise ImageRejected(_named(name, _("not a readable image ({why})").format(why=_short(error)))) from error


class DecodeBudget:
    """Process-wide: the decodes in flight never reserve more than `capacity` bytes together.

    One reservation larger than the capacity still runs, alone, so nothing waits forever.
    """

    def __init__(self, capacity: int) -> None:
        self.capacity, self.in_use = capacity, 0
        self._changed = threading.Condition()

    @contextlib.contextmanager
    def reserve(self, cost: int) -> Iterator[None]:
        with self._changed:
            self._changed.wait_for(lambda: self.in_use == 0 or self.in_use + cost <= self.capacity)
            self.in_use += cost
        try:
            yield
        finally:
            with self._changed:
                self.in_use -= cost
                self._changed.notify_all()


_DECODES = DecodeBudget(DECODE_MEMORY)


def decoded_bytes(mode: str, size: tuple[int, int]) -> int:
    """Bytes the decoded pixels take in memory: 16-bit and multi-band images cost more than their pixel count."""
    per_pixel = _BYTES_PER_PIXEL.get(mode) or 4 * Image.getmodebands(mode)  # unknown modes: assume 32-bit bands
    return size[0] * size[1] * per_pixel


def _too_large(image: Image.Image, cost: int, name: str | None) -> str:
    width, height = image.size
    return _named(name, _("too large ({width}x{height} pixels, {mode}: {size} MiB decoded; the limit is {limit} MiB). "
                          "Scale it down, e.g. to 4000 pixels on the longer side").format(
        width=width, height=height, mode=image.mode, size=cost >> 20, limit=MAX_DECODED_BYTES >> 20))


def _too_thin(size: tuple[int, int], name: str | None) -> str:
    return _named(name, _("too long and thin: one side is over {ratio} times the other ({width}x{height} pixels), "
                          "and the model sees only a centre square; crop it closer to the subject").format(
        ratio=MAX_ASPECT_RATIO, width=size[0], height=size[1]))


def _given_name(source: str | Path | IO[bytes]) -> str | None:
    """The file's own name (an upload's as the user gave it), never a folder path or an object's repr."""
    if isinstance(source, (str, Path)):
        return Path(source).name or None
    given = getattr(source, "name", None)  # an upload's name is the user's file name as typed, '/' and all
    return str(given) if isinstance(given, str) and given else None


def _named(name: str | None, reason: str) -> str:
    """The reason, after the file's name when there is one to show (a long name shortened in the middle)."""
    if not name:
        return reason
    shown = name if len(name) <= 80 else f"{name[:60]}...{name[-16:]}"
    return _("{name}: {reason}").format(name=quoted(shown), reason=reason)


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
    """Integer data already in 0..255 kept, 16-bit divided by 257, anything else stretched min..max.

    Works in slices of rows: a float64 copy of a whole large 16-bit image would take 8 bytes a pixel.
    """
    if not values.size:
        return np.zeros(values.shape, np.uint8)
    low, high = float(values.min()), float(values.max())
    if low >= 0 and high <= 255 and np.issubdtype(values.dtype, np.integer):
        return values.astype(np.uint8)
    out = np.empty(values.shape, np.uint8)
    rows = max(1, _RESCALE_SLICE // max(1, values[0].size))
    for top in range(0, values.shape[0], rows):
        part = values[top:top + rows].astype(np.float64)
        if low >= 0 and 255 < high <= 65535:
            out[top:top + rows] = np.round(part / 257.0)  # 16-bit: 65535 -> 255
        else:
            out[top:top + rows] = np.round((part - low) / (high - low if high > low else 1.0) * 255.0)
    return out


def thumbnail(source: str | Path, size: int = 160) -> Image.Image:
    """A small RGB preview for galleries (JPEGs decode at reduced scale, so this is quick)."""
    image = load_rgb(source, min_size=size)
    image.thumbnail((size, size))
    return image


def is_image_name(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES


# How each accepted format begins (WebP: RIFF, 4 bytes of size, WEBP): checked on a file's first 12 bytes before it
# is decoded, so a junk file named .jpg never reaches Pillow's many format parsers.
_SIGNATURES = ((b"\xff\xd8\xff", "JPEG"), (b"\x89PNG\r\n\x1a\n", "PNG"), (b"GIF87a", "GIF"), (b"GIF89a", "GIF"),
               (b"BM", "BMP"), (b"II*\x00", "TIFF"), (b"MM\x00*", "TIFF"), (b"II+\x00", "TIFF"), (b"MM\x00+", "TIFF"))
# Translated where it is shown (_(NOT_AN_IMAGE)): a constant is read once, before any language is set.
NOT_AN_IMAGE = N_("not an image (its contents are not JPEG, PNG, GIF, BMP, WebP or TIFF)")


def sniffed_format(head: bytes) -> str | None:
    """The image format a file's first 12 bytes announce, or None: a cheap test before anything is decoded."""
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WEBP"
    return next((fmt for magic, fmt in _SIGNATURES if head.startswith(magic)), None)


def _short(error: Exception) -> str:
    if isinstance(error, OSError) and error.strerror:
        return error.strerror  # without the file name: the reason already names the file
    text = str(error).strip() or type(error).__name__
    return text if len(text) < 120 else text[:117] + "..."
