"""Which bundled backbone for small data? EfficientNet-Lite0 vs Lite1 vs Lite2 as frozen feature extractors on real
photos (the ants/bees set of PyTorch's transfer-learning tutorial, read from ../shared/data/hymenoptera.zip, never
copied into the repository), at 10/20/40 training images a class and with the whole training split.

    python bench/backbones_small_data.py [--backbones efficientnet_lite0,...] [--sizes 10,20,40] [--seeds 20]
                                         [--zip PATH] [--out FILE]

Each backbone's pooled features (the input of the new Linear: what "feature extraction only" trains on) are computed
once per image, at the backbone's own preprocessing. For each size and seed, that many training images a class are
drawn (the same draw for every backbone), a logistic-regression linear probe is fitted on them (standardised
features, scikit-learn's default C=1), and scored on the whole validation split (70 ants, 83 bees). Reported per size:
the mean accuracy over seeds with a 95% t-interval, and the paired difference from Lite0 (same images, same seed)
with its 95% t-interval. Times are forward passes only (decoding excluded), per image at batch 32 on this machine's
CPU, the backbones interleaved round by round; the machine is shared with other jobs, so each timing records the
load average, the times are indicative, and the ratio to Lite0 is the number to read.
"""
from __future__ import annotations

import argparse
import io
import json
import os
import platform
import statistics
import sys
import time
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from scipy import stats  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402

from core.data.preprocessing import ImageRejected, load_rgb  # noqa: E402
from core.models import backbones  # noqa: E402

DEFAULT_ZIP = ROOT.parent / "shared" / "data" / "hymenoptera.zip"
BATCH = 32


def read_photos(archive: Path) -> list[tuple[str, str, str, bytes]]:
    """(split, label, name, bytes) for every image file in the zip, in a stable order."""
    photos = []
    with zipfile.ZipFile(archive) as z:
        for info in sorted(z.infolist(), key=lambda i: i.filename):
            parts = info.filename.split("/")
            if len(parts) == 4 and parts[1] in ("train", "val") and not info.is_dir():
                photos.append((parts[1], parts[2], parts[3], z.read(info)))
    return photos


def features(name: str, photos: list[tuple[str, str, str, bytes]]) -> tuple[np.ndarray, list[int], tuple]:
    """Pooled features of every decodable photo, the indices kept, and (model, prep, a batch) for the timing."""
    prep = backbones.preprocessing(name)
    model = backbones.build(name, 2, pretrained=True).eval()
    kept, decoded = [], []
    for i, (_, _, file, data) in enumerate(photos):
        try:
            decoded.append(prep.to_uint8(load_rgb(io.BytesIO(data), min_size=prep.resize_size, name=file)))
            kept.append(i)
        except ImageRejected:
            continue
    images, out = torch.stack(decoded), []
    with torch.inference_mode():
        for start in range(0, len(images), BATCH):
            out.append(pooled(model, prep, images[start:start + BATCH]).float())
    return torch.cat(out).numpy(), kept, (model, prep, images[:BATCH].clone())


def pooled(model: torch.nn.Module, prep, batch: torch.Tensor) -> torch.Tensor:
    """What feature extraction trains the new Linear on: the head's input."""
    return model.head[:-1](model.run_stages(prep.normalize(batch)))


def timings(timed: dict[str, tuple], rounds: int) -> dict[str, dict]:
    """Forward time per image, the backbones interleaved round by round (A B C A B C ...), so that a change in the
    machine's load hits all of them alike; the load average is recorded with every measurement."""
    runs: dict[str, list] = {name: [] for name in timed}
    with torch.inference_mode():
        for _ in range(rounds):
            for name, (model, prep, batch) in timed.items():
                started = time.perf_counter()
                pooled(model, prep, batch)
                ms = 1000 * (time.perf_counter() - started) / len(batch)
                runs[name].append({"ms_per_image": round(ms, 2), "load_average_1min": round(os.getloadavg()[0], 2)})
    first = statistics.median(r["ms_per_image"] for r in runs[next(iter(runs))])
    return {name: {"median_ms_per_image": statistics.median(r["ms_per_image"] for r in rs),
                   "relative_to_first": round(statistics.median(r["ms_per_image"] for r in rs) / first, 2),
                   "batch": BATCH, "runs": rs} for name, rs in runs.items()}


def wilson(correct: int, n: int) -> list[float]:
    """95% Wilson interval of an accuracy measured on n images."""
    z, p = 1.959964, correct / n
    centre, half = (p + z * z / (2 * n)) / (1 + z * z / n), z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return [round(float(centre - half / (1 + z * z / n)), 4), round(float(centre + half / (1 + z * z / n)), 4)]


