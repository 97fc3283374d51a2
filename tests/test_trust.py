"""Honest numbers, calibrated confidence, "not sure" and "unknown input", on a real trained run."""
from __future__ import annotations

import json
import random
import subprocess
import sys
import zipfile

import numpy as np
import pytest
from PIL import Image, ImageDraw

from core import tasks
from core.cli import main
from core.data import sample
from core.data.report import ImageRecord
from core.insight.crossval import cross_validate_features, fine_tuning_note
from core.serving.inference import Predictor
from core.stats import calibration, intervals


def test_wilson_matches_the_textbook_interval_and_stays_inside_0_1():
    low, high = intervals.wilson(9, 10)
    assert (round(low, 3), round(high, 3)) == (0.596, 0.982)
    assert intervals.wilson(0, 5)[0] == 0.0 and intervals.wilson(5, 5)[1] == pytest.approx(1.0)


def test_bootstrap_f1_is_seeded_and_holds_the_estimate():
    rng = np.random.default_rng(0)
    truth = rng.integers(0, 3, 80)
    guess = np.where(rng.random(80) < 0.8, truth, rng.integers(0, 3, 80))
    first = intervals.bootstrap_macro_f1(truth.tolist(), guess.tolist(), 3, seed=1)
    assert first == intervals.bootstrap_macro_f1(truth.tolist(), guess.tolist(), 3, seed=1)
    assert first[0] < intervals.macro_f1(truth, guess, 3) < first[1]


def test_report_gives_intervals_and_a_sentence_when_a_class_is_small():
    labels = ["rose", "tulip"]
    records = [ImageRecord(f"{c}/{i}.jpg", c, None, f"{c}{i}", 9, 9) for c, n in (("rose", 10), ("tulip", 60))
               for i in range(n)]
    probabilities = np.zeros((70, 2), dtype=np.float32)
    probabilities[np.arange(70), [0] * 9 + [1] * 61] = 1.0  # one rose missed
    import torch
    report = tasks.get("single").evaluate(labels, records, torch.from_numpy(probabilities))
    rose = report.per_label[0]
    assert rose["recall_interval"][0] < 0.9 < rose["recall_interval"][1]
    assert any(note.startswith("With 10 images of 'rose', its recall could be anywhere from")
               for note in report.interval_notes)
    assert report.intervals["accuracy"][0] < report.accuracy <= report.intervals["accuracy"][1]
    assert report.mistakes()[0]["true"] == "rose" and len(report.mistakes()) == 1


def test_temperature_scaling_lowers_ece_on_held_out_images():
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 2, (2000, 4))
    true_probabilities = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    targets = np.array([rng.choice(4, p=p) for p in true_probabilities])
    overconfident = np.exp(3 * logits) / np.exp(3 * logits).sum(1, keepdims=True)  # what an overfit net says
    fit, held_out = slice(0, 1000), slice(1000, 2000)
    temperature = calibration.fit_temperature(calibration.log_probabilities(overconfident[fit]), targets[fit])
    assert temperature == pytest.approx(3.0, rel=0.15)
    after = calibration.apply_temperature(calibration.log_probabilities(overconfident[held_out]), temperature)
    assert calibration.ece(after, targets[held_out]) < 0.5 * calibration.ece(overconfident[held_out], targets[held_out])


def test_abstention_threshold_reaches_the_target_on_what_it_answers():
    confidence = np.linspace(0.51, 1.0, 100)
    probabilities = np.stack([confidence, 1 - confidence], 1)
    targets = np.where(np.arange(100) < 30, 1, 0)  # the 30 least confident are wrong
    chosen = calibration.choose_threshold(probabilities, targets, target=0.95)
    assert chosen["accuracy"] >= 0.95 and chosen["coverage"] == pytest.approx(0.73)  # 70 right + 3 wrong


def test_cross_validation_on_features_reports_mean_and_spread():
    rng = np.random.default_rng(0)
    targets = np.repeat([0, 1], 30)
    features = rng.normal(size=(60, 8)) + targets[:, None] * 2.0
    result = cross_validate_features(features, targets, folds=5, seed=0)
    assert len(result.accuracy) == 5 and result.summary()["accuracy_mean"] > 0.8
    assert "5 full trainings" in fine_tuning_note(5, 60.0) and "minutes" in fine_tuning_note(5, 60.0)


