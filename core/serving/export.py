"""Export a run as a zip a programmer can use anywhere: TorchScript (+ ONNX when the onnx package is
installed), labels.json, preprocessing.json, calibration.json, the unknown-input reference, a standalone
predict.py, and a usage note. The bundle answers as the app does: the model returns the probabilities and the
embedding the "unknown input" check scores, and predict.py scores it against the run's reference with torch alone.
The exported model is loaded back and checked against the trained one (answers and unknown scores) before the
bundle is offered."""
from __future__ import annotations

import importlib.util
import json
import shutil
import tempfile
import unicodedata
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import torch
from safetensors.torch import load_file
from torch import nn

from core.i18n import N_, _
from core.runs.folder import OOD_REFERENCE, Run
from core.serving.inference import Predictor
from core.serving.model_card import bundle_extras
from core.tasks import Task

TEMPLATE = Path(__file__).resolve().parent / "templates" / "predict.py"
TOLERANCE = 1e-4
# The bundle's README, in the language the user exported in (translated where it is written, in _usage).
# Translators: keep every line a line (the class names go on one line), the code and the file names as they are.
USAGE = N_("""TransferLab model export
========================
Classes (in the order of labels.json, each as a JSON string): {labels}
Backbone: {backbone}; input: RGB, resize shorter side to {resize}, centre-crop {crop}, normalise mean={mean} std={std}.

Command line:  python predict.py photo.jpg [--top-k 3]     (needs torch, torchvision, Pillow)
    prints the top-k labels, "unsure" and "unknown" (unlike every training image) with its "ood_score".

In Python:
    import torch, json
    model = torch.jit.load("model.torchscript.pt").eval()   # input (N, 3, {crop}, {crop}) float, normalised
    probabilities, embedding = model(batch)                  # (N, {n}) probabilities, order of labels.json;
                                                              # (N, d) what the unknown-input check scores
{onnx}""")


REFERENCE = "ood_reference.pt"  # the run's unknown-input reference, saved with torch (predict.py needs nothing else)


class _Answers(nn.Module):
    """The task's answers (class probabilities, label probabilities or values) and the embedding: the head's input
    to its last linear layer (Predictor._forward_chunk)."""

    def __init__(self, model: nn.Module, task: Task) -> None:
        super().__init__()
        self.model, self.task = model, task

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        embedding = self.model.head[:-1](self.model.run_stages(x))
        return self.task.answers(self.model.head[-1](embedding)), embedding


@dataclass(frozen=True)
class ExportResult:
    path: Path
    verified: bool
    max_difference: float
    images_checked: int
    onnx_included: bool
    note: str


def export_bundle(run_dir: Path, destination: Path | None = None, with_onnx: bool = True) -> ExportResult:
    """`with_onnx=False`: TorchScript only, for a caller that does not need ONNX (its export takes ~15 s on a CPU)."""
    run_dir = Path(run_dir)
    predictor = Predictor(run_dir)
    wrapped = _Answers(predictor.model, predictor.task).eval()
    batch = _verification_batch(run_dir, predictor)
    destination = destination or run_dir / "export.zip"
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        with warnings.catch_warnings(), torch.inference_mode():
            warnings.simplefilter("ignore")  # TorchScript is deprecated upstream but remains the most portable
            torch.jit.save(torch.jit.trace(wrapped, batch[:1]), str(folder / "model.torchscript.pt"))
        onnx_note = _export_onnx(wrapped, batch[:1], folder / "model.onnx") if with_onnx else ""
        onnx_included = (folder / "model.onnx").exists()
        for name in bundle_extras(run_dir):
            shutil.copy(run_dir / name, folder / name)
        if (run_dir / OOD_REFERENCE).exists():
            torch.save(load_file(run_dir / OOD_REFERENCE)["embeddings"], folder / REFERENCE)
        shutil.copy(TEMPLATE, folder / "predict.py")
        (folder / "README.txt").write_text(_usage(predictor, onnx_included), encoding="utf-8")
        difference, same_answers = _verify(folder, wrapped, predictor, batch)
        _zip(folder, destination)
    verified = same_answers and difference <= TOLERANCE
    note = (_("Checked: the exported model gives the same predictions and unknown-input scores as the trained one "
              "on {count} validation images (largest difference {difference}).") if verified else
            _("Warning: the exported model differs from the trained one (largest difference {difference}).")).format(
        count=len(batch), difference=f"{difference:.1e}")
    return ExportResult(destination, verified, difference, len(batch), onnx_included,
                        note + (" " + onnx_note if onnx_note else ""))


