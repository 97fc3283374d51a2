"""fit(): the training loop. It trains and announces events; saving, evaluation reports and status are the
caller's (core.runner), as in minGPT's trainer."""
from __future__ import annotations

import copy
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import torch
from torch import nn

from core.data.datasets import inspect, split
from core.data.imageset import FeatureSource, ImageSource, augmenter, batch_count
from core.data.report import ImageRecord
from core.models import backbones
from core.models.features import FeatureCache
from core.training import devices, distributed
from core.training.augmented_views import ViewSource
from core.training.config import FREEZE_ALL, TrainConfig
from core.training.events import EventLog
from core.training.inputs import Inputs

Source = FeatureSource | ImageSource | ViewSource
BatchCallback = Callable[[int, float, float], None]  # (batch index, loss, images per second)
BATCH_EVENT_INTERVAL_S = 0.5
# A head on cached features costs milliseconds per pass, so each epoch makes passes enough for this many
# optimizer steps: the head is then fitted properly even on a few dozen images (the "linear-probe" level).
MIN_HEAD_STEPS_PER_EPOCH = 20
# name -> (class, learning-rate scale relative to the Adam-family defaults, extra arguments)
OPTIMIZERS = {
    "adamw": (torch.optim.AdamW, 1.0, {}),
    "adam": (torch.optim.Adam, 1.0, {}),
    "sgd": (torch.optim.SGD, 10.0, {"momentum": 0.9, "nesterov": True}),
}


class Cancelled(Exception):
    """The user asked the run to stop; raised within one batch of the request."""


class DataError(ValueError):
    """The data cannot be trained on; the message is the data report's reason."""


@dataclass
class FitResult:
    model: backbones.StagedModel
    labels: list[str]
    preprocessing: object
    root: Path
    val_records: list[ImageRecord]
    val_probabilities: torch.Tensor
    best_epoch: int
    frozen_stages: int


def frozen_count(config: TrainConfig, total: int) -> int:
    return total if config.freeze_depth == FREEZE_ALL else min(int(config.freeze_depth), total)


def set_trainable(model: backbones.StagedModel, frozen: int) -> int:
    """Freeze the first `frozen` stages (and keep them in eval mode so BatchNorm statistics stay put)."""
    model.train()
    for i, stage in enumerate(model.stages):
        stage.requires_grad_(i >= frozen)
        if i < frozen:
            stage.eval()
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def plan_phases(config: TrainConfig, depth: int, total: int) -> list[tuple[int, int, bool]]:
    """(frozen stages, epochs, discriminative lrs) per phase; two-stage trains the head alone first."""
    if not config.two_stage or depth >= total or config.epochs < 2:
        return [(depth, config.epochs, False)]
    head_epochs = max(1, config.epochs // 3)
    return [(total, head_epochs, False), (depth, config.epochs - head_epochs, True)]


def make_optimizer(model: backbones.StagedModel, config: TrainConfig, frozen: int, lr: float,
                   discriminative: bool, steps: int) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler]:
    cls, scale, extra = OPTIMIZERS[config.optimizer]
    lr *= scale
    trainable = list(model.stages[frozen:]) + [model.head]
    # Discriminative rates (fastai's fine_tune): earlier stages move 10x less than the head.
    spread = [lr * 10 ** (-(len(trainable) - 1 - i) / max(len(trainable) - 1, 1)) if discriminative else lr
              for i in range(len(trainable))]
    groups = [{"params": [p for p in m.parameters() if p.requires_grad], "lr": r} for m, r in zip(trainable, spread)]
    optimizer = cls([g for g in groups if g["params"]], weight_decay=config.weight_decay, **extra)
    return optimizer, torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(steps, 1))


