"""The bundled classroom sets: small image collections drawn here with code, so they are ours to ship (CC0).

Each set is a question a class can answer in one lesson, and each varies what the model must ignore: colours (the
shape, size and background vary, only the colour matters), smiley or frowny faces (face colour, size, position and
tilt vary, only the mouth matters), digits drawn by hand (slant, size, pen and paper vary). Regenerate the zips in
assets/classroom/ with `python -m core.classroom.sets` (the shapes set is the shipped sample, assets/sample_shapes.zip).
"""
from __future__ import annotations

import io
import math
import random
import zipfile
from pathlib import Path
from typing import Callable

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from core.data.public import ASSETS
from core.data.sample import SAMPLE_ZIP

SIZE = 128
COLOURS = {"red": (215, 40, 40), "green": (40, 160, 60), "blue": (40, 80, 210), "yellow": (235, 205, 40)}
# Pen strokes of each digit in a unit box (y down); 0 and 8 are drawn as ellipses.
_STROKES = {
    "1": [[(0.35, 0.25), (0.55, 0.1), (0.55, 0.9)]],
    "2": [[(0.2, 0.3), (0.3, 0.12), (0.55, 0.08), (0.75, 0.2), (0.75, 0.38), (0.2, 0.9), (0.8, 0.9)]],
    "3": [[(0.2, 0.15), (0.7, 0.12), (0.45, 0.45), (0.75, 0.6), (0.7, 0.85), (0.45, 0.92), (0.2, 0.85)]],
    "4": [[(0.6, 0.9), (0.6, 0.1), (0.15, 0.65), (0.85, 0.65)]],
    "5": [[(0.75, 0.1), (0.3, 0.1), (0.25, 0.45), (0.6, 0.42), (0.78, 0.6), (0.7, 0.85), (0.45, 0.92), (0.22, 0.82)]],
    "6": [[(0.7, 0.12), (0.4, 0.25), (0.25, 0.55), (0.3, 0.85), (0.55, 0.92), (0.75, 0.75), (0.65, 0.52),
           (0.4, 0.5), (0.27, 0.62)]],
    "7": [[(0.2, 0.12), (0.8, 0.12), (0.45, 0.9)]],
    "9": [[(0.72, 0.4), (0.5, 0.5), (0.3, 0.4), (0.3, 0.2), (0.5, 0.1), (0.72, 0.2), (0.72, 0.4), (0.65, 0.9)]],
}


def _ellipse(cx: float, cy: float, rx: float, ry: float, steps: int = 24) -> list[tuple[float, float]]:
    return [(cx + rx * math.cos(2 * math.pi * k / steps), cy + ry * math.sin(2 * math.pi * k / steps))
            for k in range(steps + 1)]


_STROKES["0"] = [_ellipse(0.5, 0.5, 0.28, 0.4)]
_STROKES["8"] = [_ellipse(0.5, 0.3, 0.2, 0.19), _ellipse(0.5, 0.7, 0.25, 0.21)]


def _paper(rng: random.Random, light: bool = True) -> Image.Image:
    """A plain, slightly uneven background (paper, a table, a wall)."""
    base = np.array([rng.randrange(170, 250) if light else rng.randrange(256) for _ in range(3)], dtype=np.float32)
    ramp = np.linspace(-1, 1, SIZE, dtype=np.float32)[:, None, None] * rng.uniform(0, 25)
    noise = np.random.default_rng(rng.randrange(1 << 30)).normal(0, 8, (SIZE, SIZE, 3))
    return Image.fromarray(np.clip(base + ramp + noise, 0, 255).astype(np.uint8), "RGB")


def colour(name: str, rng: random.Random) -> Image.Image:
    image = _paper(rng)
    pen = ImageDraw.Draw(image)
    for _ in range(rng.randrange(0, 3)):  # grey distractors: the colour, not the number of things, is the answer
        x, y, r = rng.uniform(10, 118), rng.uniform(10, 118), rng.uniform(6, 14)
        grey = rng.randrange(60, 160)
        pen.ellipse([x - r, y - r, x + r, y + r], fill=(grey, grey, grey))
    tint = tuple(int(min(max(c + rng.uniform(-30, 30), 0), 255)) for c in COLOURS[name])
    x, y, r = rng.uniform(35, 93), rng.uniform(35, 93), rng.uniform(18, 32)
    kind = rng.choice(("circle", "square", "triangle", "blob"))
    if kind == "circle":
        pen.ellipse([x - r, y - r, x + r, y + r], fill=tint)
    elif kind == "blob":
        pen.polygon([(x + r * rng.uniform(0.6, 1.2) * math.cos(a), y + r * rng.uniform(0.6, 1.2) * math.sin(a))
                     for a in np.linspace(0, 2 * math.pi, 9)[:-1]], fill=tint)
    else:
        corners, turn = (4 if kind == "square" else 3), rng.uniform(0, 2 * math.pi)
        pen.polygon([(x + r * math.cos(turn + 2 * math.pi * k / corners), y + r * math.sin(turn + 2 * math.pi * k / corners))
                     for k in range(corners)], fill=tint)
    return image.filter(ImageFilter.GaussianBlur(rng.uniform(0, 0.8)))


