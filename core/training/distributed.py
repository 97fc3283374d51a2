"""Which process of a torchrun launch this is, and the few collective steps training needs across processes.

torchrun sets RANK, LOCAL_RANK and WORLD_SIZE; a plain `python -m core ...` has none of them (one process), and
then every helper here is a no-op. Only the main process (rank 0) writes the run folder, the event log and the
feature cache. Every collective has a timeout, so a process that dies makes the others fail, never hang.
"""
from __future__ import annotations

import contextlib
import os
import time
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterator

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

if TYPE_CHECKING:
    from core.models.features import FeatureCache

TIMEOUT_S = int(os.environ.get("TRANSFERLAB_DDP_TIMEOUT_S", "180"))


def rank() -> int:
    return int(os.environ.get("RANK", "0"))


def local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", "0"))


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def is_distributed() -> bool:
    return world_size() > 1


def is_main() -> bool:
    return rank() == 0


def active() -> bool:
    """A process group with more than one process is up (set by `init`)."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def shard() -> tuple[int, int]:
    """(this process's rank, number of processes) for splitting data; (0, 1) without a process group."""
    return (dist.get_rank(), dist.get_world_size()) if active() else (0, 1)


def init() -> None:
    """Join the process group torchrun describes: NCCL when each process has a GPU, gloo on CPUs."""
    if dist.is_initialized():
        return
    if torch.cuda.is_available():
        torch.cuda.set_device(local_rank())
    backend = "nccl" if torch.cuda.is_available() else "gloo"
    dist.init_process_group(backend, timeout=timedelta(seconds=TIMEOUT_S))


def teardown() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def _comm_device() -> torch.device:
    return torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else torch.device("cpu")


def all_reduce_sum(values: list[float]) -> list[float]:
    """Element-wise sums over every process (the values themselves without a process group)."""
    if not active():
        return values
    tensor = torch.tensor(values, dtype=torch.float64, device=_comm_device())
    dist.all_reduce(tensor)
    return tensor.tolist()


def share(obj: object) -> object:
    """Rank 0's `obj`, on every process."""
    if not active():
        return obj
    box = [obj if is_main() else None]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def barrier() -> None:
    if active():
        dist.barrier()


def gather_rows(local: torch.Tensor) -> list[torch.Tensor]:
    """Every process's `local` rows (counts may differ by process), in rank order, on the CPU."""
    if not active():
        return [local]
    device, world = _comm_device(), dist.get_world_size()
    counts = [torch.zeros(1, dtype=torch.long, device=device) for _ in range(world)]
    dist.all_gather(counts, torch.tensor([len(local)], device=device))
    longest = max(int(c) for c in counts)
    padded = torch.zeros((longest, *local.shape[1:]), dtype=local.dtype, device=device)
    padded[:len(local)] = local.to(device)
    gathered = [torch.empty_like(padded) for _ in range(world)]
    dist.all_gather(gathered, padded)
    return [g[:int(c)].cpu() for g, c in zip(gathered, counts)]


def share_rows(store: torch.Tensor, local_indices: torch.Tensor) -> None:
    """Fill `store` (rows indexed like the data) with the rows every other process computed."""
    if not active():
        return
    indices = torch.cat(gather_rows(local_indices))
    rows = torch.cat(gather_rows(store[local_indices]))
    store[indices] = rows.to(store.dtype)


class FromStage(nn.Module):
    """`model.forward_from(x, start)` as a module's forward, so DistributedDataParallel can wrap the partial
    forward and synchronise exactly the gradients of the stages that train."""

    def __init__(self, model: nn.Module, start: int) -> None:
        super().__init__()
        self.model, self.start = model, start

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.forward_from(x, self.start)


def wrap(model: nn.Module, start: int) -> nn.Module:
    """The partial forward, through DDP when several processes train (rebuilt per phase: the trainable set
    changes)."""
    module = FromStage(model, start)
    if not active():
        return module
    device_ids = [torch.cuda.current_device()] if dist.get_backend() == "nccl" else None
    return DistributedDataParallel(module, device_ids=device_ids)


def cached_features(cache: FeatureCache, key: str, hashes: list[str],
                    compute: Callable[[list[int]], torch.Tensor]) -> torch.Tensor:
    """The feature cache across processes: rank 0 alone reads and writes it (the others hold none), and every
    process takes the same branch, so the collective extraction inside `compute` runs on all or none."""
    if not active():
        return cache.features(key, hashes, compute)
    if share(is_main() and cache.missing_count(key, hashes) == 0):
        return share(cache.features(key, hashes, compute) if is_main() else None)
    features = compute(list(range(len(hashes)))).to("cpu", torch.float16)
    if is_main():
        cache.features(key, hashes, lambda indices: features[indices])  # stores, and writes to disk
    return features


class PeerFailed(RuntimeError):
    """Another process of the launch failed, which broke a collective step here; the message says which."""


# Where failing processes leave their one-sentence reason for rank 0 to quote (the run folder; set by core.runs.launcher)
failure_notes: Path | None = None


def note_failure(sentence: str) -> None:
    if failure_notes is not None:
        with contextlib.suppress(OSError):
            (failure_notes / f".failed-rank{rank()}.txt").write_text(sentence, encoding="utf-8")


@contextlib.contextmanager
def peer_errors() -> Iterator[None]:
    """Turn a broken collective (a peer died) into one sentence naming the process that failed, if it said."""
    try:
        yield
    except RuntimeError as error:
        text = str(error)
        if not active() or isinstance(error, (PeerFailed, torch.OutOfMemoryError)) or not (
                isinstance(error, dist.DistError) or "gloo" in text or "NCCL" in text):
            raise
        raise PeerFailed(f"Another training process failed, so this run stopped: {_peer_reason()}") from error


def _peer_reason(wait_s: float = 3.0) -> str:
    deadline = time.monotonic() + wait_s  # the failing process writes its note as it exits: give it a moment
    while failure_notes is not None and time.monotonic() < deadline:
        notes = sorted(failure_notes.glob(".failed-rank*.txt"))
        if notes:
            return " ".join(n.read_text(encoding="utf-8") for n in notes)
        time.sleep(0.2)
    return "its own output (torchrun's log) says why."
