"""One run from start to end: status, fit, save the model and its evaluation, and say how it ended.

`run_finished` is emitted only once the model and evaluation are on disk, so a page that sees it can load them.
"""
from __future__ import annotations

import threading
import time
import traceback
from pathlib import Path

import torch

from core.data.archive import ArchiveRefused
from core.insight.evaluation import build_report
from core.insight.trust import after_fit
from core.models.backbones import WeightsUnavailable
from core.models.features import FeatureCache
from core.training import runs
from core.training.config import ConfigError, TrainConfig
from core.training.events import EventLog
from core.training.loop import Cancelled, DataError, fit


def execute(config: TrainConfig, run_dir: Path, events: EventLog, stop: threading.Event, work_dir: Path,
            cache: FeatureCache | None = None) -> str:
    """Run to the end and return the final state: finished, cancelled or failed. Never raises."""
    started = time.time()
    if stop.is_set():
        return _end(run_dir, events, "cancelled", "run_cancelled", "Cancelled before it started.")
    runs.set_status(run_dir, "running", started=started)
    try:
        result = fit(config, events, stop, work_dir, cache)
        runs.save_model(run_dir, result.model, result.labels, result.preprocessing)
        report = build_report(result.labels, result.val_records, result.val_probabilities)
        report["data_root"] = str(result.root)
        runs.write_json(run_dir / "evaluation.json", report)
        after_fit(run_dir, result, config, work_dir, cache)  # calibration, "not sure" threshold, unknown inputs
    except Cancelled:
        return _end(run_dir, events, "cancelled", "run_cancelled", "Cancelled by the user.")
    except Exception as error:  # the worker must survive anything, and say what happened
        details = traceback.format_exc()
        return _end(run_dir, events, "failed", "run_failed", explain(error), details=details)
    summary = {"val_accuracy": report["accuracy"], "macro_f1": report["macro_f1"], "best_epoch": result.best_epoch,
               "elapsed_s": round(time.time() - started, 2)}
    return _end(run_dir, events, "finished", "run_finished", "Training finished.", **summary)


def _end(run_dir: Path, events: EventLog, state: str, kind: str, message: str, **fields) -> str:
    runs.set_status(run_dir, state, message=message, finished=time.time(), **fields)
    events.emit(kind, message=message, **fields)
    return state


def explain(error: BaseException) -> str:
    """A sentence a newcomer can act on; the traceback goes in the details."""
    text = str(error)
    if isinstance(error, torch.OutOfMemoryError) or "out of memory" in text.lower():
        return ("The computer ran out of memory while training. Try a smaller batch size, a smaller image size "
                "or a smaller backbone.")
    if isinstance(error, (WeightsUnavailable, DataError, ArchiveRefused, ConfigError, FileNotFoundError)):
        return text
    return f"Training stopped because of an unexpected error ({type(error).__name__}: {text[:300]})."
