"""The progress summary (ETA, early stop, ended states), the log reader, and run folders with damaged files."""
from __future__ import annotations

import json
import shutil

import pytest

from core.runs import folder as runs
from core.runs.folder import Run
from core.serving.export import export_bundle
from core.serving.inference import Predictor
from core.training import estimate
from core.training.events import JsonlTail
from core.training.progress import MAX_BATCH_POINTS, Progress, RunProgress, eta_seconds, format_duration


def test_eta_uses_the_pace_of_later_epochs_and_batches_before_the_first_one_ends():
    # The first epoch took 30 s (it computed features), later ones 5 s each: 7 epochs left -> 35 s, not 210 s.
    assert eta_seconds(10, [30.0, 35.0, 40.0], 0.0) == pytest.approx(35.0)
    assert eta_seconds(10, [30.0, 35.0, 40.0], 0.5) == pytest.approx(32.5)
    assert eta_seconds(4, [12.0], 0.0) == pytest.approx(36.0)
    assert eta_seconds(4, [], 0.25, seconds_per_epoch_from_batches=8.0) == pytest.approx(30.0)
    assert eta_seconds(4, [], 0.0) is None
    assert eta_seconds(3, [1.0, 2.0, 3.0], 0.0) == 0.0


def started(epochs=10):
    return {"event": "run_started", "time": 0.0, "epochs": epochs, "backbone": "b", "device": "cpu"}


def batch(epoch, index, of, at):
    return {"event": "batch_end", "time": at, "epoch": epoch, "batch": index, "batches": of, "loss": 1.0,
            "images_per_s": 50.0}


def epoch_end(epoch, elapsed):
    return {"event": "epoch_end", "epoch": epoch, "epochs": 10, "elapsed_s": elapsed, "images_per_s": 40.0,
            "train_loss": 1.0, "val_loss": 1.0, "train_accuracy": 0.5, "val_accuracy": 0.5}


def test_progress_during_training_counts_the_current_epoch_and_the_time_left():
    progress = RunProgress()
    progress.add([started(), batch(1, 2, 10, 10.0), batch(1, 6, 10, 12.0)])
    now = progress.summary("running")
    assert (now.state, now.epoch, now.fraction) == ("training", 0, pytest.approx(0.06))
    assert now.eta_s == pytest.approx(5.0 * (10 - 0.6))  # 0.5 s a batch, 10 batches an epoch
    progress.add([epoch_end(1, 6.0), epoch_end(2, 10.0)])
    assert progress.summary("running").text() == "Epoch 3 of 10 · about 32 s left · 40 images/s"


def test_early_stopping_shows_a_complete_bar_that_says_when_and_why():
    progress = RunProgress()
    progress.add([started(), epoch_end(1, 1.0), epoch_end(2, 2.0), epoch_end(3, 3.0), epoch_end(4, 4.0),
                  {"event": "run_finished", "epochs_run": 4, "epochs": 10, "best_epoch": 1, "early_stopping": 3,
                   "message": "Training finished."}])
    done = progress.summary("running")  # the end event wins over a state read a moment earlier
    assert done.state == "finished" and done.fraction == 1.0 and done.stopped_early
    assert "stopped early at epoch 4 of 10" in done.text() and "not improved for 3 epochs" in done.text()


def test_ended_runs_never_read_as_queued_or_preparing():
    cancelled_in_queue = RunProgress()
    cancelled_in_queue.add([{"event": "run_cancelled", "message": "Cancelled before it started."}])
    assert cancelled_in_queue.summary("queued").state == "cancelled"
    assert RunProgress().summary("interrupted").state == "interrupted"
    assert RunProgress().summary("running").state == "preparing"
    assert Progress("queued").state == "queued"


def test_the_batch_series_stays_bounded_and_spans_the_whole_run():
    progress = RunProgress()
    progress.add([started(10)] + [batch(e, b, 100, e * 100 + b) for e in range(1, 11) for b in range(1, 101)])
    assert len(progress.batches) <= MAX_BATCH_POINTS
    assert progress.batches[0]["epoch"] == 1 and progress.batches[-1]["epoch"] == 10


def test_the_log_reader_parses_only_new_whole_lines_and_skips_damaged_ones(tmp_path):
    log = tmp_path / "metrics.jsonl"
    log.write_text('{"event": "run_started", "epochs": 2}\n{"event": "batch_e')
    tail = JsonlTail(log)
    assert [r["event"] for r in tail.read()] == ["run_started"]
    with log.open("a") as sink:
        sink.write('nd", "batch": 1}\n[1, 2]\n{"event": "epoch_end", "epoch": 1}\n')
    assert [r["event"] for r in tail.read()] == ["batch_end", "epoch_end"]  # only what was added
    assert tail.skipped == 1 and tail.read() == []
    assert format_duration(42) == "42 s" and format_duration(12 * 60 + 10) == "12 min"


