"""What each epoch trains on: cached features of the frozen prefix when possible, decoded images otherwise.

Images are decoded at most once per run, and not at all when every feature they would feed is cached.
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch

from core.data.imageset import BatchAugment, FeatureSource, ImageSource, LazyImages, decode_all, decoded_bytes
from core.data.preprocessing import Preprocessing
from core.data.report import ImageRecord
from core.models.backbones import StagedModel
from core.models.features import FeatureCache, cache_key
from core.training import augmented_views as views
from core.training import distributed
from core.training.data import TrainingData
from core.training.devices import Accelerator

EXTRACT_BATCH = 64
DECODE_BUDGET = 3 << 30  # decoded uint8 images kept in memory per part; beyond it, decode per batch
FeatureProgress = Callable[[str, int, int], None]  # (part, images done, images in all)


@dataclass
class Inputs:
    root: Path
    parts: dict[str, list[ImageRecord]]  # "train" / "val" (or any part name: "all" for the audit)
    prep: Preprocessing
    model: StagedModel
    accel: Accelerator
    cache: FeatureCache
    identity: tuple[str, str, int]  # backbone, weights, seed: with depth and prep, what the features depend on
    shard: tuple[int, int] = (0, 1)  # (rank, processes) under torchrun: each process trains on its share
    targets: dict[str, torch.Tensor] = field(default_factory=dict)  # what each part's images should give
    on_features: FeatureProgress | None = None
    view_plan: views.ViewPlan = views.ViewPlan(0)
    _decoded: dict[str, torch.Tensor | LazyImages] = field(default_factory=dict)

    @classmethod
    def for_training(cls, data: TrainingData, prep: Preprocessing, model: StagedModel, accel: Accelerator,
                     cache: FeatureCache, identity: tuple[str, str, int], shard: tuple[int, int] = (0, 1),
                     on_features: FeatureProgress | None = None) -> "Inputs":
        targets = {part: data.task.targets(data.part(part), data.labels) for part in ("train", "val")}
        return cls(data.root, {"train": data.train, "val": data.val}, prep, model, accel, cache, identity, shard,
                   targets, on_features)

    def _targets(self, part: str) -> torch.Tensor:
        found = self.targets.get(part)
        return found if found is not None else torch.zeros(len(self.parts[part]), dtype=torch.long)

    def source(self, part: str, frozen: int, augment: BatchAugment | None, sharded: bool = True,
               ) -> FeatureSource | ImageSource | views.ViewSource:
        shard = self.shard if sharded else (0, 1)
        if frozen > 0 and augment is None:
            return FeatureSource(self.features(part, frozen), self._targets(part), shard)
        prefix = self._prefix(frozen) if frozen else None
        if prefix is not None and part == "train" and self.view_plan.views > 0:
            return views.ViewSource(self.images(part), self._targets(part), self.prep, augment, prefix,
                                    self.view_plan.views, self.accel.channels_last, shard=shard)
        return ImageSource(self.images(part), self._targets(part), self.prep, augment, prefix,
                           self.accel.channels_last, shard)

    def _prefix(self, frozen: int) -> views.Prefix:
        return lambda x: self.model.run_stages(x, 0, frozen)

    def plan_views(self, asked: int, frozen: int, augmented: bool, epochs: int) -> views.ViewPlan:
        """Decide once per run whether the augmented training images' prefix outputs are kept (see views)."""
        if frozen == 0 or frozen >= len(self.model.stages) or not augmented:
            self.view_plan = views.ViewPlan(0, "")
            return self.view_plan
        shape = views.feature_shape(self._prefix(frozen), self.prep.crop_size, self.accel.device)
        self.view_plan = views.plan(asked, len(self.parts["train"]), shape, self.cache.memory_budget, epochs)
        return self.view_plan

    def will_use_cache(self, part: str, frozen: int) -> bool:
        return self.cache.missing_count(self._key(frozen), [r.sha256 for r in self.parts[part]]) == 0

    def _key(self, frozen: int) -> str:
        return cache_key(*self.identity, frozen, self.prep)

    def images(self, part: str) -> torch.Tensor | LazyImages:
        """Decoded once per run; on a GPU the uint8 images stay there, so augmentation runs there too."""
        if part not in self._decoded:
            records = self.parts[part]
            if decoded_bytes(len(records), self.prep) > DECODE_BUDGET:
                self._decoded[part] = LazyImages(self.root, records, self.prep)
            else:
                decoded = decode_all(self.root, records, self.prep)
                self._decoded[part] = decoded.to(self.accel.device) if self.accel.device.type == "cuda" else decoded
        return self._decoded[part]

    def features(self, part: str, frozen: int) -> torch.Tensor:
        hashes = [r.sha256 for r in self.parts[part]]
        compute = self._extract_sharded if self.shard[1] > 1 else self._extract
        return distributed.cached_features(self.cache, self._key(frozen), hashes,
                                           lambda idx: compute(part, idx, frozen))

    def _extract_sharded(self, part: str, indices: list[int], frozen: int) -> torch.Tensor:
        """Each process runs the prefix over every n-th image; all of them get every result, in order."""
        rank, processes = self.shard
        pieces = distributed.gather_rows(self._extract(part, indices[rank::processes], frozen))
        out = torch.empty((len(indices), *pieces[0].shape[1:]), dtype=pieces[0].dtype)
        for r, piece in enumerate(pieces):
            out[r::processes] = piece
        return out

    def _extract(self, part: str, indices: list[int], frozen: int) -> torch.Tensor:
        """One eval-mode pass of the frozen prefix; decoding the next chunk overlaps the current forward."""
        records = self.parts[part]
        chunks = [indices[i:i + EXTRACT_BATCH] for i in range(0, len(indices), EXTRACT_BATCH)]
        decoded = self._decoded.get(part)

        def load(chunk: list[int]) -> torch.Tensor:
            if decoded is not None:
                return decoded[chunk]
            return decode_all(self.root, [records[i] for i in chunk], self.prep)

        for stage in self.model.stages[:frozen]:
            stage.eval()
        outputs, done = [], 0
        with ThreadPoolExecutor(max_workers=1) as pool, torch.inference_mode(), self.accel.autocast():
            for raw in pool.map(load, chunks):
                x = self.prep.normalize(raw.to(self.accel.device, non_blocking=True))
                if self.accel.channels_last:
                    x = x.contiguous(memory_format=torch.channels_last)
                outputs.append(self.model.run_stages(x, 0, frozen).to("cpu", torch.float16))
                done += len(raw)
                if self.on_features is not None:
                    self.on_features(part, done, len(indices))
        return torch.cat(outputs)
