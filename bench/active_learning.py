"""Does the Label page's "what to label next" save labels? A simulated labeller on an already labelled set.

    python bench/active_learning.py --data /work/shared/data/hymenoptera.zip --target 0.9
    python bench/active_learning.py --skimage lfw|textures|digits|crops --target 0.95
    python bench/active_learning.py --generated shapes --target 0.8     [--seeds 10] [--batch 5] [--budget 150]

Each seed holds out a stratified validation part, starts from one labelled image per class (the same ones for
every order), then labels `--batch` images at a time from the rest in each order until `--budget` labels:
random; uncertainty (the page's order before: smallest margin first); typical (TypiClust alone); proposed
(core.labelling.propose.choose, what next_to_label proposes). The head is the Label page's own, on the same
cached backbone features. Per order: labels needed to reach `--target` validation accuracy, and the area under
the accuracy-vs-labels curve (mean accuracy over the rounds), per seed; ratios to random. It also checks the
learning-curve estimate: at 20 and 40 labels in the random and the proposed order, the interval it gives against
the labels that were really needed. Prints one JSON object and saves it in bench/results/. Goal: proposed/random <= 0.67.
Label counts, not timings: the machine's load does not change them (it is recorded all the same).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import random
import statistics
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from core.data import intake  # noqa: E402
from core.data.store import DatasetStore  # noqa: E402
from core.labelling import curve, propose, select  # noqa: E402
from core.labelling import suggest as labelling  # noqa: E402
from core.models.features import FeatureCache  # noqa: E402

ORDERS = ("random", "uncertainty", "typical", "proposed")
CHECKPOINTS = (20, 40)
CHECKED = ("random", "proposed")  # the curve is measured on random subsets: is it right for either order?
CROP_PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "motorcycle", "retina", "immunohistochemistry",
               "hubble_deep_field", "china", "flower")
HARD_SHAPES = {"triangle": 3, "square": 4, "pentagon": 5, "hexagon": 6, "circle": 0, "star": -5}


def features_of(data: Path, image_size: int, work: Path, cache: Path | None) -> tuple[np.ndarray, np.ndarray]:
    """Import through the store (the app's own checks), then the Label page's pooled features."""
    store = DatasetStore(work / "datasets")
    version = intake.import_labelled(store, data, data.stem, work).version
    digests = sorted(version.images)
    labels = np.array([version.images[d]["label"] for d in digests])
    return labelling.embed(store, digests, FeatureCache(cache), image_size), labels


def stratified_split(labels: np.ndarray, val_fraction: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    train, val = [], []
    for label in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == label))
        n_val = max(1, round(val_fraction * len(members)))
        val += members[:n_val].tolist()
        train += members[n_val:].tolist()
    return np.array(train), np.array(val)


def next_batch(order: str, x: np.ndarray, y: np.ndarray, labelled: list[int], pool: list[int], batch: int,
               rng: np.random.Generator) -> list[int]:
    """Positions in `pool` of the next images to label, in `order`."""
    seed = int(rng.integers(1 << 30))
    if order == "random":
        return rng.choice(len(pool), size=min(batch, len(pool)), replace=False).tolist()
    if order == "uncertainty":
        head = labelling.fit_head(x[labelled], y[labelled].tolist())
        margins = [s.margin for s in labelling.suggest(head, x[pool], [str(i) for i in pool])]
        return np.argsort(margins, kind="stable")[:batch].tolist()
    if order == "typical":
        space = select.geometry(x[labelled + pool], seed=seed)
        return [p.index for p in select.typical_diverse(space[len(labelled):], space[:len(labelled)], batch, seed)]
    chosen = propose.choose(x[labelled + pool], y[labelled].tolist(), sorted(set(y.tolist())), batch, seed)
    return [p.index for p in chosen.picks]


def simulate(x: np.ndarray, y: np.ndarray, train: np.ndarray, val: np.ndarray, order: str, args,
             rng: np.random.Generator) -> dict:
    """One labeller in one order: the accuracy after each batch, up to the budget, and the curve checks."""
    labelled = [int(rng.choice(train[y[train] == label])) for label in np.unique(y)]
    pool = [int(i) for i in train if i not in set(labelled)]
    counts, accuracies, checks = [], [], []
    while True:
        head = labelling.fit_head(x[labelled], y[labelled].tolist())
        counts.append(len(labelled))
        accuracies.append(float((head.predict(labelling._normalised(x[val])) == y[val]).mean()))
        if order in CHECKED and len(checks) < len(CHECKPOINTS) and len(labelled) >= CHECKPOINTS[len(checks)]:
            estimate = curve.estimate(x[labelled], y[labelled].tolist(), target=args.target)
            checks.append({"labels": len(labelled), "accuracy_now": accuracies[-1], "more": estimate.more,
                           "low": estimate.low, "high": estimate.high, "sentence": estimate.sentence()})
        if len(labelled) >= args.budget or not pool:
            break
        picked = next_batch(order, x, y, labelled, pool, min(args.batch, args.budget - len(labelled)), rng)
        labelled += [pool[i] for i in picked]
        pool = [p for i, p in enumerate(pool) if i not in set(picked)]
    needed = next((n for n, a in zip(counts, accuracies) if a >= args.target), None)
    for check in checks:
        judge(check, needed, args)
    return {"needed": needed, "auc": round(statistics.fmean(accuracies), 4), "checks": checks,
            "curve": [[n, round(a, 4)] for n, a in zip(counts, accuracies)]}


def judge(check: dict, needed: int | None, args) -> None:
    """Did the estimate hold? Judged only where the target was still ahead on the validation part too; a labeller
    who never reached it within the budget still needed more than the budget left."""
    left = args.budget - check["labels"]
    check["really_needed_more"] = needed - check["labels"] if needed is not None else f"> {left}"
    ahead = check["accuracy_now"] < args.target and (needed is None or needed > check["labels"])
    truth = needed - check["labels"] if needed is not None else None  # None: more than `left`
    check["interval_held"] = check["low_bound_held"] = None
    if ahead and check["low"] is not None:
        check["low_bound_held"] = truth is None or truth >= check["low"]
    if ahead and check["high"] is not None and truth is not None:
        check["interval_held"] = check["low"] <= truth <= check["high"]
    elif ahead and check["high"] is not None and check["high"] < left:  # never reached: more than its high end
        check["interval_held"] = False


def check_summary(checks: list[dict]) -> dict:
    intervals = [c["interval_held"] for c in checks if c["interval_held"] is not None]
    lows = [c["low_bound_held"] for c in checks if c["low_bound_held"] is not None]
    return {"intervals_given": len(intervals), "intervals_held": sum(intervals), "low_bounds_given": len(lows),
            "low_bounds_held": sum(lows), "cannot_tell": sum(c["more"] is None for c in checks), "checks": checks}


def photo(name: str) -> np.ndarray:
    from skimage import data as skdata

    if name in ("china", "flower"):
        from sklearn.datasets import load_sample_image

        return load_sample_image(f"{name}.jpg")
    return skdata.stereo_motorcycle()[0] if name == "motorcycle" else getattr(skdata, name)()


def skimage_sets(kind: str) -> dict[str, list[np.ndarray]]:
    """Real images shipped with scikit-image / scikit-learn, as class -> arrays. lfw: faces vs non-faces (200,
    25 px); textures: 64-px tiles of three texture photos (48 each); digits: 50 each of scikit-learn's 8x8 scans;
    crops: 40 random crops (a fifth to a half of the shorter side, flipped or not) of each of ten photos, so a
    class holds very different views (the astronaut's face, flag and suit), as a user's class of photos does."""
    from skimage import data as skdata

    if kind == "digits":
        from sklearn.datasets import load_digits

        digits, arrays = load_digits(), {}
        for image, target in zip(digits.images, digits.target):
            group = arrays.setdefault(f"digit_{target}", [])
            if len(group) < 50:
                group.append((image * 255 / 16).astype(np.uint8))
        return arrays
    if kind == "lfw":
        images = skdata.lfw_subset()
        return {label: [(a * 255).astype(np.uint8) for a in group]
                for label, group in {"face": images[:100], "not_face": images[100:]}.items()}
    if kind == "textures":
        tiles = {name: getattr(skdata, name)() for name in ("brick", "grass", "gravel")}
        return {name: [p[r:r + 64, c:c + 64] for r in range(0, p.shape[0] - 63, 64)
                       for c in range(0, p.shape[1] - 63, 64)][:48] for name, p in tiles.items()}
    rng = np.random.default_rng(0)
    out = {}
    for name in CROP_PHOTOS:
        image = Image.fromarray(photo(name)).convert("RGB")
        w, h = image.size
        out[name] = []
        for _ in range(40):
            side = int(rng.uniform(0.2, 0.5) * min(w, h))
            x0, y0 = int(rng.integers(0, w - side + 1)), int(rng.integers(0, h - side + 1))
            crop = image.crop((x0, y0, x0 + side, y0 + side)).resize((128, 128), Image.BILINEAR)
            out[name].append(np.asarray(crop.transpose(Image.FLIP_LEFT_RIGHT) if rng.random() < 0.5 else crop))
    return out


def hard_shape(corners: int, rng: random.Random, size: int = 96) -> np.ndarray:
    """A small shape (3-6 corners, a circle or a star) on a noisy gradient, with a distractor blob, blurred:
    harder than the bundled sample (pentagons, hexagons and circles look alike when small and blurred)."""
    low, high = (np.array([rng.randrange(256) for _ in range(3)], dtype=np.float32) for _ in range(2))
    ramp = np.linspace(0, 1, size, dtype=np.float32)[:, None, None]
    noise = np.random.default_rng(rng.randrange(1 << 30)).normal(0, 30, (size, size, 3))
    pixels = low + (high - low) * (ramp if rng.random() < 0.5 else ramp.transpose(1, 0, 2)) + noise
    image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "RGB")
    pen = ImageDraw.Draw(image)
    blob, bx, by = rng.uniform(0.05, 0.12) * size, rng.uniform(0, size), rng.uniform(0, size)
    pen.ellipse([bx - blob, by - blob * 0.6, bx + blob, by + blob * 0.6], fill=tuple(rng.randrange(256) for _ in "rgb"))
    radius = rng.uniform(0.14, 0.32) * size
    cx, cy = (rng.uniform(radius, size - radius) for _ in range(2))
    colour = tuple(rng.randrange(256) for _ in range(3))
    if corners == 0:
        pen.ellipse([cx - radius, cy - radius, cx + radius, cy + radius], fill=colour)
    else:
        turn, steps = rng.uniform(0, 2 * math.pi), 2 * abs(corners) if corners < 0 else corners
        reach = [0.45 if corners < 0 and k % 2 else 1.0 for k in range(steps)]  # a star: every other point in
        pen.polygon([(cx + radius * reach[k] * math.cos(turn + 2 * math.pi * k / steps),
                      cy + radius * reach[k] * math.sin(turn + 2 * math.pi * k / steps)) for k in range(steps)],
                    fill=colour)
    return np.asarray(image.filter(ImageFilter.GaussianBlur(rng.uniform(0, 1.5))))


def write_folder(arrays: dict[str, list[np.ndarray]], folder: Path) -> Path:
    for label, group in arrays.items():
        (folder / label).mkdir(parents=True, exist_ok=True)
        for i, array in enumerate(group):
            Image.fromarray(array).convert("RGB").save(folder / label / f"{i:03d}.png")
    return folder


def summary(runs: list[dict], random_runs: list[dict], budget: int) -> dict:
    needed = [r["needed"] for r in runs]
    censored = [n if n is not None else budget for n in needed]  # not reached: counted as the whole budget
    base = [r["needed"] if r["needed"] is not None else budget for r in random_runs]
    quartiles = np.percentile(censored, [25, 75]).tolist()
    rng = np.random.default_rng(0)  # the ratio's spread over seeds: resample the seeds, paired with random's
    resampled = [rng.integers(0, len(base), len(base)) for _ in range(2000)]
    ratios = [np.median(np.array(censored)[r]) / np.median(np.array(base)[r]) for r in resampled]
    return {"labels_needed": needed, "median_labels": statistics.median(censored),
            "labels_iqr": quartiles, "mean_labels": round(statistics.fmean(censored), 1),
            "reached": sum(n is not None for n in needed),
            "ratio_to_random": round(statistics.median(censored) / statistics.median(base), 3),
            "ratio_90pct_interval": [round(float(v), 3) for v in np.percentile(ratios, [5, 95])],
            "paired_ratio_median": round(statistics.median(n / b for n, b in zip(censored, base)), 3),
            "auc": [r["auc"] for r in runs], "auc_mean": round(statistics.fmean(r["auc"] for r in runs), 4),
            "auc_sd": round(statistics.pstdev(r["auc"] for r in runs), 4)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--data", type=Path, help="a folder or zip of class folders")
    source.add_argument("--skimage", choices=("lfw", "textures", "digits", "crops"))
    source.add_argument("--generated", choices=("shapes",), help="six small blurred shapes, 50 each, 96 px")
    parser.add_argument("--target", type=float, required=True, help="validation accuracy to reach, e.g. 0.9")
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--batch", type=int, default=5, help="labels given between two rounds of proposals")
    parser.add_argument("--budget", type=int, default=150, help="labels each simulated labeller gives at most")
    parser.add_argument("--val-fraction", type=float, default=0.3)
    parser.add_argument("--image-size", type=int, default=160, help="the Label page's feature size")
    parser.add_argument("--cache", type=Path, help="a feature cache folder, to rerun without the backbone pass")
    parser.add_argument("--orders", default=",".join(ORDERS))
    parser.add_argument("--tag", default="", help="added to the result's file name, e.g. a second target")
    args = parser.parse_args()
    orders = args.orders.split(",")
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as scratch:
        name = args.data.stem if args.data else args.skimage or args.generated
        if args.data:
            data = args.data
        elif args.skimage:
            data = write_folder(skimage_sets(args.skimage), Path(scratch) / name)
        else:
            rng = random.Random(0)
            data = write_folder({s: [hard_shape(c, rng) for _ in range(50)] for s, c in HARD_SHAPES.items()},
                                Path(scratch) / name)
        x, y = features_of(data, args.image_size, Path(scratch), args.cache)
    runs: dict[str, list[dict]] = {order: [] for order in orders}
    full_accuracy = []
    for seed in range(args.seeds):
        train, val = stratified_split(y, args.val_fraction, np.random.default_rng(seed))
        head = labelling.fit_head(x[train], y[train].tolist())
        full_accuracy.append(float((head.predict(labelling._normalised(x[val])) == y[val]).mean()))
        for order in orders:  # the same starting labels and the same seeds for every order
            runs[order].append(simulate(x, y, train, val, order, args, np.random.default_rng(1000 * seed + 1)))
        print(seed, {o: runs[o][-1]["needed"] for o in orders}, file=sys.stderr, flush=True)
    curve_checks = {order: check_summary([c for r in runs[order] for c in r["checks"]]) for order in orders
                    if order in CHECKED}
    result = {
        "data": str(args.data or f"{'skimage' if args.skimage else 'generated'}:{name}"), "images": len(y),
        "classes": len(np.unique(y)), "target": args.target, "seeds": args.seeds, "batch": args.batch,
        "budget": args.budget, "val_fraction": args.val_fraction, "image_size": args.image_size,
        "start": "one random labelled image per class, the same for every order",
        "accuracy_with_every_training_label": round(statistics.median(full_accuracy), 3),
        "orders": {order: summary(runs[order], runs.get("random", runs[order]), args.budget) for order in orders},
        "curve_checks": curve_checks,
        "accuracy_curves": {order: [r["curve"] for r in runs[order]] for order in orders},
        "load_average_before": load_before, "load_average_after": os.getloadavg(),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores (shared), Python {platform.python_version()}",
    }
    print(json.dumps({k: v for k, v in result.items() if k != "accuracy_curves"}, indent=1))
    out = ROOT / "bench" / "results" / f"active_learning-{name}{'-' + args.tag if args.tag else ''}.json"
    out.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
