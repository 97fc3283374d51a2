"""Grad-CAM heatmaps look where the class is decided, change when the weights are randomised, and work for every
backbone family; the model card is one self-contained, escaped HTML file."""
from __future__ import annotations

import copy
import json
import random
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from core.data.sample import _background
from core.files import read_json, write_json
from core.insight.explain import explain, heatmaps, randomised_last_stage, similarity
from core.models import backbones
from core.serving.inference import Predictor

SIZE = 160  # EfficientNet-Lite0 sees a 5 x 5 grid at 160 px: coarse enough to be quick, fine enough to locate


def busy_picture(shape: str, rng: random.Random) -> tuple[Image.Image, tuple[float, float, float, float]]:
    """A circle or a square (the class) at a random place over a gradient, noise and 25 random lines."""
    image = _background(rng, SIZE)
    pen = ImageDraw.Draw(image)
    for _ in range(25):
        pen.line([(rng.randrange(SIZE), rng.randrange(SIZE)) for _ in range(2)],
                 fill=tuple(rng.randrange(256) for _ in range(3)), width=2)
    r = rng.uniform(0.2, 0.28) * SIZE
    cx, cy = rng.uniform(r, SIZE - r), rng.uniform(r, SIZE - r)
    colour = tuple(rng.randrange(256) for _ in range(3))
    if shape == "circle":
        pen.ellipse((cx - r, cy - r, cx + r, cy + r), fill=colour, outline=(0, 0, 0), width=2)
    else:
        pen.rectangle((cx - 0.8 * r, cy - 0.8 * r, cx + 0.8 * r, cy + 0.8 * r), fill=colour, outline=(0, 0, 0), width=2)
    return image, (cx - r, cy - r, cx + r, cy + r)


@pytest.fixture(scope="module")
def busy_run(tmp_path_factory) -> tuple[Path, Path, dict[str, tuple]]:
    from core.runs import folder as runs
    from core.runs import pipeline as runner
    from core.training.config import TrainConfig
    from core.training.events import EventLog

    data, rng, boxes = tmp_path_factory.mktemp("busy"), random.Random(3), {}
    for shape in ("circle", "square"):
        (data / shape).mkdir()
        for i in range(24):
            image, box = busy_picture(shape, rng)
            image.save(data / shape / f"{i}.png")
            boxes[f"{shape}/{i}.png"] = box
    config = TrainConfig(data=str(data), epochs=4, image_size=SIZE, early_stopping=0)
    run_dir = runs.create(tmp_path_factory.mktemp("runs"), config).path
    state = runner.execute(config, run_dir, EventLog(run_dir / "metrics.jsonl"), threading.Event(),
                           tmp_path_factory.mktemp("work"))
    assert state == "finished", runs.Run(run_dir).status()
    return run_dir, data, boxes


def test_heatmap_peak_falls_inside_the_shape_for_most_validation_images(busy_run):
    run_dir, data, boxes = busy_run
    predictor = Predictor(run_dir)
    validation = json.loads((run_dir / "evaluation.json").read_text())["predictions"]
    batch = predictor.preprocessing.normalize(torch.stack([predictor.tensor(data / v["path"]) for v in validation]))
    cams = heatmaps(predictor.model, batch, [predictor.labels.index(v["true"]) for v in validation])  # one pass
    inside = 0
    for item, cam in zip(validation, cams):
        y, x = np.unravel_index(cam.argmax(), cam.shape)
        x0, y0, x1, y1 = boxes[item["path"]]
        inside += x0 <= x <= x1 and y0 <= y <= y1
    assert inside > 0.5 * len(validation), (inside, len(validation))


def test_randomising_the_last_stage_changes_the_heatmap(busy_run):
    run_dir, data, _ = busy_run
    predictor = Predictor(run_dir)
    picture = predictor.tensor(data / "circle" / "0.png")
    found = explain(predictor.model, predictor.preprocessing, picture, sanity_check=True)
    assert found.sanity is not None and found.sanity < 0.8
    assert found.image.size == (SIZE, SIZE)


