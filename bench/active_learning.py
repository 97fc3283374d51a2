"""Do the Label page's suggestions save labelling? A simulated labeller on an already labelled folder.

    python bench/active_learning.py --data DIR_OR_ZIP --target 0.95 [--repeats 25] [--batch 2] [--seed 0]
    python bench/active_learning.py --skimage lfw|textures|digits --target 0.9   (data shipped with scikit-image/-learn)

Each repeat holds out a stratified validation part, starts from one labelled image per class, and then labels
`--batch` images at a time from the rest, either in random order or most uncertain first (the smallest margin
of the Label page's own head, on the same cached backbone features), until the head reaches `--target`
validation accuracy. Prints one JSON object (also saved in bench/results/): the median labels each order
needed, `random_labels` and `uncertainty_labels`, and their ratio. Goal: ratio <= 0.7.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from core.data import intake  # noqa: E402
from core.data.store import DatasetStore  # noqa: E402
from core.labelling import suggest as labelling  # noqa: E402
from core.models.features import FeatureCache  # noqa: E402


def features_of(data: Path, image_size: int, work: Path) -> tuple[np.ndarray, np.ndarray]:
    """Import through the store (the app's own checks), then the Label page's pooled features."""
    store = DatasetStore(work / "datasets")
    version = intake.import_labelled(store, data, data.stem, work).version
    digests = sorted(version.images)
    labels = np.array([version.images[d]["label"] for d in digests])
    return labelling.embed(store, digests, FeatureCache(None), image_size), labels


def stratified_split(labels: np.ndarray, val_fraction: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    train, val = [], []
    for label in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == label))
        n_val = max(1, round(val_fraction * len(members)))
        val += members[:n_val].tolist()
        train += members[n_val:].tolist()
    return np.array(train), np.array(val)


def labels_needed(x: np.ndarray, y: np.ndarray, train: np.ndarray, val: np.ndarray, order: str, target: float,
                  batch: int, rng: np.random.Generator) -> tuple[int, bool]:
    """How many labels the simulated labeller gave before the head reached `target` on the validation part."""
    labelled = [int(rng.choice(train[y[train] == label])) for label in np.unique(y)]
    pool = [i for i in train if i not in set(labelled)]
    while True:
        head = labelling.fit_head(x[labelled], y[labelled].tolist())
        accuracy = float((head.predict(labelling._normalised(x[val])) == y[val]).mean())
        if accuracy >= target:
            return len(labelled), True
        if not pool:
            return len(labelled), False
        if order == "random":
            picked = rng.choice(len(pool), size=min(batch, len(pool)), replace=False).tolist()
        else:
            margins = [s.margin for s in labelling.suggest(head, x[pool], [str(i) for i in pool])]
            picked = np.argsort(margins, kind="stable")[:batch].tolist()
        labelled += [pool[i] for i in picked]
        pool = [p for i, p in enumerate(pool) if i not in set(picked)]


def skimage_folder(kind: str, folder: Path) -> Path:
    """Real photos shipped with scikit-image, as class folders: LFW faces vs non-faces (200 images, 25 px), or
    64-px crops of three texture photos (brick, grass, gravel: 48 crops each); or 50 of each of scikit-learn's
    8x8 handwritten digits (real scans, not photos)."""
    from PIL import Image
    from skimage import data as skdata

    if kind == "digits":  # scikit-learn's 8x8 scans of handwritten digits: real, but not photos
        from sklearn.datasets import load_digits

        digits = load_digits()
        arrays = {}
        for image, target in zip(digits.images, digits.target):
            group = arrays.setdefault(f"digit_{target}", [])
            if len(group) < 50:
                group.append((image * 255 / 16).astype(np.uint8))
    elif kind == "lfw":
        images = skdata.lfw_subset()
        classes = {"face": images[:100], "not_face": images[100:]}
        arrays = {label: [(a * 255).astype(np.uint8) for a in group] for label, group in classes.items()}
    else:
        arrays = {}
        for name in ("brick", "grass", "gravel"):
            photo = getattr(skdata, name)()
            tiles = [photo[r:r + 64, c:c + 64] for r in range(0, photo.shape[0] - 63, 64)
                     for c in range(0, photo.shape[1] - 63, 64)]
            arrays[name] = tiles[:48]
    for label, group in arrays.items():
        (folder / label).mkdir(parents=True, exist_ok=True)
        for i, array in enumerate(group):
            Image.fromarray(array).convert("RGB").save(folder / label / f"{i:03d}.png")
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--data", type=Path, help="a folder or zip of class folders")
    source.add_argument("--skimage", choices=("lfw", "textures", "digits"))
    parser.add_argument("--target", type=float, required=True, help="validation accuracy to reach, e.g. 0.95")
    parser.add_argument("--repeats", type=int, default=25)
    parser.add_argument("--batch", type=int, default=2, help="labels given between two suggestion rounds")
    parser.add_argument("--val-fraction", type=float, default=0.3)
    parser.add_argument("--image-size", type=int, default=160, help="the Label page's feature size")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as scratch:
        data = args.data or skimage_folder(args.skimage, Path(scratch) / args.skimage)
        started = time.perf_counter()
        x, y = features_of(data, args.image_size, Path(scratch))
        feature_seconds = time.perf_counter() - started
    needed: dict[str, list[int]] = {"random": [], "uncertainty": []}
    reached: dict[str, list[bool]] = {"random": [], "uncertainty": []}
    full_accuracy = []
    for repeat in range(args.repeats):
        train, val = stratified_split(y, args.val_fraction, np.random.default_rng(args.seed + repeat))
        head = labelling.fit_head(x[train], y[train].tolist())
        full_accuracy.append(float((head.predict(labelling._normalised(x[val])) == y[val]).mean()))
        for order in needed:
            rng = np.random.default_rng(1000 * (args.seed + repeat) + 1)  # same starting labels for both orders
            count, ok = labels_needed(x, y, train, val, order, args.target, args.batch, rng)
            needed[order].append(count)
            reached[order].append(ok)
    random_labels, uncertainty_labels = statistics.median(needed["random"]), statistics.median(needed["uncertainty"])
    result = {
        "data": str(args.data or f"skimage:{args.skimage}"), "images": len(y), "classes": len(np.unique(y)),
        "target": args.target, "repeats": args.repeats, "batch": args.batch, "val_fraction": args.val_fraction,
        "image_size": args.image_size, "random_labels": random_labels, "uncertainty_labels": uncertainty_labels,
        "ratio": round(uncertainty_labels / random_labels, 3) if random_labels else None,
        "mean_labels": {order: round(statistics.fmean(counts), 1) for order, counts in needed.items()},
        "p90_labels": {order: float(np.percentile(counts, 90)) for order, counts in needed.items()},
        "labels_per_repeat": needed, "target_reached": reached,
        "accuracy_with_every_training_label": round(statistics.median(full_accuracy), 3),
        "feature_seconds": round(feature_seconds, 1), "load_average": os.getloadavg(),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.python_version()}",
    }
    print(json.dumps(result, indent=2))
    out = ROOT / "bench" / "results" / f"active_learning-{Path(str(args.data or args.skimage)).stem}.json"
    out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
