"""Augmented views: the frozen prefix's output for a few augmented versions of each image, computed once.

With augmentation on, today's path runs every image through the frozen stages again every epoch, though those
stages never change: only the augmentation does. Here epoch k < V runs the prefix as before (one fresh random
crop and flip per image) but keeps its output (fp16) as view k; from epoch V on, each image draws one of its V
stored views, so an epoch costs only the trainable stages. The views fill during the first epochs, so no extra
pass is made before training starts.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterator

import torch

from core.data.imageset import BatchAugment, LazyImages, Prefix, index_batches
from core.data.preprocessing import Preprocessing
from core.training import distributed

MAX_VIEWS = 16


@dataclass(frozen=True)
class ViewPlan:
    views: int  # 0: today's path (the prefix runs every epoch)
    reason: str = ""  # why fewer views than asked for, or none at all


def plan(asked: int, images: int, feature_shape: tuple[int, ...], budget_bytes: int, epochs: int) -> ViewPlan:
    """How many views to keep: as many as asked for, but never more than the budget holds or than would be
    used (a view costs one epoch of the prefix, so more views than epochs would never pay back)."""
    if asked <= 0:
        return ViewPlan(0, "augmented views are turned off")
    per_view = images * 2 * _numel(feature_shape)
    fits = budget_bytes // max(per_view, 1)
    views = min(asked, fits, epochs)
    if fits < 1:
        return ViewPlan(0, f"one view of every image needs {per_view / 2**20:.0f} MiB, more than the "
                           f"{budget_bytes / 2**20:.0f} MiB feature-cache budget: the frozen layers run every epoch")
    if views < asked:
        why = "the feature-cache budget" if fits < min(asked, epochs) else f"{epochs} epochs"
        return ViewPlan(views, f"{views} of {asked} views: limited by {why}")
    return ViewPlan(views)


def _numel(shape: tuple[int, ...]) -> int:
    count = 1
    for size in shape:
        count *= size
    return count


@dataclass
class ViewSource:
    """Batches of frozen-prefix outputs; the first `views` epochs compute and keep them, later ones reuse them."""
    images: torch.Tensor | LazyImages
    labels: torch.Tensor
    prep: Preprocessing
    augment: BatchAugment | None
    prefix: Prefix
    views: int
    channels_last: bool = False
    feature_flip: bool = False  # also flip stored views (a cheap extra augmentation in feature space)
    shard: tuple[int, int] = (0, 1)
    _store: torch.Tensor | None = field(default=None, repr=False)
    _filled: int = 0

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def filled(self) -> int:
        return self._filled

    def batches(self, batch_size: int, generator: torch.Generator | None, device: torch.device,
                ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        if self._filled < self.views:
            yield from self._fill(batch_size, generator, device)
            self._filled += 1
        else:
            yield from self._reuse(batch_size, generator, device)

    def _fill(self, batch_size: int, generator: torch.Generator | None, device: torch.device,
              ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        computed = []
        for idx in index_batches(len(self), batch_size, generator, self.shard):
            computed.append(idx)
            raw = self.images[idx].to(device, non_blocking=True)
            x = self.augment(raw, generator) if self.augment is not None else raw
            x = self.prep.normalize(x)
            if self.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            with torch.no_grad():
                features = self.prefix(x).to(torch.float16)
            self._keep(idx, features)
            # What trains is what is kept (fp16), so a view reused later is exactly the one first trained on.
            yield features.float(), self.labels[idx].to(device)
        if self.shard[1] > 1 and self._store is not None:  # each process computed its share: pool them
            distributed.share_rows(self._store[self._filled], torch.cat(computed))

    def _keep(self, idx: torch.Tensor, features: torch.Tensor) -> None:
        if self._store is None:
            self._store = torch.empty((self.views, len(self), *features.shape[1:]), dtype=torch.float16)
        self._store[self._filled, idx] = features.cpu()

    def _reuse(self, batch_size: int, generator: torch.Generator | None, device: torch.device,
               ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        assert self._store is not None
        for idx in index_batches(len(self), batch_size, generator, self.shard):
            if self.views > 1 and generator is not None:
                chosen = self._store[torch.randint(self.views, (len(idx),), generator=generator), idx]
            else:
                chosen = self._store[0, idx]
            x = chosen.to(device, non_blocking=True).float()
            if self.feature_flip and generator is not None:
                flip = (torch.rand(len(idx), generator=generator) < 0.5).to(device).view(-1, 1, 1, 1)
                x = torch.where(flip, x.flip(-1), x)
            yield x, self.labels[idx].to(device)


def feature_shape(prefix: Prefix, size: int, device: torch.device) -> tuple[int, ...]:
    """The prefix's output shape for one image (one tiny forward pass, no graph)."""
    with torch.no_grad():
        return tuple(prefix(torch.zeros(1, 3, size, size, device=device)).shape[1:])


def prefix_passes(plan: ViewPlan, epochs: int) -> int:
    """How many times the frozen stages run over the training images in `epochs` epochs (for time estimates):
    once per view kept, or every epoch on today's path."""
    return min(plan.views, epochs) if plan.views else epochs
