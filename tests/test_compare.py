"""'Compare for me' and the prototype head: the leaderboard on real JPEGs with the bundled Lite0 (the only backbone
whose weights a test machine has), its recommendation, cancelling, refusals, the queued job through the command
line, and a prototype-head run that saves, loads and exports like any other."""
from __future__ import annotations

import json
import subprocess
import sys
import threading

import pytest
import torch

from core.data import sample
from core.insight.compare import compare_backbones, recommend
from core.models.features import FeatureCache
from core.training import prototype

LITE0 = "efficientnet_lite0"
SIZE = 64  # px: the comparison's passes stay cheap; what is measured is the same at any size


@pytest.fixture(scope="module")
def few(tmp_path_factory):
    """Three shapes, 5 real JPEGs each: 'few images a class'."""
    return sample.write_folder(tmp_path_factory.mktemp("few"), per_class=5, size=SIZE, seed=3)


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return FeatureCache(tmp_path_factory.mktemp("feature-cache"))


def test_leaderboard_scores_both_heads_leave_one_out_with_intervals_and_recommends_one(few, cache, tmp_path):
    seen = []
    board = compare_backbones(few, [LITE0, "dinov2_vits14"], work_dir=tmp_path, cache=cache, progress=seen.append,
                              image_size=SIZE)
    assert board.refusal is None and not board.cancelled
    assert board.method == "leave-one-out" and board.images == 15 and board.classes == 3  # 5 a class: every image
    assert [(r["backbone"], r["head"]) for r in board.rows] == [(LITE0, "linear"), (LITE0, "prototype")]
    for row in board.rows:
        assert row["images"] == 15 and row["accuracy"] == pytest.approx(row["correct"] / 15, abs=1e-4)
        assert row["accuracy_low"] <= row["accuracy"] <= row["accuracy_high"]
        assert row["accuracy_high"] - row["accuracy_low"] > 0.2  # 15 images: the interval says how little that is
        assert 0 <= row["macro_f1"] <= 1 and row["seconds_per_image"] > 0 and row["params_m"] == 4.7
    # No weights for DINOv2 here: listed with its reason, never downloaded.
    assert [s["backbone"] for s in board.skipped] == ["dinov2_vits14"] and "never downloads" in board.skipped[0]["reason"]
    pick = board.recommendation
    best = max(board.rows, key=lambda r: r["accuracy"])
    assert pick["backbone"] == LITE0 and pick["head"] == best["head"] and pick["reason"].count(".") >= 1
    assert {"features", "scoring", "done"} <= {s["stage"] for s in seen}
    json.dumps(board.to_json())  # the job writes it as compare.json


def _row(backbone, head, accuracy, low, high, params):
    return {"backbone": backbone, "title": backbone.title(), "head": head, "accuracy": accuracy, "accuracy_low": low,
            "accuracy_high": high, "params_m": params, "gflops": params / 10, "images": 40, "method": "5-fold"}


def test_recommendation_is_the_smallest_within_the_best_interval_else_the_best():
    overlapping = [_row("big", "linear", 0.90, 0.80, 0.96, 80), _row("small", "linear", 0.84, 0.72, 0.92, 5),
                   _row("small", "prototype", 0.86, 0.75, 0.93, 5)]
    pick = recommend(overlapping)
    assert (pick["backbone"], pick["head"]) == ("small", "prototype") and "cannot tell these apart" in pick["reason"]
    apart = [_row("big", "linear", 0.95, 0.90, 0.98, 80), _row("small", "linear", 0.70, 0.60, 0.78, 5)]
    pick = recommend(apart)
    assert (pick["backbone"], pick["head"]) == ("big", "linear") and "scored best" in pick["reason"]
    assert recommend([]) is None


def test_prototype_leave_one_out_is_exact():
    features, targets = torch.randn(20, 6), torch.tensor([0] * 7 + [1] * 8 + [2] * 5)
    fast = prototype.leave_one_out(features, targets, 3)
    for i in range(20):
        keep = torch.arange(20) != i
        means = prototype.prototypes(features[keep], targets[keep], 3)
        assert fast[i] == prototype.predict(features[i:i + 1], means)[0]


def test_cancelling_stops_the_comparison_within_the_feature_pass(few, tmp_path):
    stop = threading.Event()

    def progress(step):
        stop.set()  # the user presses Cancel as the first backbone starts

    board = compare_backbones(few, [LITE0], work_dir=tmp_path, cache=FeatureCache(None), stop=stop,
                              progress=progress, image_size=SIZE)
    assert board.cancelled and board.rows == [] and board.refusal is None


