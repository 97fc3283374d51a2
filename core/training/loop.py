"""fit(): the training loop. It trains and announces events; saving, evaluation and status are the caller's (the
run pipeline, core.runs.pipeline), as in minGPT's trainer. What it optimises and how it scores an epoch is the run's
task (core.tasks); its data comes read and split once (core.training.data), never read here."""
from __future__ import annotations

import copy
import threading
import time
from dataclasses import dataclass

import torch
from torch import nn

from core.data.imageset import augmenter, batch_count
from core.data.preprocessing import Preprocessing
from core.models import adapters, backbones
from core.models.features import FeatureCache
from core.training import devices, distributed, head_init
from core.training.config import ConfigError, TrainConfig, frozen_stages
from core.training.data import TrainingData
from core.training.events import BATCH_END, EPOCH_END, FEATURES, RUN_STARTED, EventLog
from core.training.inputs import Inputs
from core.training.prototype import set_prototype_head
from core.training.steps import (
    BatchCallback,
    Cancelled,
    Objective,
    evaluate,
    make_optimizer,
    passes_per_epoch,
    set_trainable,
    train_one_epoch,
)

__all__ = ["Cancelled", "FitResult", "fit", "frozen_count", "plan_phases"]
BATCH_EVENT_INTERVAL_S = 0.5
FEATURE_EVENT_INTERVAL_S = 1.0


@dataclass
class FitResult:
    """What training made, and what every later step needs without reading or splitting the data again."""
    model: backbones.StagedModel
    data: TrainingData
    preprocessing: Preprocessing
    val_answers: torch.Tensor  # the task's answers (e.g. class probabilities) for data.val, in order
    best_epoch: int
    frozen_stages: int

    @property
    def labels(self) -> list[str]:
        return self.data.labels


def frozen_count(config: TrainConfig, total: int) -> int:
    return min(frozen_stages(config.freeze_depth, total), total)


