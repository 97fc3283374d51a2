"""One run from start to end: status, fit, save the model and its evaluation, and say how it ended.

It runs inside the training process (core.runs.worker), never in the web server. `run_finished` is emitted only
once the model and evaluation are on disk, so a reader that sees it can load them. Under torchrun only the main
process (rank 0) writes the run folder; the others train and keep quiet.
"""
from __future__ import annotations

import time
import traceback
from pathlib import Path
from typing import Any, Protocol

import torch

from core.data.archive import ArchiveRefused
from core.data.preprocessing import ImageRejected
from core.insight.evaluation import build_report
from core.insight.trust import after_fit
from core.models.backbones import WeightsUnavailable
from core.models.features import FeatureCache
from core.training import distributed
from core.training.config import ConfigError, TrainConfig
from core.training.events import RUN_CANCELLED, RUN_FAILED, RUN_FINISHED, EventLog
from core.training.loop import Cancelled, DataError, fit
from core.runs.folder import EVALUATION, Run, write_json


class StopSignal(Protocol):
    def is_set(self) -> bool: ...


def execute(config: TrainConfig, run_dir: Path, events: EventLog, stop: StopSignal, work_dir: Path,
            cache: FeatureCache | None = None) -> str:
    """Run to the end and return the final state: finished, cancelled or failed. Never raises."""
    run, started = Run(run_dir), time.time()
    if stop.is_set():
        return _end(run, events, "cancelled", RUN_CANCELLED, "Cancelled before it started.")
    if distributed.is_main():
        run.set_status("running", started=started)
    try:
        result = fit(config, events, stop, work_dir, cache)
        report = build_report(result.labels, result.val_records, result.val_probabilities)
        report["data_root"] = str(result.root)
        if distributed.is_main():
            run.save_model(result.model, result.labels, result.preprocessing)
            write_json(run.file(EVALUATION), report)
            after_fit(run_dir, result, config, work_dir, cache)  # calibration, "not sure" threshold, unknown inputs
    except Cancelled:
        return _end(run, events, "cancelled", RUN_CANCELLED, "Cancelled by the user.")
    except Exception as error:  # the process must end with a sentence whatever happened
        details = traceback.format_exc()
        return _end(run, events, "failed", RUN_FAILED, explain(error), details=details)
    epochs_run = max((e.data["epoch"] for e in events.of_kind("epoch_end")), default=0)
    summary = {"val_accuracy": report["accuracy"], "macro_f1": report["macro_f1"], "best_epoch": result.best_epoch,
               "epochs_run": epochs_run, "epochs": config.epochs, "early_stopping": config.early_stopping,
               "elapsed_s": round(time.time() - started, 2)}
    return _end(run, events, "finished", RUN_FINISHED, "Training finished.", **summary)


def _end(run: Run, events: EventLog, state: str, kind: str, message: str, **fields: Any) -> str:
    if distributed.is_main():
        run.set_status(state, message=message, finished=time.time(), **fields)
    events.emit(kind, message=message, **fields)
    return state


def explain(error: BaseException) -> str:
    """A sentence a newcomer can act on; the traceback goes in the details."""
    text = str(error)
    if isinstance(error, torch.OutOfMemoryError) or "out of memory" in text.lower():
        return ("The computer ran out of memory while training. Try a smaller batch size, a smaller image size "
                "or a smaller backbone.")
    if isinstance(error, (WeightsUnavailable, DataError, ArchiveRefused, ConfigError, FileNotFoundError, ImageRejected,
                          distributed.PeerFailed)):
        return text
    return f"Training stopped because of an unexpected error ({type(error).__name__}: {text[:300]})."