def test_a_run_with_damaged_files_says_so_and_its_model_still_predicts_and_exports(trained_run, tmp_path,
                                                                                  shapes_folder):
    copy = Run(shutil.copytree(trained_run, tmp_path / trained_run.name))
    with copy.file(runs.METRICS).open("a") as log:
        log.write('"just a string"\n{"event": "epoch_end", "epo')  # a non-object line, then a torn one
    evaluation = json.loads(copy.file(runs.EVALUATION).read_text())
    copy.file(runs.EVALUATION).write_text(json.dumps({k: v for k, v in evaluation.items() if k != "confusion"}))
    copy.file(runs.STATUS).write_text(copy.file(runs.STATUS).read_text()[:25])  # truncated
    assert copy.state == "finished" and "damaged" in copy.status()["message"]
    assert [e["epoch"] for e in copy.metrics()] == [1, 2, 3, 4]
    assert copy.evaluation() is None
    problems = " ".join(copy.problems)
    assert "status file is damaged" in problems and "2 line(s)" in problems and "evaluation report" in problems
    image = sorted((shapes_folder / "circle").glob("*.jpg"))[0]
    assert Predictor(copy.path).predict([image])[0][0]["label"] == "circle"
    assert export_bundle(copy.path, tmp_path / "bundle.zip", with_onnx=False).verified


def test_the_time_estimate_grows_with_what_is_trained(tmp_path):
    speed = estimate.DeviceSpeed(forward_flops_per_s=3e10, train_flops_per_s=1e10)
    head_only = estimate.for_settings("efficientnet_lite0", 96, 9, "auto", 200, 50, 10, speed)
    last_stages = estimate.for_settings("efficientnet_lite0", 96, 7, "auto", 200, 50, 10, speed)
    everything = estimate.for_settings("efficientnet_lite0", 96, 0, "auto", 200, 50, 10, speed)
    assert 0 < head_only < last_stages < everything
    assert estimate.for_settings("efficientnet_lite0", 96, 9, "auto", 400, 100, 10, speed) > head_only
    with_views = estimate.for_settings("efficientnet_lite0", 96, 7, "auto", 200, 50, 10, speed, views=4)
    assert head_only < with_views < last_stages  # the prefix runs for 4 of the 10 epochs, not all of them
    measured = estimate.device_speed("cpu")
    assert measured.forward_flops_per_s > measured.train_flops_per_s > 0
    assert estimate.device_speed("cpu") == measured  # measured once, then read back


def test_the_time_estimate_is_a_range_that_grows_with_the_machines_load(monkeypatch):
    """Estimates came out 3-5x low on a busy server: the range's slow end moves up with the load the run will share
    (its fast end stays: a run beside busy programs often lost far less than the load average suggested)."""
    import os

    from core.training import estimate

    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    monkeypatch.setattr(os, "getloadavg", lambda: (0.0, 0.0, 0.0))
    quiet = estimate.likely_range(60.0)
    monkeypatch.setattr(os, "getloadavg", lambda: (8.0, 8.0, 8.0))
    busy = estimate.likely_range(60.0)
    assert quiet[0] <= 60.0 <= quiet[1] and quiet[1] < 2 * 60.0
    assert busy[0] == quiet[0] and busy[1] >= 60.0 * 4  # eight processes already on two cores: up to 4.5x slower


def test_a_cold_start_is_estimated_from_this_machine_s_own_measured_starts(monkeypatch, tmp_path):
    """No training process waiting ready: the run first waits for one to import torch & co. (5-15 s on 2 cores),
    which the estimate adds from the starts measured here (their median, so one odd start does not swing it)."""
    from core.training import estimate, starts

    monkeypatch.setenv("TRANSFERLAB_HOME", str(tmp_path))
    assert starts.process_start_s() == starts.COLD_START_S  # nothing measured on this fresh home yet
    for seconds in (6.0, 30.0, 7.0, -1.0, 8.0):  # -1: a clock that jumped, ignored
        starts.remember_process_start(seconds)
    assert starts.process_start_s() == 7.5
    fast, slow = estimate.likely_range(20.0, factor=1.0, start_s=starts.process_start_s())
    assert 0.7 * (7.5 + 20.0) <= fast < 7.5 + 20.0 < slow <= 7.5 + 20.0 * 1.35
