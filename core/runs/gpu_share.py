"""Several small jobs on one GPU: when one may start beside those already running there.

A class's runs are mostly head training on cached features: the frozen backbone runs once over a hundred images
(seconds) and then only a linear layer trains. One such run keeps an H200 nearly idle (its time goes to decoding
JPEGs on the CPU), so making thirty of them wait one after another wastes the GPU. A job may join a GPU where others
run only when every one of them (and it) is such a run, their count stays under `max_jobs`, and the sum of their
conservative memory estimates stays within `memory_share` of the GPU's memory. Anything else (fine-tuning, a
torchrun launch over every GPU, an unknown backbone) keeps a GPU to itself, as before.

Off unless TRANSFERLAB_GPU_SHARE is set to the most jobs per GPU (2 or more): the decision is tested here on the
CPU, but a GPU machine should confirm the estimates (bench/gpu_check.sh) before a server turns it on.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Callable

from core.models import backbones
from core.training.config import TrainConfig

ENV = "TRANSFERLAB_GPU_SHARE"
CONTEXT_BYTES = 600 << 20  # a CUDA context and PyTorch's kernels, per process, before any tensor
ACTIVATION_FACTOR = 64  # peak activations of a forward pass without a graph, in input-tensor sizes (generous)


@dataclass(frozen=True)
class Footprint:
    shareable: bool  # head training on cached features: the only kind that may share a GPU
    bytes: int  # a conservative estimate of the GPU memory the process needs at its peak


def footprint(config: TrainConfig) -> Footprint:
    """What one run of this config needs on a GPU (weights, activations of one batch through the frozen stages)."""
    try:
        info = backbones.info(config.backbone)
        head_only = config.trains_head_only() and config.resolved_augment(1, 1) == "none"
    except (KeyError, ValueError):
        return Footprint(False, 0)
    crop = config.image_size or info.input_size
    weights = int(info.params_m * 1e6 * 4)
    activations = config.batch_size * 3 * crop * crop * 4 * ACTIVATION_FACTOR
    return Footprint(head_only, CONTEXT_BYTES + 2 * weights + activations)


def can_share(newcomer: Footprint, running: list[Footprint], device_bytes: int, max_jobs: int,
              memory_share: float = 0.8) -> bool:
    """May `newcomer` start on a GPU where `running` already run?"""
    if not running:
        return True
    if not newcomer.shareable or not all(f.shareable for f in running) or len(running) + 1 > max_jobs:
        return False
    return newcomer.bytes + sum(f.bytes for f in running) <= memory_share * device_bytes


def max_jobs_per_gpu() -> int:
    try:
        return max(int(os.environ.get(ENV, "1")), 1)
    except ValueError:
        return 1


class GpuSharing:
    """The queue's policy (core.runs.queue.FairQueue.share): `device_bytes(slot)` gives a GPU's memory."""

    def __init__(self, max_jobs: int, device_bytes: Callable[[str], int]) -> None:
        self.max_jobs, self.device_bytes = max_jobs, device_bytes

    def __call__(self, job, running: list) -> bool:
        if len(job.slots) != 1 or not job.slots[0].startswith("cuda:"):
            return False
        return can_share(footprint(job.config), [footprint(j.config) for j in running],
                         self.device_bytes(job.slots[0]), self.max_jobs)


def cuda_memory(slot: str) -> int:
    """Total memory of a GPU ("cuda:1"); read once per slot by the server (torch initialises CUDA lazily here)."""
    import torch

    return int(torch.cuda.get_device_properties(int(slot.split(":")[1])).total_memory)
