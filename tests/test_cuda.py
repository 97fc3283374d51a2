"""On a GPU (skipped on machines without one; bench/gpu_check.sh runs these where a GPU is lent): mixed
precision, channels_last and pinned copies train and predict as on the CPU, and a CUDA run's folder is the same."""
from __future__ import annotations

import threading

import pytest
import torch

from core.runs import folder as runs
from core.runs import pipeline
from core.training import devices
from core.training.config import TrainConfig
from core.training.events import EventLog

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="this machine has no CUDA GPU")


def test_the_accelerator_uses_mixed_precision_and_channels_last():
    accel = devices.resolve("cuda")
    assert accel.device.type == "cuda" and accel.amp_dtype in (torch.bfloat16, torch.float16) and accel.channels_last


@pytest.mark.parametrize("freeze_depth", ["all", 6, 0])
def test_a_run_on_the_gpu_finishes_and_predicts_like_its_evaluation(shapes_folder, tmp_path, freeze_depth):
    from core.serving.inference import Predictor

    config = TrainConfig(data=str(shapes_folder), device="cuda", freeze_depth=freeze_depth, image_size=96, epochs=3,
                         early_stopping=0, augment="light" if freeze_depth != "all" else "auto")
    run = runs.create(tmp_path / "runs", config)
    state = pipeline.execute(config, run.path, EventLog(run.metrics_file), threading.Event(), tmp_path)
    assert state == "finished", run.status()
    assert run.metrics()[0]["images_per_s"] > 0
    evaluation = run.evaluation()
    first = evaluation.predictions[0]
    answer = Predictor(run.path, device="cuda").predict([shapes_folder / first["path"]], top_k=1)[0][0]
    assert answer["label"] == first["predicted"]