def plan_phases(config: TrainConfig, depth: int, total: int) -> list[tuple[int, int, bool]]:
    """(frozen stages, epochs, discriminative lrs) per phase; two-stage trains the head alone first."""
    if not config.two_stage or depth >= total or config.epochs < 2:
        return [(depth, config.epochs, False)]
    head_epochs = max(1, config.epochs // 3)
    return [(total, head_epochs, False), (depth, config.epochs - head_epochs, True)]


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
    objective: Objective
    accel: devices.Accelerator
    depth: int
    total: int
    events: EventLog
    stop: threading.Event
    generator: torch.Generator
    started: float


def fit(config: TrainConfig, data: TrainingData, events: EventLog, stop: threading.Event,
        cache: FeatureCache | None = None) -> FitResult:
    """Train per `config` on `data`, announcing run_started, features, batch_end and epoch_end; return the best
    epoch's model with its answers on the validation images."""
    if config.head == "prototype" and not config.trains_head_only():  # said before any image is read
        raise ConfigError("The prototype head is built from the frozen backbone's features: choose feature "
                          "extraction (every stage frozen), or the linear head to fine-tune.")
    with distributed.peer_errors():
        session = _prepare(config, data, events, stop, cache)
        tracker, epoch = _BestTracker(config.early_stopping), 0
        if config.head == "prototype":  # no epochs to run: the head is the class means
            _fit_prototype(session, tracker)
        phases = [] if config.head == "prototype" else plan_phases(config, session.depth, session.total)
        for frozen, epochs, discriminative in phases:
            epoch, stopped_early = _train_phase(session, tracker, epoch, frozen, epochs, discriminative)
            if stopped_early:
                break  # early stopping ends the whole run, not just the phase
    model, inputs = session.model, session.inputs
    model.load_state_dict(tracker.state)
    val_source = inputs.source("val", session.depth, None, sharded=False)
    _, _, answers = evaluate(model, session.depth, val_source, session.accel, config.batch_size, session.objective)
    model.eval()
    return FitResult(model, data, inputs.prep, answers, tracker.best_epoch, session.depth)


def _prepare(config: TrainConfig, data: TrainingData, events: EventLog, stop: threading.Event,
             cache: FeatureCache | None) -> _Session:
    accel = devices.resolve(config.device)
    prep = backbones.preprocessing(config.backbone, config.image_size)
    task = data.task
    train_targets = task.targets(data.train, data.labels)
    model, depth = _build(config, data, train_targets)
    model.to(accel.device, memory_format=torch.channels_last if accel.channels_last else torch.preserve_format)
    total = len(model.stages)
    identity = (config.backbone, config.weights, config.seed)
    inputs = Inputs.for_training(data, prep, model, accel, cache or FeatureCache(None), identity, distributed.shard(),
                                 on_features=_feature_reporter(events))
    trainable = set_trainable(model, depth)
    augment = config.resolved_augment(depth, total)
    views = inputs.plan_views(config.augmented_views, depth, augment != "none", config.epochs)
    events.emit(RUN_STARTED, backbone=config.backbone, device=str(accel.device), classes=data.labels,
                task=task.name, score=task.score_name, num_train=len(data.train), num_val=len(data.val),
                frozen_stages=depth, total_stages=total, trainable_params=trainable,
                total_params=sum(p.numel() for p in model.parameters()), augment=augment,
                features_cached=inputs.will_use_cache("train", depth), augmented_views=views.views,
                strategy=config.strategy, **_adapter_fields(config, model, depth),
                **({"views_fallback": views.reason} if views.reason else {}), epochs=config.epochs)
    return _Session(config, model, inputs, Objective(task, task.criterion(train_targets).to(accel.device)), accel,
                    depth, total, events, stop, torch.Generator().manual_seed(config.seed), time.perf_counter())


def _build(config: TrainConfig, data: TrainingData, train_targets: torch.Tensor) -> tuple[backbones.StagedModel, int]:
    """The network with the task's head (and the adapters, with that strategy); how many stages stay frozen."""
    torch.manual_seed(config.seed)
    task = data.task
    model = backbones.build(config.backbone, task.outputs(data.labels), pretrained=config.weights == "default")
    task.adapt_head(model)
    task.prepare_head(model.head[-1], train_targets)
    head_init.start_head(model, config, data.labels, task.name)  # from the class names' text, when asked
    if config.uses_adapters():  # every stage before the first adapter runs once per image, as in feature extraction
        return model, adapters.add(model, config.adapter_rank, config.adapter_stages)
    return model, frozen_count(config, len(model.stages))


def _adapter_fields(config: TrainConfig, model: backbones.StagedModel, depth: int) -> dict:
    if not config.uses_adapters():
        return {}
    adapted = [model.stage_names[i] for i, stage in enumerate(model.stages) if adapters.is_adapted(stage)]
    return {"adapter_rank": config.adapter_rank, "adapted_stages": adapted}


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
        train_loss, train_score, speed = train_one_epoch(
            net, train_source, optimizer, scheduler, s.accel, config.batch_size, s.generator, s.stop,
            _batch_reporter(s.events, epoch, batches), s.objective, passes, scaler)
        val_loss, val_score, _ = evaluate(s.model, frozen, val_source, s.accel, config.batch_size, s.objective)
        s.events.emit(EPOCH_END, epoch=epoch, epochs=config.epochs, train_loss=train_loss,
                      train_accuracy=train_score, val_loss=val_loss, val_accuracy=val_score,
                      lr=optimizer.param_groups[-1]["lr"], images_per_s=speed,
                      elapsed_s=time.perf_counter() - s.started, frozen_stages=frozen,
                      world_size=train_source.shard[1])
        if tracker.should_stop(val_loss, epoch, s.model):
            return epoch, True
    return epoch, False


def _fit_prototype(s: _Session, tracker: _BestTracker) -> None:
    """The head becomes the class means of the training images' frozen features: one 'epoch', no optimiser."""
    if s.stop.is_set():
        raise Cancelled()
    features = s.inputs.features("train", s.total)
    s.model.eval()
    with torch.no_grad():  # the head's input to its last layer, in batches (pooling, dropout off in eval)
        embedded = torch.cat([s.model.head[:-1](chunk.to(s.accel.device).float()).cpu()
                              for chunk in features.split(256)])
    set_prototype_head(s.model.head[-1], embedded, s.inputs.targets["train"])
    train_loss, train_score, _ = evaluate(s.model, s.total, s.inputs.source("train", s.total, None), s.accel,
                                          s.config.batch_size, s.objective)
    val_loss, val_score, _ = evaluate(s.model, s.total, s.inputs.source("val", s.total, None), s.accel,
                                      s.config.batch_size, s.objective)
    s.events.emit(EPOCH_END, epoch=1, epochs=1, train_loss=train_loss, train_accuracy=train_score,
                  val_loss=val_loss, val_accuracy=val_score, lr=0.0, images_per_s=0.0,
                  elapsed_s=time.perf_counter() - s.started, frozen_stages=s.total, world_size=s.inputs.shard[1])
    tracker.should_stop(val_loss, 1, s.model)  # remembers these weights as the best (and only) epoch's


def _batch_reporter(events: EventLog, epoch: int, batches: int) -> BatchCallback:
    last = [0.0]

    def report(step: int, loss: float, images_per_s: float) -> None:
        now = time.perf_counter()
        if now - last[0] >= BATCH_EVENT_INTERVAL_S:  # throttled: a fast loop must not flood the log
            last[0] = now
            events.emit(BATCH_END, epoch=epoch, batch=step + 1, batches=batches, loss=loss,
                        images_per_s=images_per_s)
    return report


def _feature_reporter(events: EventLog):
    """The frozen stages' pass over every image before the first epoch: its own progress, a line a second."""
    last = [0.0]

    def report(part: str, done: int, total: int) -> None:
        now = time.perf_counter()
        if done >= total or now - last[0] >= FEATURE_EVENT_INTERVAL_S:
            last[0] = now
            events.emit(FEATURES, part=part, done=done, total=total)
    return report