def probe_accuracy(x: np.ndarray, y: np.ndarray, train: np.ndarray, val: np.ndarray) -> float:
    probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=5000))
    probe.fit(x[train], y[train])
    return float((probe.predict(x[val]) == y[val]).mean())


def draws(labels: np.ndarray, train_idx: np.ndarray, per_class: int, seeds: int) -> list[np.ndarray]:
    """The same draws for every backbone: `per_class` training images of each class, one draw per seed."""
    out = []
    for seed in range(seeds):
        rng = np.random.default_rng(seed)
        chosen = [rng.choice(train_idx[labels[train_idx] == c], per_class, replace=False) for c in np.unique(labels)]
        out.append(np.concatenate(chosen))
    return out


def interval(values: list[float]) -> dict:
    """Mean and 95% t-interval over seeds."""
    a = np.asarray(values)
    half = float(stats.t.ppf(0.975, len(a) - 1) * a.std(ddof=1) / np.sqrt(len(a))) if len(a) > 1 else 0.0
    return {"mean": round(float(a.mean()), 4), "ci95": [round(float(a.mean()) - half, 4),
                                                         round(float(a.mean()) + half, 4)]}


def write_report(out: Path, results: dict, labels: np.ndarray, train_idx: np.ndarray, val_idx: np.ndarray,
                 skipped: int) -> None:
    report = {
        "what": __doc__.split("\n\n")[0].replace("\n", " "),
        "data": {"train": {"ants": int((labels[train_idx] == 0).sum()), "bees": int((labels[train_idx] == 1).sum())},
                 "val": {"ants": int((labels[val_idx] == 0).sum()), "bees": int((labels[val_idx] == 1).sum())},
                 "skipped_files": skipped},
        "probe": "StandardScaler + LogisticRegression(C=1) on the pooled features; accuracy on the whole val split",
        "intervals": ("per size: 95% t-interval over the seeds' training draws (the validation split is fixed, so "
                      "absolute accuracies also carry its own sampling error, about +-3.5 points at 153 images; the "
                      "paired differences are the comparison); 'all': one fit, 95% Wilson interval over the "
                      "validation images"),
        "machine": {"cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(), "python": platform.python_version(),
                    "torch": torch.__version__, "note": "shared with other jobs: times are indicative"},
        "backbones": {name: {k: v for k, v in r.items() if k != "x"} for name, r in results.items()},
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {out}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backbones", default="efficientnet_lite0,efficientnet_lite1,efficientnet_lite2")
    parser.add_argument("--sizes", default="10,20,40")
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--timing-rounds", type=int, default=7)
    parser.add_argument("--zip", type=Path, default=DEFAULT_ZIP)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "backbones_small_data-2core-cpu.json")
    args = parser.parse_args(argv)
    names, sizes = args.backbones.split(","), [int(s) for s in args.sizes.split(",")]
    photos = read_photos(args.zip)
    per_backbone, kept_sets, timed = {}, [], {}
    for name in names:
        x, kept, timed[name] = features(name, photos)
        per_backbone[name] = {"x": x, "kept": kept}
        kept_sets.append(set(kept))
    times = timings(timed, args.timing_rounds)
    for name, t in times.items():
        print(name, {k: v for k, v in t.items() if k != "runs"}, flush=True)
    common = sorted(set.intersection(*kept_sets))  # the same images for every backbone
    labels = np.array([sorted({p[1] for p in photos}).index(photos[i][1]) for i in common])
    splits = np.array([photos[i][0] for i in common])
    train_idx, val_idx = np.flatnonzero(splits == "train"), np.flatnonzero(splits == "val")
    results = {name: {"timing": times[name], "info": backbones.info(name).__dict__} for name in per_backbone}
    for name, b in per_backbone.items():
        rows = [b["kept"].index(i) for i in common]
        results[name]["x"] = b["x"][rows]
    plans = {str(n): draws(labels, train_idx, n, args.seeds) for n in sizes} | {"all": [train_idx]}
    for size, plan in plans.items():
        scores = {name: [probe_accuracy(r["x"], labels, d, val_idx) for d in plan] for name, r in results.items()}
        for name in results:
            entry = interval(scores[name]) | {"seeds": len(plan)}
            if size == "all":  # one fit: the interval is the validation split's own sampling error
                entry["ci95"] = wilson(round(scores[name][0] * len(val_idx)), len(val_idx))
            if name != names[0]:
                entry["minus_" + names[0]] = interval([a - b for a, b in zip(scores[name], scores[names[0]])])
            results[name].setdefault("accuracy", {})[size] = entry
            print(size, name, entry, flush=True)
    write_report(args.out, results, labels, train_idx, val_idx, len(photos) - len(common))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
