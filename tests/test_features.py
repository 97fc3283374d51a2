"""The feature cache: computes only what it lacks, survives a restart, stays within its budget."""
from __future__ import annotations

import os

import torch

from core.data.preprocessing import Preprocessing
from core.models.features import FeatureCache, cache_key

PREP = Preprocessing(256, 224, (0.5,) * 3, (0.5,) * 3, "bicubic")


class Counting:
    def __init__(self) -> None:
        self.asked: list[list[int]] = []

    def __call__(self, indices: list[int]) -> torch.Tensor:
        self.asked.append(list(indices))
        return torch.stack([torch.full((4,), float(i)) for i in indices])


def test_only_missing_features_are_computed_and_duplicates_once(tmp_path):
    cache, compute = FeatureCache(tmp_path), Counting()
    first = cache.features("k", ["a", "b", "a"], compute)
    assert compute.asked == [[2, 1]]  # 'a' once (any of its copies), then 'b'
    assert torch.equal(first[0], first[2])
    cache.features("k", ["b", "c"], compute)
    assert compute.asked[-1] == [1]  # only 'c' is new


def test_a_new_process_finds_features_on_disk(tmp_path):
    FeatureCache(tmp_path).features("k", ["a", "b"], Counting())
    compute = Counting()
    again = FeatureCache(tmp_path).features("k", ["b", "a"], compute)
    assert compute.asked == [] and again[0][0] == 1 and again[1][0] == 0


def test_a_damaged_entry_is_recomputed_not_trusted(tmp_path):
    FeatureCache(tmp_path).features("k", ["a"], Counting())
    (tmp_path / "k.safetensors").write_bytes(b"garbage")
    compute = Counting()
    FeatureCache(tmp_path).features("k", ["a"], compute)
    assert compute.asked == [[0]]


def test_disk_budget_evicts_the_oldest_entries(tmp_path):
    cache = FeatureCache(tmp_path, disk_budget=600)  # room for one entry (256 bytes of features + its header)
    features = lambda indices: torch.zeros(len(indices), 64)  # noqa: E731
    cache.features("old", ["a", "b"], features)
    os.utime(tmp_path / "old.safetensors", (1, 1))  # written long ago
    cache.features("new", ["a", "b"], features)
    assert not (tmp_path / "old.safetensors").exists() and (tmp_path / "new.safetensors").exists()


def test_the_key_changes_with_everything_the_features_depend_on():
    base = cache_key("resnet18", "default", 0, 5, PREP)
    assert base == cache_key("resnet18", "default", 1, 5, PREP)  # the seed matters only for random weights
    others = {cache_key("resnet50", "default", 0, 5, PREP), cache_key("resnet18", "none", 0, 5, PREP),
              cache_key("resnet18", "default", 0, 4, PREP), cache_key("resnet18", "default", 0, 5, PREP.scaled_to(112))}
    assert base not in others and len(others) == 4
    assert cache_key("resnet18", "none", 0, 5, PREP) != cache_key("resnet18", "none", 1, 5, PREP)
