"""Run folders: everything a run made, on disk, written atomically, listable after a restart.

The one module that knows the folder's file names and the evaluation's keys; everything else goes through `Run`.
The folder alone is enough to predict, evaluate and export; a damaged file costs only what it held.
"""
from __future__ import annotations

import json
import os
import shutil
import time
import uuid
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from core.files import read_json, write_json
from core.training.config import TrainConfig
from core.training.events import EPOCH_END, JsonlTail

CONFIG, STATUS, METRICS, LABELS = "config.json", "status.json", "metrics.jsonl", "labels.json"
PREPROCESSING, MODEL, EVALUATION = "preprocessing.json", "model.safetensors", "evaluation.json"
STOP, WORKER_LOG = "STOP", "worker.log"
EVALUATION_KEYS = ("accuracy", "macro_f1", "per_class", "confusion", "labels", "mistakes", "num_images")
ACTIVE_STATES = frozenset({"queued", "running"})
FINAL_STATES = frozenset({"finished", "failed", "cancelled"})
GONE_MESSAGE = "This run stopped without finishing: the process training it is gone (the server or the computer stopped)."


def process_start(pid: int) -> str | None:
    """When process `pid` started (clock ticks since boot, from /proc), or None when it is not there.
    A pid with another start time is another process that reused the number."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (OSError, ValueError):
        return None
    return stat.rsplit(")", 1)[1].split()[19]  # field 22, counted after the command name in parentheses


def process_alive(pid: Any, started: Any) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    if Path("/proc/self/stat").exists():
        return process_start(pid) is not None and (started is None or process_start(pid) == started)
    try:  # no /proc (macOS): only the pid can be checked
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class StopFile:
    """A stop request every process of a run can see (a torchrun launch has several): the STOP file.
    `is_set()` is one stat call, cheap enough to ask every batch."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def set(self) -> None:
        self.path.touch()

    def is_set(self) -> bool:
        return self.path.exists()


