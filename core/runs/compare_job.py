"""A comparison as a job: queued and run like training (core.runs.jobs), in a worker process of its own.

The folder is a run folder's sibling kind: compare_request.json instead of config.json (so run lists never show
it), the same status.json, STOP file, worker.log and event log (compare_progress events), and compare.json, the
leaderboard, written once at the end. It takes its turn in the fair queue on its device, so it never holds up
another workspace's training nor jumps ahead of it.
"""
from __future__ import annotations

import dataclasses
import time
import traceback
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.files import read_json, write_json
from core.runs.folder import Run
from core.training.events import COMPARE_PROGRESS, RUN_CANCELLED, RUN_FAILED, RUN_FINISHED, EventLog

REQUEST, RESULT = "compare_request.json", "compare.json"


@dataclass(frozen=True)
class CompareRequest:
    data: str
    backbones: list[str] = field(default_factory=list)  # empty: every backbone available on this server
    folds: int = 5
    seed: int = 0
    device: str = "auto"
    image_size: int | None = None
    cache_namespace: str = ""  # the workspace's runs folder: the features then serve its training runs too
    data_name: str = ""

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "CompareRequest":
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in known})


def create(root: Path, request: CompareRequest) -> Run:
    run = Run(Path(root) / uuid.uuid4().hex)
    run.path.mkdir(parents=True, exist_ok=False)
    write_json(run.file(REQUEST), dataclasses.asdict(request))
    run.set_status("queued", created=time.time(), kind="compare")
    return run


def is_compare(folder: Path) -> bool:
    return (Path(folder) / REQUEST).is_file()


def request_of(folder: Path) -> CompareRequest:
    return CompareRequest.from_dict(read_json(Path(folder) / REQUEST, {}) or {})


def result(folder: Path) -> dict[str, Any] | None:
    """The leaderboard once the job has written it."""
    value = read_json(Path(folder) / RESULT)
    return value if isinstance(value, dict) else None


def execute(folder: Path, work_dir: Path) -> str:
    """Run the comparison in this process; the final state: finished, cancelled or failed. Never raises."""
    from core.insight.compare import compare_backbones
    from core.models.features import FeatureCache

    run, events = Run(folder), EventLog(Run(folder).metrics_file)
    if run.stop.is_set():
        return _end(run, events, "cancelled", RUN_CANCELLED, "Cancelled before it started.")
    run.set_status("running", started=time.time(), kind="compare")
    try:
        request = request_of(folder)
        cache = FeatureCache(Path(work_dir) / "feature-cache").scoped(request.cache_namespace)
        comparison = compare_backbones(Path(request.data), request.backbones or None, request.folds, request.seed,
                                       Path(work_dir), cache, run.stop,
                                       lambda step: events.emit(COMPARE_PROGRESS, **step), request.image_size,
                                       request.device)
        write_json(run.file(RESULT), comparison.to_json())
    except Exception as error:  # the job ends with a sentence whatever happened
        return _end(run, events, "failed", RUN_FAILED,
                    f"The comparison stopped because of an unexpected error ({type(error).__name__}).",
                    details=traceback.format_exc())
    if comparison.cancelled:
        return _end(run, events, "cancelled", RUN_CANCELLED, "Cancelled by the user.")
    if comparison.refusal:
        return _end(run, events, "failed", RUN_FAILED, comparison.refusal)
    pick = comparison.recommendation
    return _end(run, events, "finished", RUN_FINISHED, pick["reason"] if pick else
                "No backbone could be measured on this server.")


def _end(run: Run, events: EventLog, state: str, kind: str, message: str, **fields: Any) -> str:
    run.set_status(state, message=message, finished=time.time(), **fields)
    events.emit(kind, message=message, **fields)
    return state
