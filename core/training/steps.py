"""The plain pieces of a training loop, each testable on a CPU with eight tiny images (as torchvision's references
do it): which stages train, the optimizer, one epoch, one evaluation pass."""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Callable, Iterator

import torch
from torch import nn

from core.data.imageset import FeatureSource, ImageSource, batch_count
from core.models import adapters, backbones
from core.tasks import Task
from core.training import devices, distributed
from core.training.augmented_views import ViewSource
from core.training.config import TrainConfig

Source = FeatureSource | ImageSource | ViewSource
BatchCallback = Callable[[int, float, float], None]  # (batch index, loss, images per second)
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


@dataclass(frozen=True)
class Objective:
    """What an epoch optimises and how it is scored: the run's task, with its loss built from the training targets."""
    task: Task
    criterion: nn.Module


def set_trainable(model: backbones.StagedModel, frozen: int) -> int:
    """Freeze the first `frozen` stages (and keep them in eval mode so BatchNorm statistics stay put); with adapters,
    only the adapters from stage `frozen` on and the head train. Returns the number of trainable parameters."""
    if adapters.is_adapted(model):
        return adapters.set_trainable(model, frozen)
    model.train()
    for i, stage in enumerate(model.stages):
        stage.requires_grad_(i >= frozen)
        if i < frozen:
            stage.eval()
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


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
                    generator: torch.Generator, stop: threading.Event, on_batch: BatchCallback, objective: Objective,
                    passes: int = 1, scaler: torch.amp.GradScaler | None = None) -> tuple[float, float, float]:
    """One epoch of `net` (the partial forward, `distributed.wrap`); returns (mean loss, the task's score, images
    per second) over every process. `scaler` (fp16 only) lives as long as the phase, so its scale carries over."""
    total_loss, score, seen, started = 0.0, 0.0, 0, time.perf_counter()
    for step, (x, y) in enumerate(_epoch_batches(source, batch_size, generator, accel.device, passes)):
        if stop.is_set():
            raise Cancelled()
        with accel.autocast():
            logits = net(x)
            loss = objective.criterion(logits.float(), y)
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
        score += objective.task.batch_score(logits.detach().float(), y, objective.criterion)
        seen += len(y)
        on_batch(step, loss.item(), seen * source.shard[1] / (time.perf_counter() - started))
    total_loss, score, seen = distributed.all_reduce_sum([total_loss, score, seen])
    return total_loss / max(seen, 1), score / max(seen, 1), seen / (time.perf_counter() - started)


@torch.no_grad()
def evaluate(model: backbones.StagedModel, frozen: int, source: Source, accel: devices.Accelerator,
             batch_size: int, objective: Objective) -> tuple[float, float, torch.Tensor]:
    """(mean loss, the task's score, the task's answers) over `source`, in order; with a sharded source the loss
    and score are every process's together, the answers this process's share."""
    model.eval()  # the caller restores modes with set_trainable, so frozen stages stay in eval
    loss_sum, score, answers = 0.0, 0.0, []
    for x, y in source.batches(batch_size, None, accel.device):
        with accel.autocast():
            logits = model.forward_from(x, frozen).float()
        loss_sum += objective.criterion(logits, y).item() * len(y)
        score += objective.task.batch_score(logits, y, objective.criterion)
        answers.append(objective.task.answers(logits).cpu())
    seen = sum(len(a) for a in answers)
    if source.shard[1] > 1:
        loss_sum, score, seen = distributed.all_reduce_sum([loss_sum, score, seen])
    if not seen:
        return float("nan"), float("nan"), torch.empty(0)
    return loss_sum / seen, score / seen, torch.cat(answers) if answers else torch.empty(0)
