"""Augmented views (core.training.augmented_views) and batched augmentation: same model as today's path when nothing is
augmented, a clear fallback past the budget, cancel within one batch, crops that are what they claim."""
from __future__ import annotations

import copy
import threading

import pytest
import torch
from torch import nn

from core import tasks
from core.data.imageset import BatchAugment, FeatureSource, index_batches
from core.data.preprocessing import Preprocessing
from core.models import backbones
from core.models.features import FeatureCache
from core.training import devices
from core.training.augmented_views import ViewSource, plan
from core.training.config import TrainConfig
from core.training.data import prepare
from core.training.distributed import FromStage
from core.training.events import EventLog
from core.training.loop import Cancelled, fit
from core.training.steps import Objective, make_optimizer, set_trainable, train_one_epoch

PREP = Preprocessing(72, 64, (0.5,) * 3, (0.5,) * 3, "bilinear")
PARTIAL = dict(backbone="mobilenet_v3_small", weights="none", freeze_depth=11, image_size=64, batch_size=4,
               early_stopping=0, augment="light")


def test_one_unaugmented_view_trains_the_same_model_as_the_feature_cache():
    torch.manual_seed(0)
    model = backbones.build("mobilenet_v3_small", 3, pretrained=False)
    set_trainable(model, 11)
    images, labels = torch.randint(0, 256, (10, 3, 64, 64), dtype=torch.uint8), torch.arange(10) % 3
    prefix = lambda x: model.run_stages(x, 0, 11)  # noqa: E731
    with torch.no_grad():
        features = prefix(PREP.normalize(images)).half()
    trained = [_train(copy.deepcopy(model), source) for source in (
        FeatureSource(features, labels), ViewSource(images, labels, PREP, None, prefix, views=1))]
    for (name, a), b in zip(trained[0].items(), trained[1].values()):
        assert torch.equal(a, b), name


def _train(model, source, epochs: int = 3) -> dict:
    config, accel = TrainConfig(data="x"), devices.resolve("cpu")
    optimizer, scheduler = make_optimizer(model, config, 11, 1e-3, False, 10)
    generator = torch.Generator().manual_seed(0)
    torch.manual_seed(0)  # the head's dropout draws from the global generator
    for _ in range(epochs):
        set_trainable(model, 11)
        train_one_epoch(FromStage(model, 11), source, optimizer, scheduler, accel, 4, generator, threading.Event(),
                        lambda *a: None, Objective(tasks.get("single"), nn.CrossEntropyLoss()))
    return model.state_dict()


def test_views_fill_during_the_first_epochs_then_are_drawn_from_the_store():
    torch.manual_seed(0)
    images, labels = torch.randint(0, 256, (6, 3, 64, 64), dtype=torch.uint8), torch.arange(6) % 2
    calls = []
    source = ViewSource(images, labels, PREP, BatchAugment(64, (0.7, 1.0)),
                        lambda x: calls.append(len(x)) or x[:, :, ::8, ::8], views=2)
    generator = torch.Generator().manual_seed(0)
    epochs = [torch.cat([x for x, _ in source.batches(3, generator, torch.device("cpu"))]) for _ in range(4)]
    assert sum(calls) == 12  # the prefix ran over every image in the first two epochs only
    assert not torch.equal(epochs[0].sort(0).values, epochs[1].sort(0).values)  # two different augmentations
    stored = {tuple(row.flatten().tolist()) for view in source._store for row in view.float()}
    assert all(tuple(row.flatten().tolist()) in stored for row in epochs[3])  # later epochs reuse kept views


def test_views_past_the_budget_fall_back_and_say_so(shapes_folder, tmp_path):
    events = EventLog()
    config = TrainConfig(data=str(shapes_folder), epochs=2, **PARTIAL)
    fit(config, prepare(config, tmp_path), events, threading.Event(), FeatureCache(None, memory_budget=1000))
    started = events.of_kind("run_started")[0].data
    assert started["augmented_views"] == 0 and "feature-cache budget" in started["views_fallback"]
    assert len(events.of_kind("epoch_end")) == 2
    within = EventLog()
    config = TrainConfig(data=str(shapes_folder), epochs=2, augmented_views=6, **PARTIAL)
    fit(config, prepare(config, tmp_path), within, threading.Event())
    assert within.of_kind("run_started")[0].data["augmented_views"] == 2  # no more views than epochs


def test_view_plan_counts_bytes():
    assert plan(4, 100, (10, 2, 2), 100 * 40 * 2 * 3, 10).views == 3  # fp16: 80 bytes per image and view
    assert plan(0, 100, (10, 2, 2), 1 << 30, 10).views == 0


class StopAt(threading.Event):
    def __init__(self, at: int) -> None:
        super().__init__()
        self.at, self.checks = at, 0

    def is_set(self) -> bool:
        self.checks += 1
        if self.checks == self.at:
            self.set()
        return super().is_set()


def test_cancel_within_one_batch_while_reusing_views(shapes_folder, tmp_path):
    stop = StopAt(12)  # 28 training images in batches of 4: 7 batches per epoch, so this is epoch 2 (reusing)
    with pytest.raises(Cancelled):
        config = TrainConfig(data=str(shapes_folder), epochs=20, augmented_views=1, **PARTIAL)
        fit(config, prepare(config, tmp_path), EventLog(), stop)
    assert stop.checks == 12


def test_a_full_crop_is_the_image_or_its_mirror():
    augment = BatchAugment(32, (1.0, 1.0))
    augment.log_ratio = (0.0, 0.0)
    images = torch.randint(0, 256, (8, 3, 32, 32), dtype=torch.uint8)
    out = augment(images, torch.Generator().manual_seed(1))
    same = [torch.allclose(o, i.float(), atol=1e-3) for o, i in zip(out, images)]
    mirrored = [torch.allclose(o, i.float().flip(-1), atol=1e-3) for o, i in zip(out, images)]
    assert all(s or m for s, m in zip(same, mirrored)) and any(same) and any(mirrored)


def test_batch_augment_repeats_with_the_seed_and_crops_differ_per_image():
    augment, images = BatchAugment(48, (0.35, 1.0)), torch.randint(0, 256, (6, 3, 64, 64), dtype=torch.uint8)
    first = augment(images, torch.Generator().manual_seed(3))
    assert torch.equal(first, augment(images, torch.Generator().manual_seed(3))) and first.shape == (6, 3, 48, 48)
    boxes = augment.boxes(6, 64, 64, torch.Generator().manual_seed(3))
    assert len({tuple(b.tolist()) for b in boxes}) == 6 and (boxes[:, 2:] <= 64).all() and (boxes[:, :2] >= 0).all()


def test_a_lone_last_sample_joins_the_previous_batch_and_no_sample_is_lost_or_repeated():
    for n in (33, 65, 97):
        batches = index_batches(n, 32, torch.Generator().manual_seed(0))
        assert sorted(torch.cat(batches).tolist()) == list(range(n)) and min(len(b) for b in batches) > 1
    shares = [torch.cat(index_batches(9, 2, torch.Generator().manual_seed(0), (r, 2))) for r in (0, 1)]
    assert len(shares[0]) == len(shares[1]) == 5 and set(torch.cat(shares).tolist()) == set(range(9))
