"""The bundled sample: generated photos-like images of shapes (circle, square, triangle) on textured,
coloured backgrounds. Made here, so it is ours to ship (CC0). Colour, size, position, rotation and
background vary, so the model must learn shape, which pretrained features capture and random ones do not."""
from __future__ import annotations

import io
import math
import random
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

SHAPES = ("circle", "square", "triangle")
SAMPLE_ZIP = Path(__file__).resolve().parents[2] / "assets" / "sample_shapes.zip"


def draw(shape: str, rng: random.Random, size: int = 160) -> Image.Image:
    image = _background(rng, size)
    pen = ImageDraw.Draw(image)
    radius = rng.uniform(0.18, 0.36) * size
    cx, cy = (rng.uniform(radius, size - radius) for _ in range(2))
    colour = tuple(rng.randrange(256) for _ in range(3))
    if shape == "circle":
        pen.ellipse([cx - radius, cy - radius, cx + radius, cy + radius], fill=colour)
    else:
        corners = 4 if shape == "square" else 3
        turn = rng.uniform(0, 2 * math.pi)
        points = [(cx + radius * math.cos(turn + 2 * math.pi * k / corners),
                   cy + radius * math.sin(turn + 2 * math.pi * k / corners)) for k in range(corners)]
        pen.polygon(points, fill=colour)
    return image.filter(ImageFilter.GaussianBlur(rng.uniform(0, 1.2)))


def _background(rng: random.Random, size: int) -> Image.Image:
    low, high = (np.array([rng.randrange(256) for _ in range(3)], dtype=np.float32) for _ in range(2))
    ramp = np.linspace(0, 1, size, dtype=np.float32)[:, None, None]
    noise = np.random.default_rng(rng.randrange(1 << 30)).normal(0, 18, (size, size, 3))
    pixels = low + (high - low) * (ramp if rng.random() < 0.5 else ramp.transpose(1, 0, 2)) + noise
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "RGB")


def write_folder(folder: Path, per_class: int, size: int = 160, seed: int = 0,
                 shapes: tuple[str, ...] = SHAPES) -> Path:
    rng = random.Random(seed)
    for shape in shapes:
        (folder / shape).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            draw(shape, rng, size).save(folder / shape / f"{shape}_{i:03d}.jpg", quality=90)
    return folder


def write_zip(path: Path, per_class: int = 40, size: int = 160, seed: int = 0) -> Path:
    rng = random.Random(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as archive:
        for shape in SHAPES:
            for i in range(per_class):
                buffer = io.BytesIO()
                draw(shape, rng, size).save(buffer, "JPEG", quality=90)
                archive.writestr(f"shapes/{shape}/{shape}_{i:03d}.jpg", buffer.getvalue())
    return path


def draw_several(shapes: tuple[str, ...], rng: random.Random, size: int = 160) -> Image.Image:
    """A picture holding each of `shapes` once (multi-label examples: its tags are the shapes in it)."""
    image = _background(rng, size)
    pen = ImageDraw.Draw(image)
    for k, shape in enumerate(shapes):
        radius = rng.uniform(0.12, 0.18) * size
        cx = (k + 0.5) * size / max(len(shapes), 1) + rng.uniform(-0.05, 0.05) * size
        cy = rng.uniform(radius, size - radius)
        _shape(pen, shape, cx, cy, radius, tuple(rng.randrange(256) for _ in range(3)), rng)
    return image


def draw_sized(fraction: float, rng: random.Random, size: int = 160) -> Image.Image:
    """A circle whose radius is `fraction` of the picture (regression examples: the value is its size)."""
    image = _background(rng, size)
    radius = fraction * size
    cx, cy = (rng.uniform(radius, size - radius) for _ in range(2))
    _shape(ImageDraw.Draw(image), "circle", cx, cy, radius, tuple(rng.randrange(256) for _ in range(3)), rng)
    return image


def _shape(pen: ImageDraw.ImageDraw, shape: str, cx: float, cy: float, radius: float, colour: tuple,
           rng: random.Random) -> None:
    if shape == "circle":
        pen.ellipse([cx - radius, cy - radius, cx + radius, cy + radius], fill=colour)
        return
    corners = 4 if shape == "square" else 3
    turn = rng.uniform(0, 2 * math.pi)
    pen.polygon([(cx + radius * math.cos(turn + 2 * math.pi * k / corners),
                  cy + radius * math.sin(turn + 2 * math.pi * k / corners)) for k in range(corners)], fill=colour)


def write_tagged_folder(folder: Path, count: int, size: int = 160, seed: int = 0) -> Path:
    """Pictures of one to three shapes with a metadata.csv whose `labels` column names them (';'-separated)."""
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    rows = ["file_name,labels"]
    for i in range(count):
        chosen = tuple(s for s in SHAPES if rng.random() < 0.5) or (rng.choice(SHAPES),)
        draw_several(chosen, rng, size).save(folder / f"picture_{i:03d}.jpg", quality=90)
        rows.append(f"picture_{i:03d}.jpg,{';'.join(chosen)}")
    (folder / "metadata.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    return folder


def write_scored_folder(folder: Path, count: int, size: int = 160, seed: int = 0) -> Path:
    """Pictures of a circle with a metadata.csv whose `value` column is its radius in % of the picture's side."""
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    rows = ["file_name,value"]
    for i in range(count):
        fraction = rng.uniform(0.08, 0.45)
        draw_sized(fraction, rng, size).save(folder / f"circle_{i:03d}.jpg", quality=90)
        rows.append(f"circle_{i:03d}.jpg,{100 * fraction:.2f}")
    (folder / "metadata.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    return folder