def _verify(folder: Path, wrapped: nn.Module, predictor: Predictor, batch: torch.Tensor) -> tuple[float, bool]:
    """Load the bundle back and compare with the trained model: probabilities, the top-1 labels, and the unknown
    scores that the bundle's own predict.py computes (its code, its reference file) with the app's."""
    with warnings.catch_warnings(), torch.inference_mode():
        warnings.simplefilter("ignore")
        exported, embeddings = torch.jit.load(str(folder / "model.torchscript.pt"), map_location="cpu")(batch)
        trained, trained_embeddings = wrapped(batch)
    drift = (embeddings - trained_embeddings).norm(dim=1) / trained_embeddings.norm(dim=1).clamp_min(1e-12)
    difference = max(float((exported - trained).abs().max()), float(drift.max()))
    same = bool((exported.argmax(1) == trained.argmax(1)).all())
    if predictor.neighbours is not None and predictor.ood_threshold is not None:
        script = _load_template(folder / "predict.py")
        script.HERE = folder
        reference, k, threshold = script.unknown_check()
        bundle = [script.ood_score(embedding, reference, k) for embedding in embeddings]
        app = predictor.neighbours.score(embeddings.numpy())
        difference = max(difference, max(abs(a - b) for a, b in zip(bundle, app)))
        same = same and k == predictor.neighbours.k and threshold == float(predictor.ood_threshold)
    return difference, same


def _load_template(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location("transferlab_bundle_predict", path)
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(module)  # type: ignore[union-attr]  # our own template: imports only, main is guarded
    return module


def _verification_batch(run_dir: Path, predictor: Predictor, count: int = 8) -> torch.Tensor:
    """Validation images as the model saw them (the run folder keeps them), or random pixels when it has none."""
    run = Run(run_dir)
    evaluation = run.evaluation()
    pixels = [found for p in (evaluation.predictions if evaluation else [])[:count]
              if (found := run.val_pixels(p.get("sha256", ""))) is not None]
    prep = predictor.preprocessing
    if pixels:
        raw = torch.stack(pixels)
    else:  # an older run without its images: random images still exercise every layer
        raw = torch.randint(0, 256, (count, 3, prep.crop_size, prep.crop_size), dtype=torch.uint8,
                            generator=torch.Generator().manual_seed(0))
    return prep.normalize(raw)


def _export_onnx(model: nn.Module, example: torch.Tensor, path: Path) -> str:
    if importlib.util.find_spec("onnx") is None:
        return ""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(model, (example,), str(path), input_names=["image"],
                              output_names=["probabilities", "embedding"],
                              dynamic_axes={"image": {0: "batch"}, "probabilities": {0: "batch"}, "embedding": {0: "batch"}},
                              verbose=False, external_data=False)
        return _("ONNX model included.")
    except Exception as error:  # ONNX is a bonus; TorchScript is the bundle's promise
        path.unlink(missing_ok=True)
        return _("ONNX export was not possible for this model ({reason}).").format(reason=type(error).__name__)


def _usage(predictor: Predictor, onnx_included: bool) -> str:
    p = predictor.preprocessing
    onnx = ("\n" + _("ONNX: model.onnx, input 'image' (same tensor), outputs 'probabilities' and 'embedding'.") + "\n"
            if onnx_included else "")
    return _(USAGE).format(labels=", ".join(_readme_name(label) for label in predictor.labels),
                           backbone=predictor.config.backbone, resize=p.resize_size, crop=p.crop_size,
                           mean=list(p.mean), std=list(p.std), n=len(predictor.labels), onnx=onnx)


def _readme_name(label: str) -> str:
    """A class name on one line, quoted, with line breaks and invisible or direction characters as \\u escapes."""
    quoted = json.dumps(label, ensure_ascii=False)
    return "".join(f"\\u{ord(c):04x}" if unicodedata.category(c) in ("Cf", "Zl", "Zp", "Cc") else c for c in quoted)


def _zip(folder: Path, destination: Path) -> None:
    tmp = destination.with_name(destination.name + ".tmp")
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as archive:
        for file in sorted(folder.iterdir()):
            archive.write(file, file.name)
    tmp.replace(destination)
