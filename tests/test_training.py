"""fit(): freezing, determinism, transfer, the feature cache, two-stage, cancel within one batch."""
from __future__ import annotations

import threading

import pytest
import torch

from core.models import backbones
from core.models.features import FeatureCache
from core.training.config import ConfigError, TrainConfig
from core.training.data import prepare
from core.training.events import EventLog
from core.training.loop import Cancelled, fit, plan_phases, set_trainable

QUICK = dict(image_size=64, epochs=2, early_stopping=0, batch_size=8)


def epochs_of(events: EventLog) -> list[dict]:
    return [e.data for e in events.of_kind("epoch_end")]


def test_frozen_stages_do_not_train_and_keep_batchnorm_statistics(shapes_folder, tmp_path):
    config = TrainConfig(data=str(shapes_folder), backbone="resnet18", weights="none", freeze_depth=3, **QUICK)
    result = fit(config, prepare(config, tmp_path), EventLog(), threading.Event())
    torch.manual_seed(config.seed)
    initial = backbones.build("resnet18", 3, pretrained=False)
    for i in range(3):
        for (name, before), after in zip(initial.stages[i].state_dict().items(), result.model.stages[i].state_dict().values()):
            assert torch.equal(before, after), f"frozen stage {i} changed: {name}"
    assert not torch.equal(initial.stages[4][0].conv1.weight, result.model.stages[4][0].conv1.weight)


def test_set_trainable_puts_frozen_stages_in_eval_mode():
    model = backbones.build("mobilenet_v3_small", 2, pretrained=False)
    trainable = set_trainable(model, 4)
    assert all(not s.training for s in model.stages[:4]) and all(s.training for s in model.stages[4:])
    assert trainable == sum(p.numel() for s in [*model.stages[4:], model.head] for p in s.parameters())


def test_same_seed_same_data_same_metrics(shapes_folder, tmp_path):
    config = TrainConfig(data=str(shapes_folder), backbone="mobilenet_v3_small", weights="none", freeze_depth=0,
                         augment="light", **QUICK)
    runs = [epochs_of(_fit(config, tmp_path)) for _ in range(2)]
    keys = ("train_loss", "train_accuracy", "val_loss", "val_accuracy")
    assert [[e[k] for k in keys] for e in runs[0]] == [[e[k] for k in keys] for e in runs[1]]


def _fit(config, tmp_path, cache=None) -> EventLog:
    events = EventLog()
    fit(config, prepare(config, tmp_path), events, threading.Event(), cache)
    return events


def test_pretrained_features_beat_random_ones_by_a_clear_margin(shapes_folder, tmp_path):
    base = dict(data=str(shapes_folder), freeze_depth="all", epochs=8, early_stopping=0, image_size=96)
    pretrained = epochs_of(_fit(TrainConfig(**base), tmp_path))[-1]["val_accuracy"]
    random_init = epochs_of(_fit(TrainConfig(**base, weights="none"), tmp_path))[-1]["val_accuracy"]
    assert pretrained >= 0.8 and pretrained - random_init >= 0.3, (pretrained, random_init)


def test_feature_cache_is_reused_by_a_second_run_with_other_head_settings(shapes_folder, tmp_path):
    cache = FeatureCache(tmp_path / "cache")
    first = _fit(TrainConfig(data=str(shapes_folder), **QUICK), tmp_path, cache)
    second = _fit(TrainConfig(data=str(shapes_folder), lr=0.01, optimizer="sgd", **QUICK), tmp_path,
                  FeatureCache(tmp_path / "cache"))  # a new process: found on disk
    assert not first.of_kind("run_started")[0].data["features_cached"]
    assert second.of_kind("run_started")[0].data["features_cached"]
    other_depth = _fit(TrainConfig(data=str(shapes_folder), **(QUICK | {"epochs": 1}), freeze_depth=5), tmp_path, cache)
    assert not other_depth.of_kind("run_started")[0].data["features_cached"]


def test_epoch_end_records_carry_what_the_curves_need(shapes_folder, tmp_path):
    record = epochs_of(_fit(TrainConfig(data=str(shapes_folder), **QUICK), tmp_path))[0]
    for key in ("epoch", "train_loss", "train_accuracy", "val_loss", "val_accuracy", "lr", "images_per_s", "elapsed_s"):
        assert isinstance(record[key], (int, float)), key


def test_two_stage_trains_the_head_first_then_unfreezes(shapes_folder, tmp_path):
    config = TrainConfig(data=str(shapes_folder), backbone="mobilenet_v3_small", weights="none", freeze_depth=10,
                         two_stage=True, **(QUICK | {"epochs": 3}))
    assert plan_phases(config, 10, 13) == [(13, 1, False), (10, 2, True)]
    assert [e["frozen_stages"] for e in epochs_of(_fit(config, tmp_path))] == [13, 10, 10]


class CountingStop(threading.Event):
    """Asks to stop during the third batch, and counts how often the loop checks afterwards."""

    def __init__(self) -> None:
        super().__init__()
        self.checks = 0

    def is_set(self) -> bool:
        self.checks += 1
        if self.checks == 3:
            self.set()
        return super().is_set()


def test_cancel_takes_effect_within_one_batch(shapes_folder, tmp_path):
    config = TrainConfig(data=str(shapes_folder), backbone="mobilenet_v3_small", weights="none", freeze_depth=0,
                         image_size=64, batch_size=4, epochs=50)
    stop = CountingStop()
    with pytest.raises(Cancelled):
        fit(config, prepare(config, tmp_path), EventLog(), stop)
    assert stop.checks == 3  # the check that saw the request was the last: no further batch ran


def test_unknown_settings_get_a_clear_error():
    with pytest.raises(ConfigError, match="unknown optimizer 'rmsprop'; choose one of: adamw, adam, sgd"):
        TrainConfig(data="x", optimizer="rmsprop")
    with pytest.raises(ConfigError, match="freeze depth"):
        TrainConfig(data="x", freeze_depth=-1)


def test_past_the_decode_budget_images_are_decoded_per_batch_with_the_same_result(shapes_folder, tmp_path,
                                                                                   monkeypatch):
    from core.training import inputs

    config = TrainConfig(data=str(shapes_folder), backbone="mobilenet_v3_small", weights="none", freeze_depth=0,
                         augment="none", **QUICK)
    in_memory = epochs_of(_fit(config, tmp_path))
    monkeypatch.setattr(inputs, "DECODE_BUDGET", 0)
    per_batch = epochs_of(_fit(config, tmp_path))
    keys = ("train_loss", "val_loss", "val_accuracy")
    assert [[e[k] for k in keys] for e in per_batch] == [[e[k] for k in keys] for e in in_memory]