def passes_per_epoch(source: Source, frozen: int, total: int, batch_size: int) -> int:
    if frozen < total or not isinstance(source, FeatureSource):
        return 1
    return -(-MIN_HEAD_STEPS_PER_EPOCH // batch_count(len(source), batch_size, source.shard))


def _epoch_batches(source: Source, batch_size: int, generator: torch.Generator, device: torch.device,
                   passes: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    for _ in range(passes):
        yield from source.batches(batch_size, generator, device)


def train_one_epoch(net: nn.Module, source: Source, optimizer: torch.optim.Optimizer,
                    scheduler: torch.optim.lr_scheduler.LRScheduler, accel: devices.Accelerator, batch_size: int,
                    generator: torch.Generator, stop: threading.Event, on_batch: BatchCallback,
                    passes: int = 1, scaler: torch.amp.GradScaler | None = None) -> tuple[float, float, float]:
    """One epoch of `net` (the partial forward, `distributed.wrap`); returns (mean loss, accuracy, images per
    second) over every process. `scaler` (fp16 only) lives as long as the phase, so its scale carries over."""
    criterion = nn.CrossEntropyLoss()
    total_loss, correct, seen, started = 0.0, 0, 0, time.perf_counter()
    for step, (x, y) in enumerate(_epoch_batches(source, batch_size, generator, accel.device, passes)):
        if stop.is_set():
            raise Cancelled()
        with accel.autocast():
            logits = net(x)
            loss = criterion(logits.float(), y)
        optimizer.zero_grad(set_to_none=True)
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
        else:
            loss.backward()
            optimizer.step()
        scheduler.step()
        # .item() is a device sync point; once per batch is cheap next to the step itself.
        total_loss += loss.item() * len(y)
        correct += int((logits.argmax(1) == y).sum())
        seen += len(y)
        on_batch(step, loss.item(), seen * source.shard[1] / (time.perf_counter() - started))
    total_loss, correct, seen = distributed.all_reduce_sum([total_loss, correct, seen])
    return total_loss / max(seen, 1), correct / max(seen, 1), seen / (time.perf_counter() - started)


@torch.no_grad()
def evaluate(model: backbones.StagedModel, frozen: int, source: Source, accel: devices.Accelerator,
             batch_size: int) -> tuple[float, float, torch.Tensor]:
    """(mean loss, accuracy, class probabilities) over `source`, in order; with a sharded source the loss and
    accuracy are every process's together, the probabilities this process's share."""
    model.eval()  # the caller restores modes with set_trainable, so frozen stages stay in eval
    loss_sum, correct, probabilities = 0.0, 0, []
    for x, y in source.batches(batch_size, None, accel.device):
        with accel.autocast():
            logits = model.forward_from(x, frozen).float()
        loss_sum += nn.functional.cross_entropy(logits, y, reduction="sum").item()
        correct += int((logits.argmax(1) == y).sum())
        probabilities.append(logits.softmax(1).cpu())
    seen = sum(len(p) for p in probabilities)
    if source.shard[1] > 1:
        loss_sum, correct, seen = distributed.all_reduce_sum([loss_sum, correct, seen])
    if not seen:
        return float("nan"), float("nan"), torch.empty(0)
    return loss_sum / seen, correct / seen, torch.cat(probabilities) if probabilities else torch.empty(0)


class _BestTracker:
    """Early stopping on validation loss, remembering the best epoch's weights."""

    def __init__(self, patience: int) -> None:
        self.patience, self.best_loss, self.best_epoch, self.state = patience, float("inf"), 0, None

    def should_stop(self, val_loss: float, epoch: int, model: nn.Module) -> bool:
        if val_loss < self.best_loss or self.state is None:
            self.best_loss, self.best_epoch = val_loss, epoch
            self.state = copy.deepcopy(model.state_dict())
        return self.patience > 0 and epoch - self.best_epoch >= self.patience


@dataclass
class _Session:
    """Everything one fit() works with, prepared once."""
    config: TrainConfig
    model: backbones.StagedModel
    inputs: Inputs
    accel: devices.Accelerator
    depth: int
    total: int
    events: EventLog
    stop: threading.Event
    generator: torch.Generator
    started: float


def fit(config: TrainConfig, events: EventLog, stop: threading.Event, work_dir: Path,
        cache: FeatureCache | None = None) -> FitResult:
    """Train per `config`, announcing run_started, batch_end and epoch_end; return the best epoch's model."""
    with distributed.peer_errors():
        session = _prepare(config, events, stop, work_dir, cache)
        tracker, epoch = _BestTracker(config.early_stopping), 0
        for frozen, epochs, discriminative in plan_phases(config, session.depth, session.total):
            epoch, stopped_early = _train_phase(session, tracker, epoch, frozen, epochs, discriminative)
            if stopped_early:
                break  # early stopping ends the whole run, not just the phase
    model, inputs = session.model, session.inputs
    model.load_state_dict(tracker.state)
    val_source = inputs.source("val", session.depth, None, sharded=False)
    _, _, probabilities = evaluate(model, session.depth, val_source, session.accel, config.batch_size)
    model.eval()
    return FitResult(model, inputs.labels, inputs.prep, inputs.root, inputs.parts["val"], probabilities,
                     tracker.best_epoch, session.depth)


def _prepare(config: TrainConfig, events: EventLog, stop: threading.Event, work_dir: Path,
             cache: FeatureCache | None) -> _Session:
    report = inspect(Path(config.data), work_dir)
    if not report.trainable:
        raise DataError(report.error)
    train_records, val_records = split(report, config.val_split, config.seed)
    accel = devices.resolve(config.device)
    prep = backbones.preprocessing(config.backbone, config.image_size)
    torch.manual_seed(config.seed)
    model = backbones.build(config.backbone, len(report.labels), pretrained=config.weights == "default")
    model.to(accel.device, memory_format=torch.channels_last if accel.channels_last else torch.preserve_format)
    total = len(model.stages)
    depth = frozen_count(config, total)
    inputs = Inputs(report.root, {"train": train_records, "val": val_records}, report.labels, prep, model, accel,
                    cache or FeatureCache(None), (config.backbone, config.weights, config.seed), distributed.shard())
    trainable = set_trainable(model, depth)
    augment = config.resolved_augment(depth, total)
    views = inputs.plan_views(config.augmented_views, depth, augment != "none", config.epochs)
    events.emit("run_started", backbone=config.backbone, device=str(accel.device), classes=report.labels,
                num_train=len(train_records), num_val=len(val_records), frozen_stages=depth, total_stages=total,
                trainable_params=trainable, total_params=sum(p.numel() for p in model.parameters()),
                augment=augment, features_cached=inputs.will_use_cache("train", depth),
                augmented_views=views.views, **({"views_fallback": views.reason} if views.reason else {}),
                epochs=config.epochs)
    return _Session(config, model, inputs, accel, depth, total, events, stop,
                    torch.Generator().manual_seed(config.seed), time.perf_counter())


def _train_phase(s: _Session, tracker: _BestTracker, epoch: int, frozen: int, epochs: int,
                 discriminative: bool) -> tuple[int, bool]:
    """Train `epochs` epochs with `frozen` stages frozen; return the last epoch number and whether to stop."""
    config = s.config
    augment = augmenter(config.resolved_augment(frozen, s.total), s.inputs.prep.crop_size)
    train_source, val_source = s.inputs.source("train", frozen, augment), s.inputs.source("val", frozen, None)
    passes = passes_per_epoch(train_source, frozen, s.total, config.batch_size)
    batches = batch_count(len(train_source), config.batch_size, train_source.shard) * passes
    optimizer, scheduler = make_optimizer(s.model, config, frozen, config.resolved_lr(frozen, s.total),
                                          discriminative, epochs * batches)
    scaler = torch.amp.GradScaler(s.accel.device.type) if s.accel.needs_grad_scaler else None
    net = distributed.wrap(s.model, frozen)
    for _ in range(epochs):
        epoch += 1
        set_trainable(s.model, frozen)
        train_loss, train_acc, speed = train_one_epoch(
            net, train_source, optimizer, scheduler, s.accel, config.batch_size, s.generator, s.stop,
            _batch_reporter(s.events, epoch, batches), passes, scaler)
        val_loss, val_acc, _ = evaluate(s.model, frozen, val_source, s.accel, config.batch_size)
        s.events.emit("epoch_end", epoch=epoch, epochs=config.epochs, train_loss=train_loss,
                      train_accuracy=train_acc, val_loss=val_loss, val_accuracy=val_acc,
                      lr=optimizer.param_groups[-1]["lr"], images_per_s=speed,
                      elapsed_s=time.perf_counter() - s.started, frozen_stages=frozen,
                      world_size=train_source.shard[1])
        if tracker.should_stop(val_loss, epoch, s.model):
            return epoch, True
    return epoch, False


def _batch_reporter(events: EventLog, epoch: int, batches: int) -> BatchCallback:
    last = [0.0]

    def report(step: int, loss: float, images_per_s: float) -> None:
        now = time.perf_counter()
        if now - last[0] >= BATCH_EVENT_INTERVAL_S:  # throttled: a fast loop must not flood the log
            last[0] = now
            events.emit("batch_end", epoch=epoch, batch=step + 1, batches=batches, loss=loss,
                        images_per_s=images_per_s)
    return report