def test_cross_validation_scores_tags_and_numbers_with_their_own_measures():
    """Tags and numbers get k folds too: F1 over all tags and the exactly-right share; the typical error and R²."""
    rng = np.random.default_rng(0)
    tags = rng.integers(0, 2, size=(80, 3))
    features = rng.normal(size=(80, 8)) + np.pad(tags * 3.0, ((0, 0), (0, 5)))
    tagged = cross_validate_features(features, tags, folds=5, seed=0, task="multi")
    summary = tagged.summary()
    assert len(summary["micro_f1_per_fold"]) == len(summary["exact_per_fold"]) == 5 and summary["task"] == "multi"
    assert summary["micro_f1_mean"] > 0.8 and 0.5 < summary["exact_mean"] <= summary["micro_f1_mean"]
    assert "F1 over all tags" in tagged.sentence() and "exactly the right tags" in tagged.sentence()
    shuffled = cross_validate_features(features, rng.permutation(tags), folds=5, seed=0, task="multi")
    assert shuffled.summary()["micro_f1_mean"] < summary["micro_f1_mean"] - 0.2  # it measures, it does not flatter
    values = features[:, 0] * 2.0 + rng.normal(scale=0.1, size=80)
    scored = cross_validate_features(features, values, folds=5, seed=0, task="regression").summary()
    assert scored["r2_mean"] > 0.9 and scored["mae_mean"] < 0.3 and len(scored["mae_per_fold"]) == 5


def test_the_run_stores_calibration_threshold_and_ood_reference(trained_run):
    trust = json.loads((trained_run / "evaluation.json").read_text())["trust"]
    assert "error" not in trust
    assert set(trust["calibration"]) >= {"temperature", "ece_before", "ece_after"}
    assert 0 < trust["abstention"]["threshold"] <= 1 and trust["abstention"]["curve"]
    stored = json.loads((trained_run / "calibration.json").read_text())
    assert stored["temperature"] == trust["calibration"]["temperature"]
    assert stored["threshold"] == trust["abstention"]["threshold"] and stored["task"] == "single"
    assert (trained_run / "ood_reference.safetensors").stat().st_size < 5 << 20


