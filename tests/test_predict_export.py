"""Using a trained run: predictions, the command line, and the exported bundle on its own."""
from __future__ import annotations

import json
import subprocess
import sys
import zipfile

from PIL import Image

from core.serving.export import export_bundle
from core.serving.inference import Predictor


def test_predict_gives_sorted_top_k_with_the_runs_labels(trained_run, shapes_folder):
    predictor = Predictor(trained_run)
    images = sorted((shapes_folder / "circle").glob("*.jpg"))[:2] + sorted((shapes_folder / "square").glob("*.jpg"))[:1]
    results = predictor.predict(images, top_k=2)
    assert len(results) == 3 and all(len(top) == 2 for top in results)
    for top in results:
        assert top[0]["probability"] >= top[1]["probability"] and top[0]["label"] in predictor.labels
    assert [top[0]["label"] for top in results] == ["circle", "circle", "square"]
    with Image.open(images[0]) as opened:
        assert predictor.predict([opened], top_k=2)[0] == results[0]


def test_predict_command_prints_one_json_line_per_image(trained_run, shapes_folder):
    image = str(sorted((shapes_folder / "triangle").glob("*.jpg"))[0])
    out = subprocess.run([sys.executable, "-m", "core", "predict", "--run", str(trained_run), image, "--top-k", "3"],
                         capture_output=True, text=True, check=True).stdout.strip().splitlines()
    line = json.loads(out[0])
    assert line["image"] == image and line["top_k"] == Predictor(trained_run).predict([image], top_k=3)[0]
    assert abs(sum(p["probability"] for p in line["top_k"]) - 1) < 1e-3


def test_export_is_verified_and_its_predict_script_agrees_with_the_app(trained_run, shapes_folder, tmp_path):
    result = export_bundle(trained_run, tmp_path / "bundle.zip")
    validation_images = len(json.loads((trained_run / "evaluation.json").read_text())["predictions"])
    assert result.verified and result.images_checked == min(8, validation_images) and result.max_difference <= 1e-4
    names = set(zipfile.ZipFile(result.path).namelist())
    assert {"model.torchscript.pt", "labels.json", "preprocessing.json", "predict.py", "README.txt"} <= names
    assert result.onnx_included == ("model.onnx" in names)
    folder = tmp_path / "unpacked"
    zipfile.ZipFile(result.path).extractall(folder)  # our own bundle, not user input
    image = str(sorted((shapes_folder / "square").glob("*.jpg"))[1])
    line = json.loads(subprocess.run([sys.executable, str(folder / "predict.py"), image, "--top-k", "3"],
                                     capture_output=True, text=True, check=True, cwd=tmp_path).stdout)
    expected = Predictor(trained_run).predict([image], top_k=3)[0]
    assert [p["label"] for p in line["top_k"]] == [p["label"] for p in expected]
    for got, want in zip(line["top_k"], expected):
        assert abs(got["probability"] - want["probability"]) < 1e-4


def test_train_command_runs_headless_and_leaves_a_run(shapes_folder, tmp_path):
    done = subprocess.run([sys.executable, "-m", "core", "train", "--data", str(shapes_folder), "--epochs", "1",
                           "--image-size", "64", "--out", str(tmp_path / "runs")], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert summary["state"] == "finished" and 0 <= summary["val_accuracy"] <= 1
    assert "epoch 1/1" in done.stderr
    bad = subprocess.run([sys.executable, "-m", "core", "train", "--data", str(shapes_folder), "--optimizer", "lion"],
                         capture_output=True, text=True)
    assert bad.returncode == 2 and "invalid choice: 'lion'" in bad.stderr


def test_the_app_the_api_and_the_exported_predict_script_give_the_same_answers(trained_run, shapes_folder, tmp_path):
    """Answer for answer, also on pictures unlike every training image (noise, a photo of coffee): one product."""
    import numpy as np
    from fastapi.testclient import TestClient
    from skimage import data

    from core.serving.service import create_app

    Image.fromarray(np.random.default_rng(0).integers(0, 256, (200, 200, 3), dtype=np.uint8)).save(tmp_path / "noise.png")
    Image.fromarray(data.coffee()).save(tmp_path / "coffee.jpg", quality=90)
    images = [sorted((shapes_folder / label).glob("*.jpg"))[2] for label in ("circle", "square", "triangle")]
    images += [tmp_path / "noise.png", tmp_path / "coffee.jpg"]

    app = Predictor(trained_run).predict_details(images, top_k=3)
    with TestClient(create_app(trained_run, log_url=f"sqlite:///{tmp_path / 'log.sqlite'}")) as client:
        files = [("file", (p.name, p.read_bytes(), "image/png" if p.suffix == ".png" else "image/jpeg")) for p in images]
        api = client.post("/predict?top_k=3", files=files).json()["results"]
    bundle = tmp_path / "bundle"
    zipfile.ZipFile(export_bundle(trained_run, tmp_path / "bundle.zip", with_onnx=False).path).extractall(bundle)
    run = subprocess.run([sys.executable, str(bundle / "predict.py"), *map(str, images), "--top-k", "3"],
                         capture_output=True, text=True, check=True, cwd=tmp_path)
    script = [json.loads(line) for line in run.stdout.splitlines()]

    assert [a.unknown for a in app] == [False, False, False, True, True]  # the check is really exercised
    for mine, served, exported in zip(app, api, script):
        labels = [p["label"] for p in mine.top_k]
        assert [p["label"] for p in served["predictions"]] == labels == [p["label"] for p in exported["top_k"]]
        for ours, theirs in ((mine.top_k, served["predictions"]), (mine.top_k, exported["top_k"])):
            assert all(abs(a["probability"] - b["probability"]) < 5e-4 for a, b in zip(ours, theirs))
        assert mine.unsure == served["unsure"] == exported["unsure"]
        assert mine.unknown == served["unknown"] == exported["unknown"]
        assert abs(mine.ood_score - exported["ood_score"]) < 1e-3
