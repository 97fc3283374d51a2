"""One run from start to end: inspect and split once -> fit -> evaluate -> trust -> save, and say how it ended.

`start_run` is the one entry of every training process: the worker the job manager starts, and each process of a
torchrun launch. It builds what a run needs around it (the event log, the stop request, the feature cache scoped to
the run's workspace) in this one place, so the launch paths cannot drift apart. It runs in the training process,
never in the web server. `run_finished` is emitted only once the results are on disk, so a reader that sees it can
load them. Under torchrun only the main process (rank 0) writes the run folder; the others train and keep quiet.
"""
from __future__ import annotations

import time
import traceback
from pathlib import Path
from typing import Any, Protocol

import torch

from core.data import public
from core.data.archive import ArchiveRefused
from core.data.imageset import decode_all
from core.data.preprocessing import ImageRejected
from core.insight import trust
from core.models.backbones import WeightsUnavailable
from core.models.features import FeatureCache
from core.runs.folder import MAX_VAL_IMAGES, Run
from core.training import distributed
from core.training.config import ConfigError, TrainConfig
from core.training.data import DataError, prepare
from core.training.events import EPOCH_END, RUN_CANCELLED, RUN_FAILED, RUN_FINISHED, EventLog
from core.training.loop import Cancelled, FitResult, fit


class StopSignal(Protocol):
    def is_set(self) -> bool: ...


def feature_cache(work_dir: Path, run: Run) -> FeatureCache:
    """On disk, so it stays effective from one process to the next; scoped to the runs' folder (one workspace), so a
    workspace never learns from the cache's speed that another one trained on the same images, except for data that
    is public by nature (the shipped sample, a class's starter data: core.data.public), whose features a whole class
    computes once. Only rank 0 of a torchrun launch holds one (the others get theirs through it:
    core.training.distributed.cached_features)."""
    if not distributed.is_main():
        return FeatureCache(None)
    shared = public.shared_scope(run.config().get("data", ""))
    return FeatureCache(Path(work_dir) / "feature-cache").scoped(shared or str(run.path.parent.resolve()))


def start_run(run_dir: Path, work_dir: Path, events: EventLog | None = None) -> str:
    """Train the run whose folder (and config.json) exists; returns the final state. Never raises."""
    run = Run(run_dir)
    distributed.failure_notes = run.path  # where a failing process of a torchrun launch leaves its sentence
    if events is None:
        events = EventLog(run.metrics_file if distributed.is_main() else None)  # only rank 0 writes the log
    return execute(run.train_config(), run.path, events, run.stop, work_dir, feature_cache(work_dir, run))


def execute(config: TrainConfig, run_dir: Path, events: EventLog, stop: StopSignal, work_dir: Path,
            cache: FeatureCache | None = None) -> str:
    """Run to the end and return the final state: finished, cancelled or failed. Never raises."""
    run, started = Run(run_dir), time.time()
    if stop.is_set():
        return _end(run, events, "cancelled", RUN_CANCELLED, "Cancelled before it started.")
    if distributed.is_main():
        run.set_status("running", started=started, task=config.task)
    try:
        data = prepare(config, work_dir)
        result = fit(config, data, events, stop, cache)
        evaluation = data.task.evaluate(data.labels, data.val, result.val_answers)
        if distributed.is_main():
            checked = trust.compute(result, config, cache)
            evaluation.trust = checked.report
            run.save_result(result.model, data.labels, result.preprocessing, evaluation, checked.predict or None,
                            checked.reference, _val_images(result))
    except Cancelled:
        return _end(run, events, "cancelled", RUN_CANCELLED, "Cancelled by the user.")
    except Exception as error:  # the process must end with a sentence whatever happened
        if stop.is_set():  # under torchrun: another process stopped first, which broke a collective step here
            return _end(run, events, "cancelled", RUN_CANCELLED, "Cancelled by the user.")
        if not distributed.is_main():  # rank 0 quotes it: "Another training process failed, so this run stopped: ..."
            distributed.note_failure(f"process {distributed.rank()} of {distributed.world_size()} failed: "
                                     f"{type(error).__name__}: {str(error)[:300]}")
        return _end(run, events, "failed", RUN_FAILED, explain(error), details=traceback.format_exc())
    epochs_run = max((e.data["epoch"] for e in events.of_kind(EPOCH_END)), default=0)
    summary = {"task": data.task.name, "metrics": evaluation.metrics, "val_accuracy": evaluation.accuracy,
               "macro_f1": evaluation.macro_f1, "val_images": len(data.val), "best_epoch": result.best_epoch,
               "epochs_run": epochs_run, "epochs": config.epochs, "early_stopping": config.early_stopping,
               "elapsed_s": round(time.time() - started, 2)}
    return _end(run, events, "finished", RUN_FINISHED, "Training finished.", **summary)


def _val_images(result: FitResult) -> dict[str, torch.Tensor]:
    """The validation images as the model saw them (resized and cropped), so the run folder alone can show them,
    explain them and check an export with them, after the extracted data is cleaned up."""
    records = list({r.sha256: r for r in result.data.val}.values())[:MAX_VAL_IMAGES]
    pixels = decode_all(result.data.root, records, result.preprocessing)
    return {record.sha256: image for record, image in zip(records, pixels)}


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
    if isinstance(error, (WeightsUnavailable, DataError, ArchiveRefused, ConfigError, FileNotFoundError,
                          ImageRejected, distributed.PeerFailed)):
        return text
    return f"Training stopped because of an unexpected error ({type(error).__name__}: {text[:300]})."
