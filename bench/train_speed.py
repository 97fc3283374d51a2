"""TransferLab's engine vs the plain PyTorch transfer-learning recipe, same data, backbone and settings.

    python bench/train_speed.py [--images 400] [--epochs 10] [--modes extract,partial,partial-aug,finetune]
                                [--backbone efficientnet_lite0] [--weights default|none] [--out FILE]

Prints one JSON object (and writes it to --out). Modes: extract (head only), partial (last stage, no
augmentation), partial-aug (last 2 stages with light augmentation: TransferLab keeps augmented views of the
frozen part's output; "today" is the same run with augmented views off), finetune (everything, augmented).
The plain recipe is the official tutorial's: ImageFolder + DataLoader, frozen
layers by requires_grad=False, every image decoded and run through the whole network every epoch,
Adam at 1e-3, evaluation each epoch. Each variant runs in its own process (cold caches, its own peak RSS).
The plain recipe runs twice, with OpenMP's default wait policy and with the sleeping threads TransferLab uses;
ratios are against the faster one.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import core  # noqa: E402, F401  (first: it makes OpenMP threads sleep while they wait, as in the app)

# isort: split
import torch  # noqa: E402
from torch import nn  # noqa: E402
from torch.utils.data import DataLoader, Subset  # noqa: E402
from torchvision import datasets, transforms  # noqa: E402

from core.models import backbones  # noqa: E402  (imported before any timing starts)
from core.runs import folder as runs  # noqa: E402
from core.runs import pipeline as runner  # noqa: E402
from core.training.config import TrainConfig  # noqa: E402
from core.training.events import EventLog  # noqa: E402

# freeze depth (-k: all but the last k stages)
MODES = {"extract": "all", "partial": -1, "partial-aug": -2, "finetune": 0}
AUGMENTED = ("partial-aug", "finetune")
VARIANTS = {"partial-aug": ("plain", "today", "ours")}


def make_dataset(folder: Path, images: int) -> Path:
    from core.data import sample

    per_class = images // len(sample.SHAPES)
    return sample.write_folder(folder, per_class=per_class, size=384, seed=11)  # photo-sized JPEGs


def plain_recipe(data: Path, mode: str, epochs: int, batch_size: int, backbone: str, pretrained: bool) -> dict:
    prep = backbones.preprocessing(backbone)
    normalize = transforms.Normalize(prep.mean, prep.std)
    bicubic = transforms.InterpolationMode(prep.interpolation)
    evaluation = transforms.Compose([transforms.Resize(prep.resize_size, bicubic), transforms.CenterCrop(224),
                                     transforms.ToTensor(), normalize])
    augmented = transforms.Compose([transforms.RandomResizedCrop(224, interpolation=bicubic),
                                    transforms.RandomHorizontalFlip(), transforms.ToTensor(), normalize])
    train_tf = augmented if mode in AUGMENTED else evaluation  # the partial/extract targets are without augmentation
    train_idx, val_idx = _split_indices(datasets.ImageFolder(data))
    train = DataLoader(Subset(datasets.ImageFolder(data, train_tf), train_idx), batch_size, shuffle=True,
                       num_workers=2)
    val = DataLoader(Subset(datasets.ImageFolder(data, evaluation), val_idx), batch_size, num_workers=2)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")  # the tutorial's choice: fp32, no AMP
    model = backbones.build(backbone, 3, pretrained=pretrained).to(device)  # same network and weights as ours
    frozen = _frozen(mode, len(model.stages))
    for stage in model.stages[:frozen]:
        stage.requires_grad_(False)
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    best = 0.0
    for _ in range(epochs):
        model.train()
        for x, y in train:
            x, y = x.to(device), y.to(device)
            optimizer.zero_grad()
            nn.functional.cross_entropy(model(x), y).backward()
            optimizer.step()
        model.eval()
        correct = 0
        with torch.no_grad():
            for x, y in val:
                x, y = x.to(device), y.to(device)
                correct += int((model(x).argmax(1) == y).sum())
        best = max(best, correct / len(val_idx))
    return {"val_accuracy": best}


def _split_indices(folder) -> tuple[list[int], list[int]]:
    """The same 20% per-class split TransferLab makes (seeded, stratified)."""
    import random

    rng, train, val = random.Random(0), [], []
    for label in range(len(folder.classes)):
        members = [i for i, (_, y) in enumerate(folder.samples) if y == label]
        rng.shuffle(members)
        cut = max(1, round(0.2 * len(members)))
        val += members[:cut]
        train += members[cut:]
    return train, val


def _frozen(mode: str, total: int) -> int:
    depth = MODES[mode]
    return total if depth == "all" else (total + depth if depth < 0 else depth)


def ours(data: Path, mode: str, epochs: int, batch_size: int, backbone: str, pretrained: bool,
         views: int | None = None) -> dict:
    total = len(backbones.build(backbone, 2, pretrained=False).stages)
    extra = {} if views is None else {"augmented_views": views}
    config = TrainConfig(data=str(data), backbone=backbone, weights="default" if pretrained else "none",
                         freeze_depth=_frozen(mode, total), epochs=epochs,
                         batch_size=batch_size, early_stopping=0, augment="light" if mode in AUGMENTED else "none",
                         lr=None if mode == "extract" else 1e-3, **extra)
    with tempfile.TemporaryDirectory() as work:
        run_dir = runs.create(Path(work) / "runs", config).path
        runner.execute(config, run_dir, EventLog(run_dir / "metrics.jsonl"), threading.Event(), Path(work))
        return {"val_accuracy": runs.Run(run_dir).status().get("val_accuracy")}


def one_pass_seconds(images: int, backbone: str) -> float:
    """The physical floor for feature extraction: one eval forward pass over every image, on the device the
    engine picks (on CUDA under the same autocast)."""
    from core.training import devices

    accel = devices.resolve("auto")
    model = backbones.build(backbone, 3, pretrained=False).eval().to(accel.device)
    x = torch.randn(64, 3, 224, 224, device=accel.device)
    with torch.inference_mode(), accel.autocast():
        model(x[:8])
        _sync(accel.device)
        started = time.perf_counter()
        model(x)
        _sync(accel.device)
        per_image = (time.perf_counter() - started) / len(x)
    return per_image * images


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()  # kernels run asynchronously: time them only once they are done


def run_variant(args: argparse.Namespace) -> None:
    started = time.perf_counter()
    common = (Path(args.data), args.mode, args.epochs, args.batch_size, args.backbone, args.weights == "default")
    if args.variant == "plain":
        result = plain_recipe(*common)
    else:
        result = ours(*common, views=0 if args.variant == "today" else None)
    wall = time.perf_counter() - started
    print(json.dumps(result | {"wall_s": round(wall, 2), "images_per_s": round(args.images * args.epochs / wall, 1),
                               "peak_rss_mib": round(_peak_rss_kib() / 1024)}))


def _peak_rss_kib() -> int:
    """This process's peak, plus the largest DataLoader worker's (the plain recipe decodes in workers)."""
    return (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            + resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)


def _machine() -> str:
    gpu = f", GPU {torch.cuda.get_device_name(0)}" if torch.cuda.is_available() else ", no GPU"
    return f"{os.cpu_count()} CPU cores{gpu}, torch {torch.__version__}"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=400)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--modes", default="extract,partial,partial-aug,finetune")
    parser.add_argument("--backbone", default=backbones.BUNDLED, choices=backbones.NAMES,
                        help="default: the bundled one, pretrained and offline")
    parser.add_argument("--weights", default="default", choices=["default", "none"],
                        help="'none' for speed alone where pretrained weights cannot be downloaded")
    parser.add_argument("--out", help="also write the JSON here (e.g. bench/results/train_speed-<machine>.json)")
    parser.add_argument("--variant", choices=["plain", "today", "ours"], help=argparse.SUPPRESS)
    parser.add_argument("--mode", help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.variant:
        return run_variant(args)
    with tempfile.TemporaryDirectory() as tmp:
        data = make_dataset(Path(tmp) / "data", args.images)
        env = os.environ | {"TRANSFERLAB_HOME": str(Path(tmp) / "home")}  # a cold feature cache
        report = {"machine": _machine(), "backbone": args.backbone, "weights": args.weights,
                  "images": args.images, "epochs": args.epochs, "batch_size": args.batch_size,
                  "one_pass_limit_s": round(one_pass_seconds(args.images, args.backbone), 2), "modes": {}}
        for mode in args.modes.split(","):
            results = {}
            for variant in ("plain_openmp_default", *VARIANTS.get(mode, ("plain", "ours"))):
                # The plain recipe as plain PyTorch runs it (libgomp's default wait policy: an empty value), and
                # with the sleeping threads our processes use; the faster of the two is the baseline.
                policy = {"plain_openmp_default": ""}.get(variant, "PASSIVE")
                out = subprocess.run([sys.executable, __file__, "--variant", variant.split("_")[0], "--mode", mode,
                                      "--data", str(data), "--images", str(args.images), "--epochs",
                                      str(args.epochs), "--batch-size", str(args.batch_size), "--backbone",
                                      args.backbone, "--weights", args.weights],
                                     capture_output=True, text=True, env=env | {"OMP_WAIT_POLICY": policy}, check=True)
                results[variant] = json.loads(out.stdout.strip().splitlines()[-1])
            baseline = min(results["plain"]["wall_s"], results["plain_openmp_default"]["wall_s"])
            results["ratio_ours_to_plain"] = round(results["ours"]["wall_s"] / baseline, 3)
            if "today" in results:
                results["ratio_today_to_plain"] = round(results["today"]["wall_s"] / baseline, 3)
            if mode == "extract":
                results["ratio_ours_to_one_pass"] = round(results["ours"]["wall_s"] / report["one_pass_limit_s"], 3)
            report["modes"][mode] = results
            print(json.dumps({mode: results}), file=sys.stderr, flush=True)
    report["load_average_after"] = os.getloadavg()
    print(json.dumps(report, indent=2))
    if args.out:
        Path(args.out).write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