def test_data_it_cannot_compare_gets_one_sentence_not_an_error(tmp_path):
    one_class = sample.write_folder(tmp_path / "one", per_class=3, size=32, shapes=("circle",))
    lonely = sample.write_folder(tmp_path / "lonely", per_class=1, size=32)
    for data, names, words in [(one_class, None, "two folders of images"), (lonely, None, "at least 2 images"),
                               (lonely, ["no_such_net"], "There is no backbone 'no_such_net'")]:
        board = compare_backbones(data, names, work_dir=tmp_path / "w")
        assert words in board.refusal and board.rows == [] and "\n" not in board.refusal


def test_compare_command_runs_as_a_queued_job_and_prints_the_leaderboard(few, tmp_path, capsys):
    done = subprocess.run([sys.executable, "-m", "core", "compare", "--data", str(few), "--backbones", LITE0,
                           "--image-size", str(SIZE), "--out", str(tmp_path / "cmp")],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    board = json.loads(done.stdout.strip().splitlines()[-1])
    assert {r["head"] for r in board["rows"]} == {"linear", "prototype"} and board["recommendation"]["backbone"] == LITE0
    from core.runs.folder import Run

    run = Run(board["folder"])  # the job's own folder: status, progress events, the leaderboard
    assert run.state == "finished" and (run.path / "compare.json").is_file() and (run.path / "worker.log").is_file()
    assert any(r["event"] == "compare_progress" for r in run.records())
    from core.cli import main

    assert main(["compare", "--data", str(few), "--backbones", "nope", "--out", str(tmp_path / "cmp")]) == 2
    assert capsys.readouterr().err.startswith("error: There is no backbone 'nope'")


def test_a_prototype_head_run_is_saved_loaded_and_exported_like_any_run(few, tmp_path):
    from core.runs import folder as runs
    from core.runs import pipeline
    from core.serving.export import export_bundle
    from core.training.config import ConfigError, TrainConfig
    from core.training.events import EventLog

    config = TrainConfig(data=str(few), image_size=SIZE, head="prototype", val_split=0.2)
    run = runs.create(tmp_path / "runs", config)
    state = pipeline.execute(config, run.path, EventLog(run.metrics_file), threading.Event(), tmp_path / "work")
    assert state == "finished", run.status()
    assert [m["epoch"] for m in run.metrics()] == [1]  # no epochs to run: the class means in one step
    model, labels, prep, loaded = run.load_model()
    assert loaded.head == "prototype" and labels == ["circle", "square", "triangle"]
    weight = model.head[-1].weight.detach()
    assert torch.allclose(weight / weight.norm(dim=1, keepdim=True),
                          torch.nn.functional.normalize(weight, dim=1)) and model.head[-1].bias.abs().max() == 0
    result = export_bundle(run.path, tmp_path / "bundle.zip", with_onnx=False)
    assert result.verified and result.max_difference <= 1e-4
    with pytest.raises(ConfigError, match="prototype head"):
        TrainConfig(data=str(few), head="prototype", task="regression")
    fine_tune = TrainConfig(data=str(few), image_size=SIZE, head="prototype", freeze_depth=2)
    failed = runs.create(tmp_path / "runs", fine_tune)
    assert pipeline.execute(fine_tune, failed.path, EventLog(failed.metrics_file), threading.Event(),
                            tmp_path / "work") == "failed"
    assert "feature extraction" in failed.status()["message"]


def _panel(root: str, data: str) -> None:
    import streamlit as st

    from ui.common import Workspace
    from ui.compare import compare_panel

    compare_panel(Workspace("0" * 32, __import__("pathlib").Path(root)), {"path": data, "name": "few"})
    st.write(f"preselected: {st.session_state.get('backbone')} / {st.session_state.get('head')}")


def test_the_panel_shows_the_last_leaderboard_and_preselects_its_pick_on_the_train_page(tmp_path):
    from streamlit.testing.v1 import AppTest

    from core.files import write_json
    from core.runs import compare_job

    rows = [_row("efficientnet_lite0", "linear", 0.8, 0.6, 0.9, 4.7), _row("efficientnet_lite2", "prototype",
                                                                         0.9, 0.7, 0.97, 6.1)]
    for r in rows:
        r.update(seconds_per_image=0.03, macro_f1=0.8)
    run = compare_job.create(tmp_path / "comparisons", compare_job.CompareRequest(str(tmp_path)))
    write_json(run.file(compare_job.RESULT), {"rows": rows, "skipped": [], "refusal": None, "cancelled": False,
                                              "recommendation": recommend(rows)})
    run.set_status("finished")
    at = AppTest.from_function(_panel, args=(str(tmp_path), str(tmp_path)), default_timeout=300).run()
    assert not at.exception
    table = at.dataframe[0].value
    assert list(table["head"]) == ["prototype", "linear"] and table["accuracy (95% interval)"][0] == "90% (70% to 97%)"
    assert "cannot tell these apart" in at.success[0].value  # Lite0 is within Lite2's interval and smaller
    at.button(key="compare_use").click().run()
    assert "preselected: efficientnet_lite0 / linear" in [m.value for m in at.markdown]