def _checkerboard(rng: random.Random, size: int = 96) -> Image.Image:
    cells = rng.choice([4, 6, 8, 12])
    y, x = np.mgrid[:size, :size]
    board = ((y * cells // size) + (x * cells // size)) % 2 == 0
    pixels = np.where(board[..., None], [rng.randrange(256) for _ in range(3)], [rng.randrange(256) for _ in range(3)])
    return Image.fromarray(pixels.astype(np.uint8))


def _stripes(rng: random.Random, size: int = 96) -> Image.Image:
    image = Image.new("RGB", (size, size), tuple(rng.randrange(256) for _ in range(3)))
    pen, step = ImageDraw.Draw(image), rng.choice([3, 5, 8])
    for i in range(0, size, step):
        pen.line([(i, 0), (i, size)], fill=tuple(rng.randrange(256) for _ in range(3)), width=2)
    return image


def test_unlike_images_are_unknown_and_its_own_kind_are_not(trained_run, shapes_folder):
    predictor = Predictor(trained_run)
    rng = random.Random(7)
    different = [_checkerboard(rng) for _ in range(15)] + [_stripes(rng) for _ in range(15)]
    fresh_shapes = [sample.draw(rng.choice(sample.SHAPES), rng, 96) for _ in range(30)]
    validation = [shapes_folder / p["path"] for p in json.loads((trained_run / "evaluation.json").read_text())[
        "predictions"]]
    unknown = lambda images: np.mean([d.unknown for d in predictor.predict_details(images)])  # noqa: E731
    assert unknown(different) >= 0.8
    assert unknown(validation) <= 0.1
    assert unknown(fresh_shapes) <= 0.1


def test_predict_cli_json_has_the_trust_flags(trained_run, shapes_folder, capsys):
    image = next(shapes_folder.rglob("*.jpg"))
    assert main(["predict", "--run", str(trained_run), str(image)]) == 0
    answer = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert {"image", "top_k", "unsure", "unknown", "ood_score"} <= set(answer)
    assert isinstance(answer["unsure"], bool) and isinstance(answer["ood_score"], float)


def test_standalone_predict_is_calibrated_and_skips_a_bad_image(trained_run, shapes_folder, tmp_path):
    from core.serving.export import export_bundle

    bundle = export_bundle(trained_run, tmp_path / "bundle.zip", with_onnx=False).path
    folder = tmp_path / "model"
    zipfile.ZipFile(bundle).extractall(folder)
    assert (folder / "calibration.json").exists()
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"not an image at all")
    good = next(shapes_folder.rglob("*.jpg"))
    done = subprocess.run([sys.executable, str(folder / "predict.py"), str(broken), str(good)], capture_output=True,
                          text=True, timeout=120)
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    assert "error" in lines[0] and "Traceback" not in done.stderr
    expected = Predictor(trained_run).predict_details([good])[0]
    assert lines[1]["top_k"][0]["label"] == expected.top_k[0]["label"]
    assert lines[1]["top_k"][0]["probability"] == pytest.approx(expected.top_k[0]["probability"], abs=1e-3)
    assert lines[1]["unsure"] == expected.unsure


def test_calibrated_probabilities_still_sum_to_one(trained_run, shapes_folder):
    probabilities = Predictor(trained_run).probabilities(sorted(shapes_folder.rglob("*.jpg"))[:4])
    assert probabilities.sum(1).numpy() == pytest.approx(np.ones(4), abs=1e-5)


def test_a_run_without_trust_files_still_predicts(trained_run, tmp_path):
    import shutil

    copy = tmp_path / "old_run"
    shutil.copytree(trained_run, copy, ignore=shutil.ignore_patterns("calibration.json", "ood_reference*"))
    details = Predictor(copy).predict_details([Image.new("RGB", (96, 96), "red")])[0]
    assert details.ood_score is None and details.unknown is False and details.unsure is False


def test_cli_cv_says_fine_tuning_would_be_k_trainings(capsys, tmp_path):
    assert main(["cv", str(tmp_path), "--freeze-depth", "2", "--folds", "4"]) == 0
    assert "4 full trainings" in json.loads(capsys.readouterr().out)["note"]



def test_a_partly_fine_tuned_runs_embeddings_reuse_the_cached_frozen_stages_and_match_the_whole_network(
        shapes_folder, tmp_path):
    import threading

    import torch

    from core.data.imageset import decode_all
    from core.insight.trust import embeddings
    from core.models.features import FeatureCache
    from core.training.config import TrainConfig
    from core.training.data import prepare
    from core.training.events import EventLog
    from core.training.loop import fit

    config = TrainConfig(data=str(shapes_folder), weights="none", freeze_depth=5, image_size=64, epochs=1,
                         augment="light", batch_size=16)
    cache = FeatureCache(tmp_path / "cache")
    result = fit(config, prepare(config, tmp_path), EventLog(), threading.Event(), cache)
    assert 0 < result.frozen_stages < len(result.model.stages)
    train, val = embeddings(result, config, cache)

    val_records = result.data.val
    images = result.preprocessing.normalize(decode_all(result.data.root, val_records, result.preprocessing))
    with torch.inference_mode():
        whole = result.model.head[:-1](result.model.run_stages(images)).numpy()
    assert train.shape[0] > val.shape[0] == len(val_records)
    assert np.abs(val - whole).max() < 0.05 * max(np.abs(whole).max(), 1e-6)  # the prefix is cached in fp16


def test_new_pictures_of_a_tight_classroom_set_are_not_unknown_but_other_things_are():
    """A few near-identical training images per class give a tiny 99% quantile; new pictures of the same kind,
    slightly more varied, must still be known, while something unlike every class is unknown."""
    from core.stats import neighbours as ood

    rng = np.random.default_rng(0)
    centres = np.eye(3, 64) * 10 + 1.0  # three classes, far apart
    train = np.concatenate([c + rng.normal(0, 0.3, (8, 64)) for c in centres])
    labels = [name for name in ("oak", "maple", "fern") for _ in range(8)]
    val = np.concatenate([c + rng.normal(0, 0.3, (2, 64)) for c in centres])
    scorer, info = ood.fit_reference(train, val, 0, labels)
    fresh = np.concatenate([c + rng.normal(0, 1.0, (5, 64)) for c in centres])  # same kinds, three times more varied
    assert (scorer.score(fresh) > info["threshold"]).mean() <= 0.1
    assert info["threshold"] > info["quantile_threshold"]  # the quantile alone would have called them unknown
    assert (scorer.score(fresh) > info["quantile_threshold"]).mean() >= 0.5
    unlike = -np.ones((4, 64)) + rng.normal(0, 0.3, (4, 64))
    assert (scorer.score(unlike) > info["threshold"]).all()
