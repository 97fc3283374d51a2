"""Tags and scores, end to end: a metadata.csv in, a trained run out, and the same answers from the Predictor and
the command line."""
from __future__ import annotations

import json
import subprocess
import sys
import threading
import zipfile

import pytest

from core.cli import main
from core.data import sample
from core.data.datasets import inspect_data
from core.runs import folder as runs
from core.runs import pipeline
from core.serving.export import export_bundle
from core.serving.inference import Predictor
from core.training.config import TrainConfig
from core.training.events import EventLog

QUICK = dict(image_size=64, epochs=6, early_stopping=0, batch_size=16)


@pytest.fixture(scope="module")
def tagged(tmp_path_factory):
    return sample.write_tagged_folder(tmp_path_factory.mktemp("tagged"), 48, size=96, seed=2)


@pytest.fixture(scope="module")
def scored(tmp_path_factory):
    return sample.write_scored_folder(tmp_path_factory.mktemp("scored"), 48, size=96, seed=3)


@pytest.fixture(scope="module")
def tags_run(tagged, tmp_path_factory):
    return _train(tagged, "multi", tmp_path_factory.mktemp("tags_run"))


@pytest.fixture(scope="module")
def scores_run(scored, tmp_path_factory):
    return _train(scored, "regression", tmp_path_factory.mktemp("scores_run"))


def _train(data, task, tmp_path) -> runs.Run:
    config = TrainConfig(data=str(data), task=task, **QUICK)
    run = runs.create(tmp_path / "runs", config)
    state = pipeline.execute(config, run.path, EventLog(run.metrics_file), threading.Event(), tmp_path)
    assert state == "finished", run.status()
    return run


def test_the_task_is_read_from_the_metadata_column(tagged, scored, tmp_path):
    tags = inspect_data(tagged, tmp_path)
    assert tags.task == "multi" and tags.labels == ["circle", "square", "triangle"] and tags.trainable
    assert sum(tags.classes.values()) > len(tags.images)  # some pictures carry two or three tags
    values = inspect_data(scored, tmp_path)
    assert values.task == "regression" and values.labels == [] and values.details["values"]["count"] == 48


def test_a_multi_label_run_answers_with_every_label_above_its_threshold(tagged, tags_run, capsys):
    run = tags_run
    evaluation = run.evaluation()
    assert evaluation.task == "multi" and {"micro_f1", "macro_f1", "map", "exact_match"} <= set(evaluation.metrics)
    assert len(run.calibration()["thresholds"]) == 3
    picture = next(tagged.glob("*.jpg"))
    answer = Predictor(run.path).predict_details([picture])[0]
    assert set(answer.extra["labels"]) <= {"circle", "square", "triangle"} and len(answer.top_k) == 3
    assert main(["predict", "--run", str(run.path), str(picture)]) == 0
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert printed["labels"] == answer.extra["labels"] and "unknown" in printed


def test_a_score_run_answers_a_number_with_a_conformal_interval(scored, scores_run, capsys):
    run = scores_run
    evaluation = run.evaluation()
    assert evaluation.task == "regression" and evaluation.metrics["mae"] is not None
    assert evaluation.trust["conformal"]["coverage"] == 0.9
    picture = next(scored.glob("*.jpg"))
    answer = Predictor(run.path).predict_details([picture])[0].extra
    if answer.get("interval"):  # too few validation images promise no interval at all, and say so (unsure)
        low, high = answer["interval"]
        assert low <= answer["value"] <= high
    assert main(["predict", "--run", str(run.path), str(picture)]) == 0
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert printed["value"] == pytest.approx(answer["value"])
    assert main(["predict", "--run", str(run.path), "--coverage", "0.5", str(picture)]) == 0
    narrower = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    if answer.get("interval") and narrower.get("interval"):
        assert narrower["interval"][1] - narrower["interval"][0] <= answer["interval"][1] - answer["interval"][0]
        assert narrower["coverage"] == 0.5


def _exported_answers(run, pictures, tmp_path) -> list[dict]:
    result = export_bundle(run.path, tmp_path / "bundle.zip")
    assert result.verified, result.note
    zipfile.ZipFile(result.path).extractall(tmp_path / "bundle")  # our own bundle, not user input
    done = subprocess.run([sys.executable, str(tmp_path / "bundle" / "predict.py"), *map(str, pictures)],
                          capture_output=True, text=True, check=True, cwd=tmp_path)
    return [json.loads(line) for line in done.stdout.splitlines()]


def test_the_exported_predict_script_answers_tags_as_the_app_does(tagged, tags_run, tmp_path):
    pictures = sorted(tagged.glob("*.jpg"))[:4]
    app = Predictor(tags_run.path).predict_details(pictures)
    for mine, exported in zip(app, _exported_answers(tags_run, pictures, tmp_path), strict=True):
        assert exported["labels"] == mine.extra["labels"] and exported["unsure"] == mine.unsure
        assert [p["label"] for p in exported["top_k"]] == [p["label"] for p in mine.top_k]
        assert all(abs(a["probability"] - b["probability"]) < 5e-4 for a, b in zip(exported["top_k"], mine.top_k))
        assert exported["unknown"] == mine.unknown


def test_the_exported_predict_script_answers_scores_as_the_app_does(scored, scores_run, tmp_path):
    pictures = sorted(scored.glob("*.jpg"))[:4]
    app = Predictor(scores_run.path).predict_details(pictures)
    for mine, exported in zip(app, _exported_answers(scores_run, pictures, tmp_path), strict=True):
        assert exported["value"] == pytest.approx(mine.extra["value"], abs=1e-3)
        assert "top_k" in exported and exported["unsure"] == mine.unsure and exported["unknown"] == mine.unknown
        if mine.extra.get("interval"):
            assert exported["interval"] == pytest.approx(mine.extra["interval"], abs=1e-3)
