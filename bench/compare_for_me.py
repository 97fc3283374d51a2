"""'Compare for me': its wall time, and whether leave-one-out picks the right head at 5 images a class.

    python bench/compare_for_me.py wall [--images 500] [--backbones A,B] [--out FILE]
    python bench/compare_for_me.py few [--zip PATH] [--per-class 5] [--seeds 30] [--backbones A,B] [--out FILE]

wall: the leaderboard for EfficientNet-Lite0/1/2 (the offline backbones) on `--images` generated shape photos at
160 px, first with an empty feature cache (every backbone reads every image once) and then again with it filled.
few: on real photos (the ants/bees set of PyTorch's transfer-learning tutorial, read from ../shared/data, never
copied into the repository), each backbone's features are computed once; for each seed, `--per-class` training
images a class are drawn; both heads are scored by leave-one-out on those few images (what the leaderboard shows
a user) and, fitted on them, on the whole validation split (the truth); reported: means over seeds and how often
leave-one-out picked the head that was really better. The machine is shared: each timing records the load average.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from core.data import sample  # noqa: E402
from core.data.datasets import inspect_data  # noqa: E402
from core.insight import heads  # noqa: E402
from core.insight.audit import linear_head  # noqa: E402
from core.insight.compare import compare_backbones  # noqa: E402
from core.insight.embeddings import FeatureSpec, dataset_features  # noqa: E402
from core.models.features import FeatureCache  # noqa: E402
from core.training import prototype  # noqa: E402

LITES = ["efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2"]
DEFAULT_ZIP = ROOT.parent / "shared" / "data" / "hymenoptera.zip"


def machine() -> dict:
    return {"cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(), "platform": platform.platform(),
            "torch": torch.__version__}


def wall(images: int, names: list[str]) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        data = sample.write_folder(Path(tmp) / "shapes", per_class=-(-images // 3), size=160, seed=0)
        cache, runs = FeatureCache(Path(tmp) / "cache"), {}
        for label in ("cold cache", "warm cache"):
            load_before, started = os.getloadavg(), time.perf_counter()
            board = compare_backbones(data, names, work_dir=Path(tmp) / "work", cache=cache)
            runs[label] = {"wall_s": round(time.perf_counter() - started, 1), "loadavg_before": load_before,
                           "loadavg_after": os.getloadavg(), "leaderboard": board.to_json()}
    return {"what": f"compare_backbones, {len(names)} backbones, {images} generated images", "machine": machine(),
            **runs}


def few(archive: Path, per_class: int, seeds: int, names: list[str]) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        report = inspect_data(archive, Path(tmp))
        records = report.images
        targets = np.array([report.labels.index(r.label) for r in records])
        train = np.array([r.split == "train" for r in records])
        out = {}
        for name in names:
            started = time.perf_counter()
            x = dataset_features(report.root, records, report.labels, FeatureSpec(name), FeatureCache(None))
            out[name] = {"feature_s": round(time.perf_counter() - started, 1), "loadavg": os.getloadavg(),
                         **_draws(x, targets, train, len(report.labels), per_class, seeds)}
    return {"what": f"leave-one-out on {per_class} images a class vs the whole validation split, {seeds} draws",
            "data": f"{archive.name}: {int(train.sum())} train, {int((~train).sum())} val photos, "
                    f"{len(report.labels)} classes", "machine": machine(), "backbones": out}


def _draws(x: np.ndarray, y: np.ndarray, train: np.ndarray, classes: int, per_class: int, seeds: int) -> dict:
    loo, val, picked_right = {h: [] for h in heads.HEADS}, {h: [] for h in heads.HEADS}, 0
    val_x, val_y = x[~train], y[~train]
    for seed in range(seeds):
        rng = np.random.default_rng(seed)
        pick = np.concatenate([rng.choice(np.flatnonzero(train & (y == c)), per_class, replace=False)
                               for c in range(classes)])
        scores = heads.score_heads(x[pick], y[pick], classes, heads.Plan("leave-one-out", len(pick)), seed)
        for s in scores:
            loo[s.head].append(s.accuracy)
        means = prototype.prototypes(torch.from_numpy(x[pick]), torch.from_numpy(y[pick]), classes)
        val["prototype"].append(float((prototype.predict(torch.from_numpy(val_x), means).numpy() == val_y).mean()))
        val["linear"].append(float((linear_head().fit(x[pick], y[pick]).predict(val_x) == val_y).mean()))
        chosen = max(heads.HEADS, key=lambda h: (loo[h][-1], h == "linear"))  # recommend()'s tie rule
        picked_right += val[chosen][-1] >= max(val[h][-1] for h in heads.HEADS)
    mean = lambda v: round(float(np.mean(v)), 4)  # noqa: E731
    return {"loo_accuracy_mean": {h: mean(v) for h, v in loo.items()},
            "val_accuracy_mean": {h: mean(v) for h, v in val.items()},
            "val_accuracy_sd": {h: round(float(np.std(v)), 4) for h, v in val.items()},
            "loo_picked_the_better_head": f"{picked_right} of {seeds}"}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=("wall", "few"))
    parser.add_argument("--images", type=int, default=500)
    parser.add_argument("--zip", type=Path, default=DEFAULT_ZIP)
    parser.add_argument("--per-class", type=int, default=5)
    parser.add_argument("--seeds", type=int, default=30)
    parser.add_argument("--backbones", default=",".join(LITES))
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    names = [n for n in args.backbones.split(",") if n]
    result = wall(args.images, names) if args.mode == "wall" else few(args.zip, args.per_class, args.seeds, names)
    text = json.dumps(result, indent=1)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
