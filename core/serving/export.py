"""Export a run as a zip a programmer can use anywhere: TorchScript (+ ONNX when the onnx package is
installed), labels.json, preprocessing.json, a standalone predict.py, and a usage note. The exported model
is loaded back and checked against the trained one before the bundle is offered."""
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

import torch
from torch import nn

from core.runs.folder import Run
from core.serving.inference import Predictor
from core.serving.model_card import bundle_extras

TEMPLATE = Path(__file__).resolve().parent / "templates" / "predict.py"
TOLERANCE = 1e-4
USAGE = """TransferLab model export
========================
Classes (in the order of labels.json, each as a JSON string): {labels}
Backbone: {backbone}; input: RGB, resize shorter side to {resize}, centre-crop {crop}, normalise mean={mean} std={std}.

Command line:  python predict.py photo.jpg [--top-k 3]     (needs torch, torchvision, Pillow)

In Python:
    import torch, json
    model = torch.jit.load("model.torchscript.pt").eval()   # input (N, 3, {crop}, {crop}) float, normalised
    probabilities = model(batch)                              # output (N, {n}) probabilities, order of labels.json
{onnx}"""


class _Probabilities(nn.Module):
    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x).softmax(dim=1)


@dataclass(frozen=True)
class ExportResult:
    path: Path
    verified: bool
    max_difference: float
    images_checked: int
    onnx_included: bool
    note: str


def export_bundle(run_dir: Path, destination: Path | None = None) -> ExportResult:
    run_dir = Path(run_dir)
    predictor = Predictor(run_dir)
    wrapped = _Probabilities(predictor.model).eval()
    batch = _verification_batch(run_dir, predictor)
    destination = destination or run_dir / "export.zip"
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        with warnings.catch_warnings(), torch.inference_mode():
            warnings.simplefilter("ignore")  # TorchScript is deprecated upstream but remains the most portable
            torch.jit.save(torch.jit.trace(wrapped, batch[:1]), str(folder / "model.torchscript.pt"))
            reloaded = torch.jit.load(str(folder / "model.torchscript.pt"), map_location="cpu")
            exported, trained = reloaded(batch), wrapped(batch)
            difference = float((exported - trained).abs().max())
            same_top1 = bool((exported.argmax(1) == trained.argmax(1)).all())
        onnx_note = _export_onnx(wrapped, batch[:1], folder / "model.onnx")
        onnx_included = (folder / "model.onnx").exists()
        for name in bundle_extras(run_dir):
            shutil.copy(run_dir / name, folder / name)
        shutil.copy(TEMPLATE, folder / "predict.py")
        (folder / "README.txt").write_text(_usage(predictor, onnx_included), encoding="utf-8")
        _zip(folder, destination)
    verified = same_top1 and difference <= TOLERANCE
    note = (f"Checked: the exported model gives the same predictions as the trained one on {len(batch)} "
            f"validation images (largest difference {difference:.1e})." if verified else
            f"Warning: the exported model differs from the trained one (largest difference {difference:.1e}).")
    return ExportResult(destination, verified, difference, len(batch), onnx_included,
                        note + (" " + onnx_note if onnx_note else ""))


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
            torch.onnx.export(model, (example,), str(path), input_names=["image"], output_names=["probabilities"],
                              dynamic_axes={"image": {0: "batch"}, "probabilities": {0: "batch"}},
                              verbose=False, external_data=False)
        return "ONNX model included."
    except Exception as error:  # ONNX is a bonus; TorchScript is the bundle's promise
        path.unlink(missing_ok=True)
        return f"ONNX export was not possible for this model ({type(error).__name__})."


def _usage(predictor: Predictor, onnx_included: bool) -> str:
    p = predictor.preprocessing
    onnx = "\nONNX: model.onnx, input 'image' (same tensor), output 'probabilities'.\n" if onnx_included else ""
    return USAGE.format(labels=", ".join(_readme_name(label) for label in predictor.labels), backbone=predictor.config.backbone,
                        resize=p.resize_size, crop=p.crop_size, mean=list(p.mean), std=list(p.std),
                        n=len(predictor.labels), onnx=onnx)


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
