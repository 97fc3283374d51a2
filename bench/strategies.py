"""Three ways to adapt a backbone, side by side on real photos: feature extraction (every stage frozen, a new head on
cached features), partial fine-tuning (the last two stages retrain, light augmentation) and adapters (LoRA of rank 8
in the same last two stages, every pretrained weight kept, light augmentation). The ants/bees photos of PyTorch's
transfer-learning tutorial are read from ../shared/data/hymenoptera.zip (never copied into the repository) and
written to a temporary folder per size: 20 training photos a class (a fresh draw per seed) and the whole training
split, always judged on the whole validation split (70 ants, 83 bees).

    python bench/strategies.py [--sizes 20,all] [--seeds 5] [--all-seeds 3] [--strategies ...] [--zip PATH] [--out FILE]

Each run goes through the app's own training loop (core.training.loop.fit) with the app's defaults for everything
else (10 epochs, early stopping after 3, each strategy's default learning rate, 2 augmented views), on the bundled
pretrained EfficientNet-Lite0, without a feature cache on disk: each run's time includes its own frozen-stage pass.
Reported: accuracy per run with its 95% Wilson interval over the validation photos; per size and strategy the mean
over seeds with a 95% t-interval, and the paired difference from feature extraction (same draw, same seed); wall
time and trainable parameters. The machine is shared with other jobs: every run records the load average, and the
times are indicative.

ViT weights cannot be downloaded here, so vision transformers are measured for speed and parameters only, on random
weights: one training step of each strategy's trainable part at batch 16 (`--vits`).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import sys
import tempfile
import threading
import time
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from scipy import stats  # noqa: E402

from core.models import adapters, backbones  # noqa: E402
from core.models.features import FeatureCache  # noqa: E402
from core.training import advice  # noqa: E402
from core.training.config import TrainConfig  # noqa: E402
from core.training.data import prepare  # noqa: E402
from core.training.events import EventLog  # noqa: E402
from core.training.loop import fit  # noqa: E402
from core.training.steps import set_trainable  # noqa: E402

DEFAULT_ZIP = ROOT.parent / "shared" / "data" / "hymenoptera.zip"
STRATEGIES = {
    "feature extraction": dict(freeze_depth="all"),
    "fine-tune last 2 stages": dict(freeze_depth=7),  # Lite0 has 9 stages
    "adapters (LoRA r=8 in the last 2 stages)": dict(strategy="adapters", adapter_rank=8, adapter_stages=2),
}


def photos(archive: Path) -> dict[str, dict[str, list[tuple[str, bytes]]]]:
    """split -> label -> [(name, bytes)], in a stable order."""
    found: dict[str, dict[str, list]] = {}
    with zipfile.ZipFile(archive) as z:
        for info in sorted(z.infolist(), key=lambda i: i.filename):
            parts = info.filename.split("/")
            if len(parts) == 4 and parts[1] in ("train", "val") and not info.is_dir():
                found.setdefault(parts[1], {}).setdefault(parts[2], []).append((parts[3], z.read(info)))
    return found


def write_set(folder: Path, found: dict, per_class: int | None, seed: int) -> Path:
    """train/<label>/ with `per_class` photos a class drawn with `seed` (None: all), val/<label>/ with all."""
    rng = random.Random(seed)
    for split, labels in found.items():
        for label, files in labels.items():
            chosen = files if split == "val" or per_class is None else rng.sample(files, per_class)
            (folder / split / label).mkdir(parents=True)
            for name, data in chosen:
                (folder / split / label / name).write_bytes(data)
    return folder


def wilson(correct: int, n: int) -> list[float]:
    z, p = 1.959964, correct / n
    centre, half = (p + z * z / (2 * n)) / (1 + z * z / n), z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return [round(float(centre - half / (1 + z * z / n)), 4), round(float(centre + half / (1 + z * z / n)), 4)]


def interval(values: list[float]) -> dict:
    a = np.asarray(values)
    half = float(stats.t.ppf(0.975, len(a) - 1) * a.std(ddof=1) / np.sqrt(len(a))) if len(a) > 1 else 0.0
    return {"mean": round(float(a.mean()), 4), "ci95": [round(float(a.mean()) - half, 4),
                                                         round(float(a.mean()) + half, 4)], "n": len(a)}


def one_run(data: Path, settings: dict, seed: int) -> dict:
    config = TrainConfig(data=str(data), seed=seed, **settings)
    load_before, started = os.getloadavg()[0], time.perf_counter()
    with tempfile.TemporaryDirectory() as work:
        prepared = prepare(config, Path(work))
        events = EventLog()
        result = fit(config, prepared, events, threading.Event(), FeatureCache(None))
    wall = time.perf_counter() - started
    truth = prepared.task.targets(prepared.val, prepared.labels)
    correct = int((result.val_answers.argmax(1) == truth).sum())
    start = events.of_kind("run_started")[0].data
    epochs = events.of_kind("epoch_end")
    return {"seed": seed, "val_accuracy": round(correct / len(truth), 4), "ci95": wilson(correct, len(truth)),
            "val_images": len(truth), "train_images": len(prepared.train), "wall_s": round(wall, 1),
            "epochs_run": len(epochs), "best_epoch": result.best_epoch,
            "s_per_epoch": round(statistics.median(e2.data["elapsed_s"] - e1.data["elapsed_s"]
                                                   for e1, e2 in zip(epochs, epochs[1:])), 2) if len(epochs) > 1 else None,
            "trainable_params": start["trainable_params"], "augment": start["augment"],
            "augmented_views": start["augmented_views"], "frozen_stages": start["frozen_stages"],
            "load_average_1min": [round(load_before, 2), round(os.getloadavg()[0], 2)]}


def accuracy_table(found: dict, sizes: list[str], seeds: int, all_seeds: int, names: list[str],
                   done=lambda table: None) -> dict:
    """`done(table)` after each size: a long run on a busy machine keeps what it measured if stopped later."""
    table: dict[str, dict] = {}
    for size in sizes:
        per_class = None if size == "all" else int(size)
        rows: dict[str, list[dict]] = {name: [] for name in names}
        for seed in range(all_seeds if per_class is None else seeds):
            with tempfile.TemporaryDirectory() as tmp:
                data = write_set(Path(tmp) / "hymenoptera", found, per_class, seed)
                for name in names:  # interleaved: a change in the machine's load hits every strategy alike
                    rows[name].append(one_run(data, STRATEGIES[name], seed))
                    print(size, name, rows[name][-1], flush=True)
        table[size] = {}
        for name in names:
            accuracies = [r["val_accuracy"] for r in rows[name]]
            entry = {"accuracy": interval(accuracies), "median_wall_s": statistics.median(r["wall_s"] for r in rows[name]),
                     "trainable_params": rows[name][0]["trainable_params"], "runs": rows[name]}
            if name != names[0]:
                base = [r["val_accuracy"] for r in rows[names[0]]]
                entry["minus_" + names[0].replace(" ", "_")] = interval([a - b for a, b in zip(accuracies, base)])
            table[size][name] = entry
        done(table)
    return table


def vit_steps(names: list[str], batch: int = 16, repeats: int = 3) -> dict:
    """Random weights (ViT weights cannot be downloaded here): per strategy, the trainable parameters and the time of
    one training step of its trainable part (the stages after the frozen prefix, whose output is given), per image."""
    out = {}
    for name in names:
        out[name] = {}
        total = len(advice.stage_table(name).names)
        for label in ("feature extraction", "fine-tune last 2 stages", "adapters (r=8, last 2 stages)"):
            torch.manual_seed(0)
            model = backbones.build(name, 2, pretrained=False)
            frozen = total if label.startswith("feature") else total - 2
            if label.startswith("adapters"):
                frozen = adapters.add(model, 8, 2)
            trainable = set_trainable(model, frozen)
            size = backbones.preprocessing(name).crop_size
            with torch.no_grad():
                prefix = model.run_stages(torch.randn(batch, 3, size, size), 0, frozen)
            optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)

            def step() -> None:
                optimizer.zero_grad()
                model.forward_from(prefix, frozen).square().mean().backward()
                optimizer.step()
            step()
            times = []
            for _ in range(repeats):
                started = time.perf_counter()
                step()
                times.append(time.perf_counter() - started)
            out[name][label] = {"trainable_params": trainable, "frozen_stages": frozen, "total_stages": total,
                                "ms_per_image_train_step": round(1000 * min(times) / batch, 2),
                                "load_average_1min": round(os.getloadavg()[0], 2)}
            print(name, label, out[name][label], flush=True)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="20,all")
    parser.add_argument("--seeds", type=int, default=5, help="draws of the small training sets")
    parser.add_argument("--all-seeds", type=int, default=3, help="seeds on the whole training split")
    parser.add_argument("--strategies", default=";".join(STRATEGIES), help="names separated by ;")
    parser.add_argument("--vits", default="vit_b_16,dinov2_vits14", help="'' to skip the ViT step timing")
    parser.add_argument("--zip", type=Path, default=DEFAULT_ZIP)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "strategies-2core-cpu.json")
    args = parser.parse_args(argv)
    names = args.strategies.split(";")
    report = {"what": __doc__.split("\n\n")[0].replace("\n", " "),
              "backbone": "efficientnet_lite0 (bundled pretrained weights)",
              "machine": {"cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                          "python": platform.python_version(), "torch": torch.__version__,
                          "load_average_before": [round(x, 2) for x in os.getloadavg()],
                          "note": "shared with other jobs: times are indicative"},
              "intervals": ("per run: 95% Wilson interval over the 153 validation photos; per size: 95% t-interval "
                            "over seeds (at 20 a class each seed is a new draw of the training photos; on the whole "
                            "split the seed changes only the initial head and the augmentation), and the paired "
                            "difference from feature extraction, seed by seed")}
    report["settings"] = {"sizes": args.sizes, "seeds": args.seeds, "all_seeds": args.all_seeds}

    def write(partial: bool) -> None:
        report["machine"]["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
        report["complete"] = not partial
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")

    def write_partial(table: dict) -> None:
        report["accuracy"] = table
        write(partial=True)

    report["accuracy"] = accuracy_table(photos(args.zip), args.sizes.split(","), args.seeds, args.all_seeds, names,
                                        done=lambda table: write_partial(table))
    if args.vits:
        report["vit_random_weights_step"] = vit_steps(args.vits.split(","))
    write(partial=False)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
