"""Mutated real image files: loading one either works or says why (ImageRejected), never anything else."""
from __future__ import annotations

import io
import random
import warnings
from pathlib import Path

import pytest
from PIL import Image

from core.data.datasets import inspect_data
from core.data.preprocessing import ImageRejected, load_rgb

FORMATS = {"JPEG": ".jpg", "PNG": ".png", "TIFF": ".tif", "GIF": ".gif", "WEBP": ".webp"}
VARIANTS_PER_FORMAT = 60


def original(fmt: str) -> bytes:
    buffer = io.BytesIO()
    image = Image.effect_noise((40, 32), 60).convert("RGB")
    image.save(buffer, fmt, **({"compression": "tiff_lzw"} if fmt == "TIFF" else {}))
    return buffer.getvalue()


def mutations(data: bytes, rng: random.Random, count: int) -> list[bytes]:
    """Flipped bytes (headers included), truncations, duplicated and deleted runs: what damaged files look like."""
    variants = []
    for _ in range(count):
        mutated = bytearray(data)
        kind = rng.choices(range(4), weights=(6, 2, 1, 1))[0]
        if kind == 0:
            for _ in range(rng.randint(1, 8)):
                mutated[rng.randrange(min(len(mutated), 64 if rng.random() < 0.5 else len(mutated)))] = rng.randrange(256)
        elif kind == 1:
            del mutated[rng.randrange(8, len(mutated)):]
        elif kind == 2:
            start = rng.randrange(len(mutated))
            mutated[start:start] = mutated[start:start + rng.randint(1, 64)]
        else:
            start = rng.randrange(len(mutated))
            del mutated[start:start + rng.randint(1, 64)]
        variants.append(bytes(mutated))
    return variants


@pytest.mark.parametrize("fmt", FORMATS)
def test_mutated_files_load_or_are_rejected_with_a_reason(fmt):
    rng = random.Random(f"fuzz-{fmt}")
    outcomes = {"loaded": 0, "rejected": 0}
    for variant in mutations(original(fmt), rng, VARIANTS_PER_FORMAT):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                image = load_rgb(io.BytesIO(variant), min_size=16)
            except ImageRejected as error:
                assert str(error), "a rejection always says why"
                outcomes["rejected"] += 1
                continue
        assert image.mode == "RGB"
        outcomes["loaded"] += 1
    assert outcomes["rejected"] > 0  # the mutations do damage files: the test exercises the failure path


def test_inspect_reports_every_intact_image_beside_damaged_ones(tmp_path):
    rng = random.Random("fuzz-inspect")
    for fmt, suffix in FORMATS.items():
        data = original(fmt)
        for label in ("a", "b"):
            folder = tmp_path / label
            folder.mkdir(exist_ok=True)
            (folder / f"intact_{fmt}{suffix}").write_bytes(data)
            for i, variant in enumerate(mutations(data, rng, 6)):
                (folder / f"damaged_{fmt}_{i}{suffix}").write_bytes(variant)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        report = inspect_data(tmp_path)
    names = {Path(r.path).name for r in report.images}
    assert {f"intact_{fmt}{suffix}" for fmt, suffix in FORMATS.items()} <= names
    assert len(report.images) + len(report.skipped) == 2 * len(FORMATS) * 7
    assert all(s.reason for s in report.skipped)
