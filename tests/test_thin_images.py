"""Extreme aspect ratios: the resize is bounded by its output on every path, and strips beyond 1:20 are refused
with a sentence (loading, the data scan, the service, the exported predict.py), which agrees with the app pixel for
pixel."""
from __future__ import annotations

import importlib.util
import io
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision.transforms.functional as TF
from fastapi.testclient import TestClient
from PIL import Image
from skimage import data as skdata
from torchvision.transforms import InterpolationMode

from core.data import preprocessing
from core.data.datasets import inspect_data
from core.data.preprocessing import ImageRejected, Preprocessing, load_rgb
from core.runs.folder import Run
from core.serving.service import create_app
from tests.conftest import class_members, write_zip

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = ROOT / "core" / "serving" / "templates" / "predict.py"
PREP = Preprocessing(256, 224, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225), "bilinear")


def png(size: tuple[int, int], colour=(200, 40, 90)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, "PNG")
    return buffer.getvalue()


def photo(tmp_path: Path, size: tuple[int, int] | None = None) -> Path:
    """A real photograph (skimage's cat), optionally stretched to `size`, saved as JPEG."""
    image = Image.fromarray(skdata.chelsea())
    if size:
        image = image.resize(size)
    path = tmp_path / f"cat-{image.size[0]}x{image.size[1]}.jpg"
    image.save(path, quality=90)
    return path


def template_module():
    spec = importlib.util.spec_from_file_location("exported_predict", TEMPLATE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("size", [(4000, 1), (1, 4000), (2100, 100)])
def test_a_strip_beyond_one_to_twenty_is_refused_with_a_sentence(size):
    data = png(size)
    assert len(data) < 2000  # passes every size guard: it is the shape that is refused
    with pytest.raises(ImageRejected, match=r"^'strip\.png': too long and thin: one side is over 20 times the other"):
        load_rgb(io.BytesIO(data), name="strip.png")


def test_the_data_scan_skips_a_strip_with_its_reason_and_keeps_the_rest(tmp_path):
    members = class_members("", {"cats": 5, "dogs": 5}) | {"cats/strip.png": png((4000, 1)),
                                                          "dogs/narrow.png": png((400, 25))}
    report = inspect_data(write_zip(tmp_path / "d.zip", members), tmp_path / "work")
    assert report.classes == {"cats": 5, "dogs": 6}  # 1:16 is kept
    [skipped] = [s for s in report.skipped if s.path == "cats/strip.png"]
    assert skipped.reason.startswith("too long and thin: one side is over 20 times the other (4000x1 pixels)")
    assert str(tmp_path) not in skipped.reason


def test_the_resize_allocates_by_the_output_not_by_the_aspect_ratio():
    """Peak memory (VmHWM) of a real process: a 4000x1 strip resized whole would be 256 x 1,024,000 pixels (786 MB)."""
    script = ("import sys; from PIL import Image; from core.data.preprocessing import Preprocessing\n"
              "prep = Preprocessing(256, 224, (0, 0, 0), (1, 1, 1), 'bilinear')\n"
              "peak = lambda: int(next(l for l in open('/proc/self/status') if l.startswith('VmHWM')).split()[1])\n"
              "prep.to_uint8(Image.new('RGB', (4000, 3000), 'red')); before = peak()\n"
              "shapes = [tuple(prep.to_uint8(Image.new('RGB', s, 'red')).shape) for s in ((4000, 1), (1, 4000))]\n"
              "print(peak() - before, shapes)\n")
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    grown_kib, shapes = done.stdout.split(" ", 1)
    assert shapes.strip() == "[(3, 224, 224), (3, 224, 224)]"
    assert int(grown_kib) < 32 * 1024, f"the thin images took {int(grown_kib) >> 10} MiB more than a photo"


def test_the_bounded_resize_is_resize_then_centre_crop_on_photographs(tmp_path):
    for size in (None, (300, 451), (1200, 150)):
        image = load_rgb(photo(tmp_path, size))
        whole = TF.resize(image, [PREP.resize_size], interpolation=InterpolationMode.BILINEAR, antialias=True)
        expected = TF.pil_to_tensor(TF.center_crop(whole, [PREP.crop_size])).int()
        got = PREP.to_uint8(image).int()
        assert got.shape == expected.shape == (3, 224, 224)
        assert (got - expected).abs().float().mean() < 0.25 and (got - expected).abs().max() <= 3


def test_resizing_twice_is_free_so_the_service_and_the_predictor_agree(tmp_path):
    image = load_rgb(photo(tmp_path, (1200, 150)))
    once = PREP.resized(image)
    assert once.size == (256, 256)
    assert torch.equal(PREP.to_uint8(once), PREP.to_uint8(image))


def test_the_exported_script_preprocesses_pixel_for_pixel_like_the_app(tmp_path):
    exported, prep = template_module(), PREP.to_dict()
    assert exported.MAX_ASPECT_RATIO == preprocessing.MAX_ASPECT_RATIO == 20
    for path in (photo(tmp_path), photo(tmp_path, (1000, 60)), photo(tmp_path, (60, 1000))):
        app = PREP.to_uint8(load_rgb(path, min_size=PREP.resize_size))
        image = exported.load_rgb(path, PREP.resize_size)
        script = TF.pil_to_tensor(TF.center_crop(exported.bounded_resize(image, 256, 224, "bilinear"), [224]))
        assert torch.equal(script, app), path.name
        normalised = PREP.normalize(app.unsqueeze(0))[0]
        assert torch.allclose(exported.preprocess(path, prep), normalised, atol=1e-6)
    strip = tmp_path / "strip.png"
    strip.write_bytes(png((4000, 1)))
    with pytest.raises(ValueError, match="too long and thin"):
        exported.preprocess(strip, prep)


def test_the_service_refuses_a_strip_and_answers_a_narrow_image(trained_run, tmp_path):
    app = create_app(trained_run, log_url=f"sqlite:///{tmp_path / 'log.sqlite'}")
    with TestClient(app) as client:
        refused = client.post("/predict", files=[("file", ("strip.png", png((4000, 1)), "image/png"))])
        assert refused.status_code == 415
        assert refused.json()["detail"] == ("'strip.png' could not be used: too long and thin: one side is over 20 "
                                            "times the other.")
        narrow = client.post("/predict", files=[("file", ("narrow.png", png((400, 25)), "image/png"))])
        assert narrow.status_code == 200, narrow.text
        labels = Run(trained_run).labels()
        assert narrow.json()["results"][0]["predictions"][0]["label"] in labels


def test_training_decodes_a_narrow_image_to_the_crop(tmp_path):
    from core.data.imageset import decode_all
    from core.data.report import ImageRecord

    path = tmp_path / "wide.png"
    path.write_bytes(png((1900, 100)))
    decoded = decode_all(tmp_path, [ImageRecord("wide.png", "a", None, "0" * 64, 1900, 100)], PREP)
    assert decoded.shape == (1, 3, 224, 224) and decoded.dtype == torch.uint8
    assert np.allclose(decoded[0, :, 100, 100].numpy(), (200, 40, 90), atol=1)
