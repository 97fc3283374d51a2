"""`torchrun ... -m core train ...` and the app's "Use all N GPUs": the same run on every process, with DDP.

Each process trains on its share of every batch (`--batch-size` is per process) and DistributedDataParallel
averages the gradients, so N processes with batch B train like one with batch N*B. Every process calls the one run
entry (core.runs.pipeline.start_run), which sets up the run (the scoped feature cache included) exactly as for a
single process; rank 0 alone writes the run folder, the event log and the feature cache. Cancel: create the file
`STOP` in the run folder (or press Ctrl-C); every process checks it before each batch. A process that fails writes
one sentence (its rank and error) and exits non-zero; torchrun then ends the others with SIGTERM, and rank 0's run
status says what happened.
"""
from __future__ import annotations

import json
import signal
import sys
from pathlib import Path

from core import paths
from core.data.datasets import inspect_data
from core.runs.folder import Run, create
from core.runs.pipeline import start_run
from core.training import distributed
from core.training.config import TrainConfig
from core.training.events import EPOCH_END, RUN_CANCELLED, RUN_FAILED, RUN_FINISHED, EventLog

EXIT_CODES = {"finished": 0, "cancelled": 130}


class ProcessTerminated(RuntimeError):
    """torchrun ends the other processes with SIGTERM when one of them fails."""


def _terminated(*_: object) -> None:
    raise ProcessTerminated("stopped because another training process failed (see its message)")


class _Echo(EventLog):
    """The run's event log that also prints each epoch's global line, as `python -m core train` does."""

    def emit(self, kind: str, **data):
        event = super().emit(kind, **data)
        if kind == EPOCH_END:
            print(f"epoch {data['epoch']}/{data['epochs']} ({data['world_size']} processes): loss "
                  f"{data['train_loss']:.4f} | val loss {data['val_loss']:.4f} acc {data['val_accuracy']:.3f} | "
                  f"{data['images_per_s']:.0f} img/s", file=sys.stderr, flush=True)
        elif kind in (RUN_FAILED, RUN_CANCELLED, RUN_FINISHED):
            print(data.get("message", kind), file=sys.stderr, flush=True)
        return event


def train(config: TrainConfig, out: Path) -> int:
    """Every process of `torchrun ... -m core train`: rank 0 makes the run folder, all train in it."""
    return _launched(config, lambda: create(out, config).path)


def train_existing(run_dir: Path, home: Path) -> int:
    """Every process of a torchrun launch the app started for a run folder it already made (its config inside)."""
    return _launched(Run(run_dir).train_config(), lambda: Path(run_dir), home)


def _launched(config: TrainConfig, make_folder, home: Path | None = None) -> int:
    home = home or paths.home()
    distributed.init()
    try:
        if distributed.is_main():
            inspect_data(Path(config.data), home)  # an archive is unpacked once, by rank 0, before the others read it
        run_dir = Path(distributed.share(str(make_folder()) if distributed.is_main() else None))
        signal.signal(signal.SIGINT, lambda *_: Run(run_dir).stop.set())
        signal.signal(signal.SIGTERM, _terminated)
        events = _Echo(Run(run_dir).metrics_file) if distributed.is_main() else EventLog()
        state = start_run(run_dir, home, events)
    except Exception as error:  # e.g. the process group could not form: one sentence, torchrun stops the others
        sentence = f"process {distributed.rank()} of {distributed.world_size()} failed: {type(error).__name__}: {error}"
        distributed.note_failure(sentence[:400])
        print(f"TransferLab: {sentence[:400]}", file=sys.stderr, flush=True)
        return 1
    finally:
        distributed.teardown()
    if distributed.is_main():
        status = Run(run_dir).status()
        print(json.dumps({"run": str(run_dir), "world_size": distributed.world_size(),
                          **{k: status.get(k) for k in ("state", "message", "val_accuracy", "best_epoch", "elapsed_s")}}))
    return EXIT_CODES.get(state, 1)
