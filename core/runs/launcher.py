"""`torchrun ... -m core train ...`: the same training on every process of a torchrun launch, with DDP.

Each process trains on its share of every batch (`--batch-size` is per process) and DistributedDataParallel
averages the gradients, so N processes with batch B train like one with batch N*B. Rank 0 alone writes the run
folder, the event log and the feature cache. Cancel: create the file `STOP` in the run folder (or press Ctrl-C);
every process checks it before each batch. A process that fails prints one sentence (its rank and error) and
exits non-zero; torchrun then ends the others with SIGTERM, and rank 0's run status says what happened.
"""
from __future__ import annotations

import json
import signal
import sys
import threading
from pathlib import Path

from core import paths
from core.data.datasets import inspect
from core.models.features import FeatureCache
from core.runs import folder as runs
from core.runs import pipeline as runner
from core.training import distributed
from core.training.config import TrainConfig
from core.training.events import EventLog
from core.training.loop import Cancelled, fit


class ProcessTerminated(RuntimeError):
    """torchrun ends the other processes with SIGTERM when one of them fails."""


def _terminated(*_: object) -> None:
    raise ProcessTerminated("stopped because another training process failed (see its message)")


class StopFile(threading.Event):
    """Set by Ctrl-C, or by anyone (the app, a user) creating `path`."""

    def __init__(self, path: Path) -> None:
        super().__init__()
        self.path = path

    def is_set(self) -> bool:
        return super().is_set() or self.path.exists()


class _Echo(EventLog):
    """The run's event log that also prints each epoch's global line, as `python -m core train` does."""

    def emit(self, kind: str, **data):
        event = super().emit(kind, **data)
        if kind == "epoch_end":
            print(f"epoch {data['epoch']}/{data['epochs']} ({data['world_size']} processes): loss "
                  f"{data['train_loss']:.4f} | val loss {data['val_loss']:.4f} acc {data['val_accuracy']:.3f} | "
                  f"{data['images_per_s']:.0f} img/s", file=sys.stderr, flush=True)
        elif kind in ("run_failed", "run_cancelled", "run_finished"):
            print(data.get("message", kind), file=sys.stderr, flush=True)
        return event


def train(config: TrainConfig, out: Path) -> int:
    """Entry point of every process (`torchrun ... -m core train`); returns the exit code (0 finished, 130
    cancelled, 1 failed)."""
    distributed.init()
    try:
        return _train(config, out)
    except Exception as error:  # one sentence per failing process; torchrun stops the others
        return _failed(error)
    finally:
        distributed.teardown()


def _failed(error: Exception) -> int:
    """This process's failure as one sentence (its rank and error), for rank 0's run status and the log."""
    sentence = (f"process {distributed.rank()} of {distributed.world_size()} failed: "
                f"{type(error).__name__}: {str(error)[:300]}")
    distributed.note_failure(sentence)
    print(f"TransferLab: {sentence}", file=sys.stderr, flush=True)
    return 1


def _train(config: TrainConfig, out: Path) -> int:
    home = paths.home()
    if distributed.is_main():
        inspect(Path(config.data), home)  # an archive is unpacked once, by rank 0, before the others read it
    run_dir = Path(distributed.share(str(runs.create(out, config)) if distributed.is_main() else None))
    return train_in(config, run_dir, home)


def train_existing(run_dir: Path, home: Path) -> int:
    """Every process of a torchrun launch the app started for a run folder it already made (its config inside)."""
    distributed.init()
    try:
        config = runs.Run(run_dir).train_config()
        if distributed.is_main():
            inspect(Path(config.data), home)
        distributed.barrier()  # the others wait until rank 0 has unpacked the data
        return train_in(config, run_dir, home)
    except Exception as error:
        return _failed(error)
    finally:
        distributed.teardown()


def train_in(config: TrainConfig, run_dir: Path, home: Path) -> int:
    # The same STOP file the app's Cancel writes: every process checks it before each batch.
    stop = StopFile(run_dir / runs.STOP)
    distributed.failure_notes = run_dir
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGTERM, _terminated)
    if not distributed.is_main():
        try:
            fit(config, EventLog(), stop, home, FeatureCache(None))
        except Cancelled:
            return 130
        except Exception:
            if stop.is_set():
                return 130  # rank 0 stopped first: the broken collective is the cancel, not a failure
            raise
        return 0
    events = _Echo(run_dir / "metrics.jsonl")
    state = runner.execute(config, run_dir, events, stop, home, FeatureCache(home / "feature-cache"))
    status = runs.read_status(run_dir)
    print(json.dumps({"run": str(run_dir), "world_size": distributed.world_size(),
                      **{k: status.get(k) for k in ("state", "message", "val_accuracy", "best_epoch", "elapsed_s")}}))
    return {"finished": 0, "cancelled": 130}.get(state, 1)