def face(mood: str, rng: random.Random) -> Image.Image:
    image = _paper(rng, light=rng.random() < 0.7)
    pen = ImageDraw.Draw(image)
    r, x, y = rng.uniform(30, 48), rng.uniform(52, 76), rng.uniform(52, 76)
    skin = tuple(rng.randrange(120, 256) for _ in range(3))
    pen.ellipse([x - r, y - r, x + r, y + r], fill=skin, outline=(40, 40, 40), width=rng.randrange(1, 4))
    ink, tilt = (rng.randrange(0, 60),) * 3, rng.uniform(-0.25, 0.25)

    def at(dx: float, dy: float) -> tuple[float, float]:  # a point of the face, turned by its tilt
        return (x + r * (dx * math.cos(tilt) - dy * math.sin(tilt)), y + r * (dx * math.sin(tilt) + dy * math.cos(tilt)))
    eye = r * rng.uniform(0.09, 0.15)
    for side in (-0.35, 0.35):
        ex, ey = at(side, -0.25)
        pen.ellipse([ex - eye, ey - eye, ex + eye, ey + eye], fill=ink)
    width, depth = rng.uniform(0.35, 0.55), rng.uniform(0.15, 0.3) * (1 if mood == "smiley" else -1)
    centre = 0.35 if mood == "smiley" else 0.5
    mouth = [at(width * t, centre + depth * (1 - t * t) - depth) for t in np.linspace(-1, 1, 12)]
    pen.line(mouth, fill=ink, width=max(int(r * rng.uniform(0.07, 0.12)), 2), joint="curve")
    return image.filter(ImageFilter.GaussianBlur(rng.uniform(0, 0.8)))


def digit(name: str, rng: random.Random) -> Image.Image:
    image = _paper(rng)
    pen = ImageDraw.Draw(image)
    scale, turn, shear = rng.uniform(0.55, 0.85) * SIZE, rng.uniform(-0.25, 0.25), rng.uniform(-0.25, 0.25)
    ox, oy = (rng.uniform(0.02 * SIZE, 0.98 * SIZE - scale) for _ in range(2))
    ink = rng.choice([(20, 20, 20), (20, 40, 140), (60, 60, 60), (140, 30, 30)])
    for stroke in _STROKES[name]:
        points, wobble = [], 0.025 if len(stroke) <= 10 else 0.006  # a round stroke wobbles less per point
        for px, py in stroke:
            px, py = px + rng.gauss(0, wobble) + shear * (0.5 - py), py + rng.gauss(0, wobble)
            qx, qy = px - 0.5, py - 0.5
            points.append((ox + scale * (0.5 + qx * math.cos(turn) - qy * math.sin(turn)),
                           oy + scale * (0.5 + qx * math.sin(turn) + qy * math.cos(turn))))
        pen.line(points, fill=ink, width=rng.randrange(4, 10), joint="curve")
    return image.filter(ImageFilter.GaussianBlur(rng.uniform(0.3, 1.0)))


SETS: dict[str, tuple[str, Callable[[str, random.Random], Image.Image], tuple[str, ...], int]] = {
    "colours": ("Colours: red, green, blue, yellow", colour, tuple(COLOURS), 24),
    "faces": ("Faces: smiley or frowny", face, ("smiley", "frowny"), 30),
    "digits": ("Digits drawn by hand: 0 to 9", digit, tuple("0123456789"), 16),
}
TITLES = {"shapes": "Shapes: circles, squares, triangles (the sample)", **{k: v[0] for k, v in SETS.items()}}


def path_of(name: str) -> Path:
    """The shipped zip of a bundled set ("shapes", "colours", "faces", "digits")."""
    if name == "shapes":
        return SAMPLE_ZIP
    if name not in SETS:
        raise KeyError(name)
    return ASSETS / "classroom" / f"{name}.zip"


def write_zip(name: str, path: Path | None = None, seed: int = 0) -> Path:
    _, draw, classes, per_class = SETS[name]
    path = path or path_of(name)
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = random.Random(f"{name}:{seed}")
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as archive:
        for label in classes:
            for i in range(per_class):
                buffer = io.BytesIO()
                draw(label, rng).save(buffer, "JPEG", quality=85)
                # a fixed date: the same drawing gives the same zip, byte for byte
                info = zipfile.ZipInfo(f"{name}/{label}/{label}_{i:03d}.jpg", date_time=(2025, 1, 1, 0, 0, 0))
                archive.writestr(info, buffer.getvalue())
    return path


if __name__ == "__main__":
    for set_name in SETS:
        print(write_zip(set_name))
