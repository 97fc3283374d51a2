"""Accuracy against the number of augmented views (core.training.augmented_views), on the sample and on two sets of real
photographs that ship with scikit-image (the LFW face subset, and crops of its brick/grass/gravel texture
photos); no larger labelled photo set is on this machine, and none can be downloaded.

    python bench/views_accuracy.py [--views 0,1,4,8] [--seeds 0,1] [--epochs 6] [--out FILE]

views 0 is today's path (the frozen stages run on freshly augmented images every epoch). Each setting trains
the bundled pretrained backbone with its last 2 stages trainable and light augmentation; noise is the spread
over seeds (each seed changes the split, the initial head and the augmentation draws), reported as the std of
the accuracy and, paired by seed, as the std of each setting's difference from views=0.

At the defaults (30 a class, 96 px, 5-20% texture crops) every setting scores 1.0, which says nothing. The
recorded run (bench/results/views_accuracy-2core-cpu.json) makes the tasks hard enough to miss:

    python bench/views_accuracy.py --views 0,1,2,4,8 --seeds 0,1,2,3,4,5,6,7,8,9 --epochs 10 --per-class 20 \
        --image-size 64 --val-split 0.5 --texture-area 0.001,0.003
"""
from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from PIL import Image  # noqa: E402

from core.data import sample  # noqa: E402
from core.training.config import TrainConfig  # noqa: E402
from core.training.events import EventLog  # noqa: E402
from core.training.loop import fit  # noqa: E402


def photo_patches(folder: Path, photos: dict[str, Image.Image], per_class: int, area: tuple[float, float],
                  size: int = 128) -> Path:
    """Each class is one photograph; its images are random crops of it (a share `area` of the photo)."""
    rng = random.Random(5)
    for label, photo in photos.items():
        (folder / label).mkdir(parents=True)
        width, height = photo.size
        for i in range(per_class):
            share = rng.uniform(*area)
            w = h = int((share * width * height) ** 0.5)
            w, h = min(w, width), min(h, height)
            x, y = rng.randint(0, width - w), rng.randint(0, height - h)
            photo.crop((x, y, x + w, y + h)).resize((size, size)).save(folder / label / f"{i}.jpg", quality=90)
    return folder


def lfw_faces(folder: Path, per_class: int) -> Path:
    """scikit-image's LFW subset: up to 100 real face photos and 100 real non-face photo patches, 25 px grey."""
    import skimage.data

    images = skimage.data.lfw_subset()
    half = len(images) // 2
    for i, image in enumerate(images):
        if i % half >= per_class:
            continue
        label = "face" if i < half else "not_face"
        (folder / label).mkdir(parents=True, exist_ok=True)
        Image.fromarray((image * 255).astype("uint8")).convert("RGB").resize((96, 96)).save(folder / label / f"{i}.png")
    return folder


def datasets(root: Path, per_class: int, area: tuple[float, float], size: int) -> dict[str, Path]:
    import skimage.data

    textures = {name: Image.fromarray(getattr(skimage.data, name)()).convert("RGB") for name in
                ("brick", "grass", "gravel")}
    return {
        "sample shapes (generated)": sample.write_folder(root / "shapes", per_class=per_class, size=size, seed=2),
        "LFW subset: faces vs not (real photos, scikit-image)": lfw_faces(root / "lfw", per_class),
        f"textures: brick, grass, gravel (real photos, scikit-image; {area[0]:.1%}-{area[1]:.1%} crops)": photo_patches(
            root / "textures", textures, per_class, area, size),
    }


def one(data: Path, views: int, seed: int, args: argparse.Namespace) -> dict:
    config = TrainConfig(data=str(data), freeze_depth=7, augment="light", augmented_views=views, seed=seed,
                         epochs=args.epochs, early_stopping=0, image_size=args.image_size, batch_size=16,
                         val_split=args.val_split)
    events, started = EventLog(), time.perf_counter()
    with tempfile.TemporaryDirectory() as work:
        fit(config, events, threading.Event(), Path(work))
    last = events.of_kind("epoch_end")[-1].data
    used = events.of_kind("run_started")[0].data["augmented_views"]
    return {"views_used": used, "val_accuracy": round(last["val_accuracy"], 4), "val_loss": round(last["val_loss"], 4),
            "wall_s": round(time.perf_counter() - started, 1)}


def summary(runs: list[dict]) -> dict:
    """Mean and sample standard deviation over seeds: the std is the noise a difference must beat."""
    accuracies = [r["val_accuracy"] for r in runs]
    return {"runs": runs, "mean_val_accuracy": round(statistics.mean(accuracies), 4),
            "std_val_accuracy": round(statistics.stdev(accuracies), 4) if len(accuracies) > 1 else None,
            "mean_wall_s": round(statistics.mean(r["wall_s"] for r in runs), 1)}


def paired_with_today(rows: dict[str, dict]) -> None:
    """Per seed (same split, same head init), a setting's accuracy minus today's path's: the split's luck cancels,
    so the std of these differences is the noise left in a comparison with views=0."""
    today = rows.get("views=0")
    if today is None:
        return
    for key, row in rows.items():
        if key == "views=0":
            continue
        gaps = [r["val_accuracy"] - t["val_accuracy"] for r, t in zip(row["runs"], today["runs"])]
        row["minus_views0_mean"] = round(statistics.mean(gaps), 4)
        row["minus_views0_std"] = round(statistics.stdev(gaps), 4) if len(gaps) > 1 else None


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--views", default="0,1,4,8")
    parser.add_argument("--seeds", default="0,1")
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--per-class", type=int, default=30)
    parser.add_argument("--image-size", type=int, default=96)
    parser.add_argument("--val-split", type=float, default=0.2)
    parser.add_argument("--texture-area", default="0.05,0.2", help="smallest,largest share of a photo one crop covers")
    parser.add_argument("--sets", default="", help="comma-separated words; only the sets whose name has one")
    parser.add_argument("--out")
    args = parser.parse_args()
    area = tuple(map(float, args.texture_area.split(",")))
    report = {"machine": f"{os.cpu_count()} CPU cores", "load_average_before": os.getloadavg(),
              "backbone": "efficientnet_lite0 (pretrained), last 2 of 9 stages trainable, light augmentation",
              "epochs": args.epochs, "image_size": args.image_size, "per_class": args.per_class,
              "val_split": args.val_split, "seeds": args.seeds, "sets": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for name, data in datasets(Path(tmp), args.per_class, area, args.image_size).items():
            if args.sets and not any(word in name for word in args.sets.split(",")):
                continue
            rows = {}
            for views in map(int, args.views.split(",")):
                rows[f"views={views}"] = summary([one(data, views, seed, args) for seed in map(int, args.seeds.split(","))])
                print(json.dumps({name: {f"views={views}": rows[f"views={views}"]}}), file=sys.stderr, flush=True)
            paired_with_today(rows)
            report["sets"][name] = rows
    report["load_average_after"] = os.getloadavg()
    print(json.dumps(report, indent=2))
    if args.out:
        Path(args.out).write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
