"""Run folders: everything a run made, on disk, written atomically, listable after a restart.

runs/<id>/config.json  status.json  metrics.jsonl  labels.json  preprocessing.json  model.safetensors
evaluation.json. The folder alone is enough to predict, evaluate and export.
"""
from __future__ import annotations

import json
import os
import shutil
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from safetensors.torch import load_file, save_file

from core.data.preprocessing import Preprocessing
from core.models import backbones
from core.training.config import TrainConfig
from core.training.events import read_jsonl

ACTIVE_STATES = frozenset({"queued", "running"})
PROCESS_TOKEN = uuid.uuid4().hex  # tells this process's runs from those of a process that died


def write_json(path: Path, value: Any) -> None:
    """Write to a temporary name, then rename: a reader never sees half a file."""
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    tmp.write_text(json.dumps(value, indent=2, ensure_ascii=False), encoding="utf-8")
    os.replace(tmp, path)


def read_json(path: Path, default: Any = None) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return default


def create(root: Path, config: TrainConfig, run_id: str | None = None) -> Path:
    run_dir = Path(root) / (run_id or uuid.uuid4().hex)
    run_dir.mkdir(parents=True, exist_ok=False)
    write_json(run_dir / "config.json", config.to_dict())
    set_status(run_dir, "queued", created=time.time())
    return run_dir


def set_status(run_dir: Path, state: str, **fields: Any) -> dict[str, Any]:
    status = read_json(run_dir / "status.json", {}) | fields
    status.update(state=state, updated=time.time(), pid=os.getpid(), owner=PROCESS_TOKEN)
    write_json(run_dir / "status.json", status)
    return status


def read_status(run_dir: Path) -> dict[str, Any]:
    status = read_json(run_dir / "status.json", {"state": "unknown"})
    if status.get("state") in ACTIVE_STATES and _owner_is_gone(status):
        status = set_status(run_dir, "interrupted", message="The server stopped while this run was in progress.")
    return status


def _owner_is_gone(status: dict[str, Any]) -> bool:
    pid = status.get("pid")
    if status.get("owner") == PROCESS_TOKEN:
        return False
    if pid == os.getpid() or not isinstance(pid, int):
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


@dataclass(frozen=True)
class RunSummary:
    id: str
    path: Path
    state: str
    created: float
    config: dict[str, Any]
    status: dict[str, Any]


def list_runs(root: Path) -> list[RunSummary]:
    """Every run under root, newest first; runs orphaned by a dead process come back as interrupted."""
    summaries = []
    for run_dir in Path(root).glob("*/config.json"):
        run_dir = run_dir.parent
        status = read_status(run_dir)
        summaries.append(RunSummary(run_dir.name, run_dir, status.get("state", "unknown"),
                                    status.get("created", 0.0), read_json(run_dir / "config.json", {}), status))
    return sorted(summaries, key=lambda s: -s.created)


def metrics(run_dir: Path, kind: str = "epoch_end") -> list[dict[str, Any]]:
    return [r for r in read_jsonl(run_dir / "metrics.jsonl") if r.get("event") == kind]


def save_model(run_dir: Path, model: backbones.StagedModel, labels: list[str], prep: Preprocessing) -> None:
    tmp = run_dir / ".model.safetensors.tmp"
    save_file({k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}, str(tmp))
    os.replace(tmp, run_dir / "model.safetensors")
    write_json(run_dir / "labels.json", labels)
    write_json(run_dir / "preprocessing.json", prep.to_dict())


def load_model(run_dir: Path) -> tuple[backbones.StagedModel, list[str], Preprocessing, TrainConfig]:
    config = TrainConfig.from_dict(read_json(run_dir / "config.json"))
    labels = read_json(run_dir / "labels.json")
    if labels is None or not (run_dir / "model.safetensors").exists():
        raise FileNotFoundError(f"run {run_dir.name} has no trained model (it did not finish)")
    model = backbones.build(config.backbone, len(labels), pretrained=False)
    model.load_state_dict(load_file(run_dir / "model.safetensors"))
    return model.eval(), labels, Preprocessing.from_dict(read_json(run_dir / "preprocessing.json")), config


def evaluation(run_dir: Path) -> dict[str, Any] | None:
    return read_json(run_dir / "evaluation.json")


def delete(run_dir: Path) -> None:
    shutil.rmtree(run_dir, ignore_errors=True)
