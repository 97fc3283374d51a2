"""Which process of a torchrun launch this is. Plain environment reads, so any module may ask cheaply.

torchrun sets RANK, LOCAL_RANK and WORLD_SIZE; a plain `python -m core ...` has none of them (one process).
Only the main process (rank 0) writes the run folder, the event log and the feature cache.
"""
from __future__ import annotations

import os


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