class Run:
    """One run folder."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)

    @property
    def id(self) -> str:
        return self.path.name

    def file(self, name: str) -> Path:
        return self.path / name

    @property
    def stop(self) -> StopFile:
        return StopFile(self.file(STOP))

    def config(self) -> dict[str, Any]:
        value = read_json(self.file(CONFIG), {})
        return value if isinstance(value, dict) else {}

    def train_config(self) -> TrainConfig:
        return TrainConfig.from_dict(self.config())

    # --- status: written by whoever runs the run; read by anyone ---
    def set_status(self, state: str, pid: int | None = None, **fields: Any) -> dict[str, Any]:
        pid = pid or os.getpid()
        status = self._stored_status() | fields
        status.update(state=state, updated=time.time(), pid=pid, pid_start=process_start(pid))
        write_json(self.file(STATUS), status)
        return status

    def _stored_status(self) -> dict[str, Any]:
        value = read_json(self.file(STATUS))
        return value if isinstance(value, dict) and isinstance(value.get("state"), str) else {}

    def status(self) -> dict[str, Any]:
        """The status as it is: a run whose process is gone (or whose pid now names another process) reads as
        interrupted; a damaged status file is inferred from what else the folder holds."""
        status = self._stored_status()
        if not status:
            return self._inferred_status()
        if status["state"] in ACTIVE_STATES and not process_alive(status.get("pid"), status.get("pid_start")):
            return status | {"state": "interrupted", "message": GONE_MESSAGE}
        return status

    def _inferred_status(self) -> dict[str, Any]:
        created = self.file(CONFIG).stat().st_mtime if self.file(CONFIG).exists() else 0.0
        if self.has_model():
            return {"state": "finished", "created": created, "message": "The run's status file is damaged; its "
                    "trained model is intact and can still be used."}
        return {"state": "damaged", "created": created, "message": "The run's status file is damaged and it "
                "has no trained model."}

    @property
    def state(self) -> str:
        return self.status().get("state", "unknown")

    def is_running(self) -> bool:
        return self.state in ACTIVE_STATES

    # --- the event log ---
    def records(self, kind: str | None = None) -> list[dict[str, Any]]:
        records = self._tail().read_to_end()
        return [r for r in records if kind is None or r["event"] == kind]

    def metrics(self) -> list[dict[str, Any]]:
        return self.records(EPOCH_END)

    def _tail(self) -> JsonlTail:
        return JsonlTail(self.file(METRICS))

    def tail(self) -> JsonlTail:
        """A reader of the event log that returns only what is new on each read."""
        return self._tail()

    # --- results ---
    def has_model(self) -> bool:
        return self.file(MODEL).exists() and isinstance(read_json(self.file(LABELS)), list)

    def evaluation(self) -> dict[str, Any] | None:
        """The evaluation report, or None when it is missing or damaged (see `problems`)."""
        report = read_json(self.file(EVALUATION))
        if not isinstance(report, dict) or any(key not in report for key in EVALUATION_KEYS):
            return None
        return report

    @cached_property
    def problems(self) -> list[str]:
        """Sentences about damaged files; the intact parts stay usable."""
        found = []
        if self.file(STATUS).exists() and not self._stored_status():
            found.append("The run's status file is damaged.")
        skipped = self._tail()
        skipped.read_to_end()
        if skipped.skipped:
            found.append(f"{skipped.skipped} line(s) of the training log are damaged and were skipped; "
                         "the curves show the rest.")
        if self.file(EVALUATION).exists() and self.evaluation() is None:
            found.append("The evaluation report is damaged or incomplete; the model itself can still predict "
                         "and be exported.")
        return found

    def save_model(self, model: Any, labels: list[str], prep: Any) -> None:
        from safetensors.torch import save_file

        tmp = self.file(".model.safetensors.tmp")
        save_file({k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}, str(tmp))
        os.replace(tmp, self.file(MODEL))
        write_json(self.file(LABELS), labels)
        write_json(self.file(PREPROCESSING), prep.to_dict())

    def load_model(self) -> tuple[Any, list[str], Any, TrainConfig]:
        """(model in eval mode, labels, preprocessing, config). Raises FileNotFoundError with a sentence."""
        from safetensors.torch import load_file

        from core.data.preprocessing import Preprocessing
        from core.models import backbones

        labels = read_json(self.file(LABELS))
        prep = read_json(self.file(PREPROCESSING))
        if not isinstance(labels, list) or not self.file(MODEL).exists() or not isinstance(prep, dict):
            raise FileNotFoundError(f"run {self.id} has no complete trained model (it did not finish, or its "
                                    "model files are damaged)")
        config = self.train_config()
        model = backbones.build(config.backbone, len(labels), pretrained=False)
        model.load_state_dict(load_file(self.file(MODEL)))
        return model.eval(), labels, Preprocessing.from_dict(prep), config

    def delete(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)


def create(root: Path, config: TrainConfig, run_id: str | None = None) -> Path:
    run_dir = Path(root) / (run_id or uuid.uuid4().hex)
    run_dir.mkdir(parents=True, exist_ok=False)
    write_json(run_dir / CONFIG, config.to_dict())
    Run(run_dir).set_status("queued", created=time.time())
    return run_dir


@dataclass(frozen=True)
class RunSummary:
    id: str
    path: Path
    state: str
    created: float
    config: dict[str, Any]
    status: dict[str, Any]

    @property
    def run(self) -> Run:
        return Run(self.path)


def list_runs(root: Path) -> list[RunSummary]:
    """Every run under root, newest first; runs whose process is gone come back as interrupted."""
    summaries = []
    for config_file in Path(root).glob(f"*/{CONFIG}"):
        run = Run(config_file.parent)
        status = run.status()
        summaries.append(RunSummary(run.id, run.path, status.get("state", "unknown"), status.get("created", 0.0),
                                    run.config(), status))
    return sorted(summaries, key=lambda s: -s.created)


# Shorthands for callers that hold a path.
def set_status(run_dir: Path, state: str, **fields: Any) -> dict[str, Any]:
    return Run(run_dir).set_status(state, **fields)


def read_status(run_dir: Path) -> dict[str, Any]:
    return Run(run_dir).status()


def metrics(run_dir: Path, kind: str = EPOCH_END) -> list[dict[str, Any]]:
    return Run(run_dir).records(kind)


def save_model(run_dir: Path, model: Any, labels: list[str], prep: Any) -> None:
    Run(run_dir).save_model(model, labels, prep)


def load_model(run_dir: Path) -> tuple[Any, list[str], Any, TrainConfig]:
    return Run(run_dir).load_model()


def evaluation(run_dir: Path) -> dict[str, Any] | None:
    return Run(run_dir).evaluation()


def delete(run_dir: Path) -> None:
    Run(run_dir).delete()
