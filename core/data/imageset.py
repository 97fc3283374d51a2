"""Images decoded and resized once per run into uint8 tensors, and the batches training draws from them."""
from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import torch
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


def augmenter(kind: str, size: int) -> Callable[[torch.Tensor], torch.Tensor] | None:
    if kind == "none":
        return None
    if kind == "light":
        steps = [v2.RandomResizedCrop(size, scale=(0.7, 1.0), antialias=True), v2.RandomHorizontalFlip()]
    else:
        steps = [v2.RandomResizedCrop(size, scale=(0.35, 1.0), antialias=True), v2.RandomHorizontalFlip(),
                 v2.TrivialAugmentWide()]
    return v2.Compose(steps)


def index_batches(n: int, batch_size: int, generator: torch.Generator | None) -> list[torch.Tensor]:
    """Shuffled (with a generator) or ordered batches; a lone trailing sample joins the previous batch,
    since BatchNorm cannot train on a batch of one."""
    order = torch.randperm(n, generator=generator) if generator is not None else torch.arange(n)
    batches = list(order.split(batch_size))
    if len(batches) > 1 and len(batches[-1]) == 1:
        batches[-2] = torch.cat([batches[-2], batches.pop()])
    return batches


def batch_count(n: int, batch_size: int) -> int:
    return len(index_batches(n, batch_size, None))


@dataclass
class FeatureSource:
    """Inputs already run through the frozen prefix (the feature cache): an epoch costs almost nothing."""
    features: torch.Tensor
    labels: torch.Tensor

    def __len__(self) -> int:
        return len(self.labels)

    def batches(self, batch_size: int, generator: torch.Generator | None, device: torch.device,
                ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for idx in index_batches(len(self), batch_size, generator):
            yield self.features[idx].to(device, non_blocking=True).float(), self.labels[idx].to(device)


@dataclass
class ImageSource:
    """Decoded images, augmented per sample, normalised, then (if any stages are frozen) run through the
    frozen prefix without building a graph."""
    images: torch.Tensor | LazyImages
    labels: torch.Tensor
    prep: Preprocessing
    augment: Callable[[torch.Tensor], torch.Tensor] | None
    prefix: Prefix | None
    channels_last: bool = False

    def __len__(self) -> int:
        return len(self.labels)

    def batches(self, batch_size: int, generator: torch.Generator | None, device: torch.device,
                ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for idx in index_batches(len(self), batch_size, generator):
            raw = self.images[idx]
            if self.augment is not None and generator is not None:
                raw = torch.stack([self.augment(image) for image in raw])
            pinned = raw.pin_memory() if device.type == "cuda" else raw
            x = self.prep.normalize(pinned.to(device, non_blocking=True))
            if self.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            if self.prefix is not None:
                with torch.no_grad():
                    x = self.prefix(x)
            yield x, self.labels[idx].to(device)
