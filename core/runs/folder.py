"""Run folders: everything a run made, on disk, written atomically, listable after a restart.

`Run` is the one place that knows the folder's file names; everything else asks it. The folder alone is enough to
predict, evaluate and export (it holds the validation images the model was judged on, as it saw them), and a
damaged file costs only what it held. Who writes what: the job manager creates the folder (config.json, the queued
status) and records an end only for a process that died without one; the run pipeline, in the training process,
writes everything else, each result file once (`save_result`). An adapter run's model file holds only the adapters
and the head (core.models.adapters); `load_model` rebuilds the pretrained backbone around them, so nothing else needs
to know.
"""
from __future__ import annotations

import io
import os
import shutil
import time
import uuid
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import torch

from core.files import read_json, write_json
from core.models import adapters
from core.runs.status import ACTIVE_STATES, FINAL_STATES, StopFile, live_status, stamped
from core.stats.neighbours import NeighbourScore
from core.tasks import Evaluation
from core.training.config import TrainConfig
from core.training.events import EPOCH_END, JsonlTail

__all__ = ["ACTIVE_STATES", "FINAL_STATES", "Run", "RunSummary", "StopFile", "create", "list_runs"]

CONFIG, STATUS, METRICS, LABELS = "config.json", "status.json", "metrics.jsonl", "labels.json"
PREPROCESSING, MODEL, EVALUATION = "preprocessing.json", "model.safetensors", "evaluation.json"
CALIBRATION, OOD_REFERENCE = "calibration.json", "ood_reference.safetensors"
MODEL_CARD, EXPORT, VAL_IMAGES = "model_card.html", "export.zip", "val_images"
STOP, WORKER_LOG = "STOP", "worker.log"
BUNDLE_FILES = (LABELS, PREPROCESSING, CALIBRATION)  # what an export carries besides the model and its reference
MAX_VAL_IMAGES = 500  # validation images kept in the folder (small JPEGs at the model's input size)


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

    @property
    def worker_log(self) -> Path:
        return self.file(WORKER_LOG)

    def config(self) -> dict[str, Any]:
        value = read_json(self.file(CONFIG), {})
        return value if isinstance(value, dict) else {}

    def train_config(self) -> TrainConfig:
        return TrainConfig.from_dict(self.config())

    # --- status ---
    def set_status(self, state: str, pid: int | None = None, **fields: Any) -> dict[str, Any]:
        status = stamped(self._stored_status() | fields, state, pid or os.getpid())
        write_json(self.file(STATUS), status)
        return status

    def _stored_status(self) -> dict[str, Any]:
        value = read_json(self.file(STATUS))
        return value if isinstance(value, dict) and isinstance(value.get("state"), str) else {}

    def status(self) -> dict[str, Any]:
        """The status as it is: a run whose process is gone reads as interrupted; a damaged status file is
        inferred from what else the folder holds."""
        stored = self._stored_status()
        if stored:
            return live_status(stored)
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
    @property
    def metrics_file(self) -> Path:
        return self.file(METRICS)

    def records(self, kind: str | None = None) -> list[dict[str, Any]]:
        return [r for r in self.tail().read_to_end() if kind is None or r["event"] == kind]

    def metrics(self) -> list[dict[str, Any]]:
        return self.records(EPOCH_END)

    def tail(self) -> JsonlTail:
        """A reader of the event log that returns only what is new on each read."""
        return JsonlTail(self.file(METRICS))

    # --- results: written once, by the run pipeline ---
    def save_result(self, model: torch.nn.Module, labels: list[str], prep: Any, evaluation: Evaluation,
                    calibration: dict[str, Any] | None, reference: NeighbourScore | None,
                    val_images: dict[str, torch.Tensor]) -> None:
        """Every result file; evaluation.json last, so a reader that finds it finds the rest."""
        from safetensors.torch import save_file

        self._save_val_images(val_images)
        if reference is not None:
            tmp = self.file(f".{OOD_REFERENCE}.tmp")
            save_file({"embeddings": torch.from_numpy(reference.reference).half().contiguous()}, str(tmp))
            os.replace(tmp, self.file(OOD_REFERENCE))
        if calibration is not None:
            write_json(self.file(CALIBRATION), calibration)
        tensors, metadata = model.state_dict(), None
        if adapters.is_adapted(model):  # the adapters and the head only: the backbone comes from its source
            tensors, metadata = adapters.trained_state(model), adapters.file_metadata(self._weights_identity())
        tmp = self.file(f".{MODEL}.tmp")
        save_file({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, str(tmp), metadata=metadata)
        os.replace(tmp, self.file(MODEL))
        write_json(self.file(LABELS), labels)
        write_json(self.file(PREPROCESSING), prep.to_dict())
        write_json(self.file(EVALUATION), evaluation.to_json())

    def _save_val_images(self, images: dict[str, torch.Tensor]) -> None:
        from PIL import Image

        folder = self.file(VAL_IMAGES)
        folder.mkdir(exist_ok=True)
        for digest, pixels in list(images.items())[:MAX_VAL_IMAGES]:
            buffer = io.BytesIO()
            Image.fromarray(pixels.permute(1, 2, 0).numpy()).save(buffer, "JPEG", quality=92)
            write_bytes_atomic(folder / f"{digest}.jpg", buffer.getvalue())

    def labels(self) -> list[str]:
        """The classes (or tags) the model answers with, in its output order; [] when the model is missing."""
        value = read_json(self.file(LABELS), [])
        return [str(label) for label in value] if isinstance(value, list) else []

    def has_model(self) -> bool:
        return self.file(MODEL).exists() and isinstance(read_json(self.file(LABELS)), list)

    def evaluation(self) -> Evaluation | None:
        """The evaluation, or None when it is missing or damaged (see `problems`)."""
        return Evaluation.from_json(read_json(self.file(EVALUATION)))

    def calibration(self) -> dict[str, Any]:
        """What prediction needs beyond the weights (temperature, thresholds, the unknown-input threshold)."""
        value = read_json(self.file(CALIBRATION), {})
        return value if isinstance(value, dict) else {}

    def ood_reference(self, k: int) -> NeighbourScore | None:
        from safetensors.torch import load_file

        if not self.file(OOD_REFERENCE).exists():
            return None
        return NeighbourScore(load_file(self.file(OOD_REFERENCE))["embeddings"].float().numpy(), k)

    def val_image(self, digest: str) -> Path | None:
        """The validation image with this content hash as the model saw it, if the folder holds it."""
        path = self.file(VAL_IMAGES) / f"{digest}.jpg"
        return path if len(digest) == 64 and digest.isalnum() and path.is_file() else None

    def val_pixels(self, digest: str) -> torch.Tensor | None:
        """That image as the model's uint8 input (3, crop, crop), ready for Grad-CAM or a check of the export."""
        from PIL import Image
        from torchvision.transforms.functional import pil_to_tensor

        path = self.val_image(digest)
        if path is None:
            return None
        try:
            with Image.open(path) as image:
                return pil_to_tensor(image.convert("RGB"))
        except OSError:
            return None

    @cached_property
    def problems(self) -> list[str]:
        """Sentences about damaged files; the intact parts stay usable."""
        found = []
        if self.file(STATUS).exists() and not self._stored_status():
            found.append("The run's status file is damaged.")
        log = self.tail()
        log.read_to_end()
        if log.skipped:
            found.append(f"{log.skipped} line(s) of the training log are damaged and were skipped; "
                         "the curves show the rest.")
        if self.file(EVALUATION).exists() and self.evaluation() is None:
            found.append("The evaluation report is damaged or incomplete; the model itself can still predict "
                         "and be exported.")
        return found

    def load_model(self) -> tuple[Any, list[str], Any, TrainConfig]:
        """(model in eval mode, labels, preprocessing, config). Raises FileNotFoundError with a sentence."""
        from safetensors.torch import load_file

        from core import tasks
        from core.data.preprocessing import Preprocessing
        from core.models import backbones

        labels, prep = read_json(self.file(LABELS)), read_json(self.file(PREPROCESSING))
        if not isinstance(labels, list) or not self.file(MODEL).exists() or not isinstance(prep, dict):
            raise FileNotFoundError(f"run {self.id} has no complete trained model (it did not finish, or its "
                                    "model files are damaged)")
        config = self.train_config()
        task = tasks.get(config.task)
        try:  # an adapter run adapts the pretrained weights, so they come from the backbone's source
            model = backbones.build(config.backbone, task.outputs(labels), pretrained=config.uses_adapters())
        except backbones.WeightsUnavailable as error:
            raise FileNotFoundError(f"run {self.id} keeps only its adapters, and the pretrained {config.backbone} "
                                    "weights they adapt are not on this computer (the Train page says where they "
                                    "go)") from error
        task.adapt_head(model)
        if config.uses_adapters():
            model = self._with_adapters(model, config)
        else:
            model.load_state_dict(load_file(self.file(MODEL)))
        return model.eval(), labels, Preprocessing.from_dict(prep), config

    def _with_adapters(self, model: Any, config: TrainConfig) -> Any:
        """The pretrained backbone with this run's adapters folded into its weights (a plain model again)."""
        try:
            return adapters.load_merged(model, config.adapter_rank, config.adapter_stages, self.file(MODEL),
                                        self._weights_identity())
        except adapters.AdapterMismatch as error:
            raise FileNotFoundError(f"run {self.id} keeps only its adapters, which cannot be loaded: {error}") from error

    def _weights_identity(self) -> str:
        from core.models import backbones

        return backbones.weights_identity(self.train_config().backbone)

    def delete(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)


def write_bytes_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def create(root: Path, config: TrainConfig, run_id: str | None = None, **status: Any) -> Run:
    """A new run folder holding its config, queued."""
    run = Run(Path(root) / (run_id or uuid.uuid4().hex))
    run.path.mkdir(parents=True, exist_ok=False)
    write_json(run.file(CONFIG), config.to_dict())
    run.set_status("queued", created=time.time(), **status)
    return run


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