@pytest.mark.parametrize("name", ["resnet18", "mobilenet_v3_small", "vit_b_16"])
def test_every_backbone_family_gives_a_heatmap(name):
    torch.manual_seed(0)
    model = backbones.build(name, 3, pretrained=False).eval()
    prep = backbones.preprocessing(name, None if backbones.info(name).fixed_size else 64)
    picture = torch.from_numpy(np.array(busy_picture("square", random.Random(1))[0].resize(
        (prep.crop_size, prep.crop_size)))).permute(2, 0, 1).contiguous()
    found = explain(model, prep, picture, class_index=1)
    assert found.cam.shape == (prep.crop_size, prep.crop_size)
    assert 0 <= found.cam.min() and found.cam.max() <= 1 and found.cam.std() > 0
    assert similarity(found.cam, found.cam) == pytest.approx(1.0)
    assert randomised_last_stage(model) is not model


def test_a_values_heatmap_shows_what_moved_it_from_the_average_whichever_way():
    """A regression head: the same picture through a head and its mirror image (weights negated: one answers above
    the training mean, the other as far below it) gives the same, non-blank map of the image's shape. Explaining
    the raw output instead shows what pushed it up, which for the low answer is often nothing: a blank map."""
    from core import tasks

    torch.manual_seed(0)
    model = backbones.build("efficientnet_lite0", 1, pretrained=False)
    tasks.get("regression").adapt_head(model)
    model.eval()
    mirrored = copy.deepcopy(model)
    with torch.no_grad():
        mirrored.head[-1].weight.neg_()
        mirrored.head[-1].bias.neg_()
    prep = backbones.preprocessing("efficientnet_lite0", 64)
    picture = torch.from_numpy(np.array(busy_picture("square", random.Random(1))[0].resize(
        (prep.crop_size, prep.crop_size)))).permute(2, 0, 1).contiguous()
    high, low = (explain(m, prep, picture) for m in (model, mirrored))
    assert {high.sign, low.sign} == {1.0, -1.0}
    for found in (high, low):
        assert found.cam.shape == (prep.crop_size, prep.crop_size) and found.image.size == (64, 64)
        assert found.cam.max() > 0.5 and found.cam.std() > 0.05, "a blank heatmap"
    assert similarity(high.cam, low.cam) > 0.99


def test_model_card_is_self_contained_escaped_and_in_the_bundle(trained_run, tmp_path, capsys):
    import shutil
    import zipfile

    from core.cli import main
    from core.serving.export import export_bundle

    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    hostile = "<img src=x onerror=alert(1)>"
    config = read_json(run / "config.json")
    write_json(run / "config.json", config | {"data_name": hostile})
    report = read_json(run / "evaluation.json")
    first = report["predictions"][0]
    wrong = next(label for label in report["labels"] if label != first["true"])
    report["predictions"][0] = first | {"predicted": wrong, "correct": False}  # a mistake to explain
    report["interval_notes"].append(f"With 2 images of '{hostile}', its recall could be anywhere from 1% to 99%.")
    write_json(run / "evaluation.json", report)
    assert main(["report", "--run", str(run)]) == 0
    card = Path(json.loads(capsys.readouterr().out)["path"])
    text = card.read_text(encoding="utf-8")
    assert hostile not in text and "&lt;img src=x onerror=alert(1)&gt;" in text
    assert "data:image/png;base64," in text and "<script" not in text and "http" not in text
    for section in ("Intended use", "Metrics", "95% interval", "Calibration", "abstention", "Worst classes"):
        assert section in text
    bundle = export_bundle(run, tmp_path / "bundle.zip", with_onnx=False).path
    assert "model_card.html" in zipfile.ZipFile(bundle).namelist()
