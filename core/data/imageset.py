"""Images decoded and resized once per run into uint8 tensors, and the batches training draws from them."""
from __future__ import annotations

import math
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import torch
from torchvision.ops import roi_align
from torchvision.transforms import v2

from core.data.preprocessing import Preprocessing, load_rgb
from core.data.report import ImageRecord

Prefix = Callable[[torch.Tensor], torch.Tensor]


def decode_all(root: Path, records: list[ImageRecord], prep: Preprocessing) -> torch.Tensor:
    """(N, 3, crop, crop) uint8. Pillow releases the GIL while decoding, so threads use every core."""
    def decode(record: ImageRecord) -> torch.Tensor:
        return prep.to_uint8(load_rgb(root / record.path, min_size=prep.resize_size))

    if not records:
        return torch.empty(0, 3, prep.crop_size, prep.crop_size, dtype=torch.uint8)
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        return torch.stack(list(pool.map(decode, records)))


class LazyImages:
    """Past the memory budget: decode each batch when it is needed instead of keeping every image in memory."""

    def __init__(self, root: Path, records: list[ImageRecord], prep: Preprocessing) -> None:
        self.root, self.records, self.prep = root, records, prep

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, indices: torch.Tensor | list[int]) -> torch.Tensor:
        chosen = indices.tolist() if isinstance(indices, torch.Tensor) else list(indices)
        return decode_all(self.root, [self.records[i] for i in chosen], self.prep)


def decoded_bytes(count: int, prep: Preprocessing) -> int:
    return count * 3 * prep.crop_size * prep.crop_size


class BatchAugment:
    """Random resized crop and horizontal flip of a whole uint8 batch at once, on whatever device it lives on
    (the GPU when training there): one roi_align call instead of a Python call per image.

    Returns float pixels in [0, 255], ready for `Preprocessing.normalize`. Random parameters come from the
    epoch's CPU generator, so a seeded run repeats exactly.
    """

    def __init__(self, size: int, scale: tuple[float, float], extra: Callable | None = None) -> None:
        self.size, self.scale, self.extra = size, scale, extra
        self.log_ratio = (math.log(3 / 4), math.log(4 / 3))

    def boxes(self, count: int, height: int, width: int, generator: torch.Generator | None) -> torch.Tensor:
        """(count, 4) crop boxes x1, y1, x2, y2: area a uniform share of the image, aspect log-uniform."""
        area = torch.empty(count).uniform_(*self.scale, generator=generator) * height * width
        ratio = torch.exp(torch.empty(count).uniform_(*self.log_ratio, generator=generator))
        w = torch.sqrt(area * ratio).clamp(max=width)
        h = torch.sqrt(area / ratio).clamp(max=height)
        x0 = torch.rand(count, generator=generator) * (width - w)
        y0 = torch.rand(count, generator=generator) * (height - h)
        return torch.stack([x0, y0, x0 + w, y0 + h], dim=1)

    def __call__(self, batch: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        count, _, height, width = batch.shape
        boxes = self.boxes(count, height, width, generator)
        flip = (torch.rand(count, generator=generator) < 0.5).to(batch.device).view(-1, 1, 1, 1)
        rois = torch.cat([torch.arange(count, dtype=torch.float32).view(-1, 1), boxes], dim=1).to(batch.device)
        # one bilinear sample at each output pixel centre: crops are enlarged (light: at least 70% of the area)
        out = roi_align(batch.float(), rois, self.size, spatial_scale=1.0, sampling_ratio=1, aligned=True)
        out = torch.where(flip, out.flip(-1), out)
        if self.extra is not None:  # strong: photometric changes per image (the slow, opt-in level)
            pixels = out.round().clamp(0, 255).to(torch.uint8)
            out = torch.stack([self.extra(image) for image in pixels]).float()
        return out


def augmenter(kind: str, size: int) -> BatchAugment | None:
    if kind == "none":
        return None
    if kind == "light":
        return BatchAugment(size, (0.7, 1.0))
    return BatchAugment(size, (0.35, 1.0), v2.TrivialAugmentWide())


def index_batches(n: int, batch_size: int, generator: torch.Generator | None,
                  shard: tuple[int, int] = (0, 1)) -> list[torch.Tensor]:
    """Shuffled (with a generator) or ordered batches; a lone trailing sample joins the previous batch,
    since BatchNorm cannot train on a batch of one.

    `shard` = (rank, processes): this process's share, as torch's DistributedSampler deals it. Every process
    shuffles with the same generator, so process r's batch k and the others' together are the single process's
    batch k. Training pads with repeats so every process makes the same number of steps (DDP needs it).
    """
    order = torch.randperm(n, generator=generator) if generator is not None else torch.arange(n)
    rank, processes = shard
    if processes > 1:
        if generator is not None:
            order = torch.cat([order, order[:(-n) % processes]])
        order = order[rank::processes]
    batches = list(order.split(batch_size))
    if len(batches) > 1 and len(batches[-1]) == 1:
        lone = batches.pop()  # popped first: `batches[-2] = cat([batches[-2], batches.pop()])` hits the wrong slot
        batches[-1] = torch.cat([batches[-1], lone])
    return batches


def batch_count(n: int, batch_size: int, shard: tuple[int, int] = (0, 1)) -> int:
    return len(index_batches(n, batch_size, torch.Generator() if shard[1] > 1 else None, shard))


@dataclass
class FeatureSource:
    """Inputs already run through the frozen prefix (the feature cache): an epoch costs almost nothing."""
    features: torch.Tensor
    labels: torch.Tensor
    shard: tuple[int, int] = (0, 1)

    def __len__(self) -> int:
        return len(self.labels)

    def batches(self, batch_size: int, generator: torch.Generator | None, device: torch.device,
                ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for idx in index_batches(len(self), batch_size, generator, self.shard):
            yield self.features[idx].to(device, non_blocking=True).float(), self.labels[idx].to(device)


@dataclass
class ImageSource:
    """Decoded images, augmented a batch at a time on the training device, normalised, then (if any stages are
    frozen) run through the frozen prefix without building a graph."""
    images: torch.Tensor | LazyImages
    labels: torch.Tensor
    prep: Preprocessing
    augment: BatchAugment | None
    prefix: Prefix | None
    channels_last: bool = False
    shard: tuple[int, int] = (0, 1)

    def __len__(self) -> int:
        return len(self.labels)

    def batches(self, batch_size: int, generator: torch.Generator | None, device: torch.device,
                ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for idx in index_batches(len(self), batch_size, generator, self.shard):
            raw = self.images[idx]
            if raw.device.type != device.type:  # on a GPU the decoded images already live there
                raw = (raw.pin_memory() if device.type == "cuda" else raw).to(device, non_blocking=True)
            if self.augment is not None and generator is not None:
                raw = self.augment(raw, generator)
            x = self.prep.normalize(raw)
            if self.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            if self.prefix is not None:
                with torch.no_grad():
                    x = self.prefix(x)
            yield x, self.labels[idx].to(device)
