"""One owner of a run: both launch paths set a run up the same way; the data is read and split once; the run
folder holds what its pages show; feature extraction is one thing however its depth was written."""
from __future__ import annotations

import json
import threading

import pytest

from core import tasks
from core.data import datasets
from core.models.features import FeatureCache
from core.runs import folder as runs
from core.runs import pipeline
from core.tasks import Evaluation
from core.training.config import FREEZE_ALL, TrainConfig, trains_head_only
from core.training.events import EventLog
from core.training.progress import RunProgress

QUICK = dict(image_size=64, epochs=2, early_stopping=0, batch_size=8)


def test_both_launch_paths_build_the_feature_cache_scoped_to_the_workspace(tmp_path, monkeypatch):
    """The torchrun path used to build an unscoped cache, so one workspace's runs were fast on another's images."""
    run = runs.create(tmp_path / "ws-a" / "runs", TrainConfig(data="x"))
    cache = pipeline.feature_cache(tmp_path / "home", run)
    assert cache.namespace == str((tmp_path / "ws-a" / "runs").resolve())
    monkeypatch.setenv("RANK", "1")  # a non-main process of a torchrun launch keeps no cache of its own
    assert pipeline.feature_cache(tmp_path / "home", run).directory is None


def test_the_data_is_split_once_and_the_trust_step_uses_the_fits_own_records(shapes_folder, tmp_path, monkeypatch):
    calls = []
    real_split = datasets.split
    monkeypatch.setattr("core.training.data.split", lambda *a, **k: calls.append(1) or real_split(*a, **k))
    config = TrainConfig(data=str(shapes_folder), **QUICK)
    run = runs.create(tmp_path / "runs", config)
    state = pipeline.execute(config, run.path, EventLog(run.metrics_file), threading.Event(), tmp_path / "work",
                             FeatureCache(None))
    assert state == "finished" and calls == [1]
    evaluation = run.evaluation()
    _, val = real_split(datasets.inspect_data(shapes_folder, tmp_path / "work"), config.val_split, config.seed)
    assert [p["sha256"] for p in evaluation.predictions] == [r.sha256 for r in val]
    # the records come from the fit: the unknown-input reference holds exactly the training images
    assert evaluation.trust["ood"]["reference_images"] == len(datasets.inspect_data(shapes_folder).images) - len(val)


def test_a_run_folder_outlives_its_extracted_data(shapes_folder, tmp_path):
    """Evaluate, the model card and the export's check read the validation images from the run folder."""
    import shutil

    from core.serving.export import export_bundle
    from core.serving.model_card import build_html

    data = shutil.copytree(shapes_folder, tmp_path / "data")
    config = TrainConfig(data=str(data), **QUICK)
    run = runs.create(tmp_path / "runs", config)
    assert pipeline.execute(config, run.path, EventLog(run.metrics_file), threading.Event(), tmp_path) == "finished"
    shutil.rmtree(data)  # the clean-up removed the extracted data
    evaluation = run.evaluation()
    assert all(run.val_pixels(p["sha256"]) is not None for p in evaluation.predictions)
    assert export_bundle(run.path, tmp_path / "bundle.zip", with_onnx=False).images_checked == min(8, len(evaluation.predictions))
    assert "Model card" in build_html(run.path)


def test_feature_extraction_is_one_thing_however_its_depth_was_written():
    """App runs stored the stage count (9 for the default backbone) while cross-validation and the label review
    tested for "all", so they treated feature-extraction runs as fine-tuned."""
    assert trains_head_only(FREEZE_ALL, 9) and trains_head_only(9, 9) and not trains_head_only(7, 9)
    assert TrainConfig(data="x", freeze_depth=9).trains_head_only()  # efficientnet_lite0 has 9 stages
    assert not TrainConfig(data="x", freeze_depth=7).trains_head_only()


def test_the_features_pass_has_its_own_progress_before_the_first_epoch():
    progress = RunProgress()
    progress.add([{"event": "run_started", "epochs": 10, "time": 1.0},
                  {"event": "features", "part": "train", "done": 230, "total": 500, "time": 2.0}])
    summary = progress.summary("running")
    assert summary.text().startswith("Computing features: 230 of 500 images") and summary.epoch == 0
    progress.add([{"event": "batch_end", "epoch": 1, "batch": 1, "batches": 4, "loss": 1.0, "images_per_s": 9.0,
                   "time": 3.0}])
    assert progress.summary("running").text().startswith("Epoch 1 of 10")


def test_a_run_emits_feature_progress(shapes_folder, tmp_path):
    events = EventLog()
    config = TrainConfig(data=str(shapes_folder), **QUICK)
    run = runs.create(tmp_path / "runs", config)
    pipeline.execute(config, run.path, events, threading.Event(), tmp_path, FeatureCache(None))
    seen = [e.data for e in events.of_kind("features")]
    assert seen and seen[-1]["done"] == seen[-1]["total"]


def test_an_evaluation_written_before_tasks_existed_still_reads():
    flat = {"accuracy": 0.9, "macro_f1": 0.88, "per_class": [{"label": "a", "support": 3}], "confusion": [[3]],
            "labels": ["a"], "mistakes": [], "predictions": [], "num_images": 3,
            "calibration": {"temperature": 1.2}, "trust_error": "boom"}
    evaluation = Evaluation.from_json(flat)
    assert evaluation.task == "single" and evaluation.accuracy == 0.9 and evaluation.per_label[0]["label"] == "a"
    assert evaluation.trust == {"calibration": {"temperature": 1.2}, "error": "boom"}
    assert Evaluation.from_json(json.loads(json.dumps(evaluation.to_json()))) == evaluation
    assert Evaluation.from_json({"accuracy": 1}) is None and Evaluation.from_json("junk") is None


def test_an_unknown_task_is_refused_in_a_sentence():
    with pytest.raises(ValueError, match="unknown task 'maybe'; choose one of: single, multi, regression"):
        tasks.get("maybe")
