"""Tags and scores on real photos: does TransferLab's feature extraction match a plain linear probe on the same
frozen features, do its 90% intervals hold 85-95% of new values, and what does each task cost next to one label?

    python bench/tasks_small_data.py [--zip PATH] [--seeds 3] [--epochs 10] [--out FILE]

Data of our own making from the ants/bees photos of PyTorch's tutorial (read from ../shared/data/hymenoptera.zip,
never copied into the repository): *tags*: two photos side by side, tagged with what they show (ant, bee, or both);
*scores*: one photo zoomed in by a known factor (the value to predict: 1.0 to 3.0, how much of the picture is
shown). Each set is split into train / validation / test; TransferLab trains on train (feature extraction, the
default backbone), calibrates on validation, and is judged on test. The linear probe (one-vs-rest logistic
regression for tags, ridge regression for scores, scikit-learn defaults with standardised features) is fitted on
the same frozen pooled features of the same train images. Single-label (ants vs bees, on the photos the tags use)
gives the time to compare with. Prints JSON (and writes --out).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import sys
import tempfile
import threading
import time
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402
from sklearn.linear_model import LogisticRegression, Ridge  # noqa: E402
from sklearn.metrics import f1_score, mean_absolute_error  # noqa: E402
from sklearn.multiclass import OneVsRestClassifier  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402

from core.data.preprocessing import ImageRejected, load_rgb  # noqa: E402
from core.insight.embeddings import FeatureSpec, dataset_features  # noqa: E402
from core.runs import folder as runs  # noqa: E402
from core.runs import pipeline  # noqa: E402
from core.serving.inference import Predictor  # noqa: E402
from core.training.config import TrainConfig  # noqa: E402
from core.training.data import prepare  # noqa: E402
from core.training.events import EventLog  # noqa: E402

DEFAULT_ZIP = ROOT.parent / "shared" / "data" / "hymenoptera.zip"
SIZE = 256


def photos(archive: Path) -> list[tuple[str, Image.Image]]:
    found = []
    with zipfile.ZipFile(archive) as z:
        for info in sorted(z.infolist(), key=lambda i: i.filename):
            parts = info.filename.split("/")
            if len(parts) == 4 and parts[2] in ("ants", "bees") and not info.is_dir():
                try:
                    image = load_rgb(z.open(info), min_size=SIZE)
                except ImageRejected:
                    continue
                found.append((parts[2][:-1], image.resize((SIZE, SIZE))))
    return found


def _write(folder: Path, split: str, rows: list[tuple[str, Image.Image, str]], column: str) -> None:
    (folder / split).mkdir(parents=True, exist_ok=True)
    lines = [f"file_name,{column}"]
    for name, image, target in rows:
        image.save(folder / split / name, quality=92)
        lines.append(f"{name},{target}")
    (folder / split / "metadata.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")


def make_sets(pictures: list, folder: Path, seed: int) -> dict[str, Path]:
    """tags/, scores/ and single/ (class folders), each with train/ val/ test/."""
    rng = random.Random(seed)
    order = pictures[:]
    rng.shuffle(order)
    parts = {"train": order[: len(order) // 2], "val": order[len(order) // 2: 3 * len(order) // 4],
             "test": order[3 * len(order) // 4:]}
    for split, members in parts.items():
        tags, scores = [], []
        for i, (label, image) in enumerate(members):
            other_label, other = rng.choice(members)
            pair = Image.new("RGB", (SIZE * 2, SIZE))
            pair.paste(image, (0, 0))
            pair.paste(other, (SIZE, 0))
            tags.append((f"pair_{i:03d}.jpg", pair, ";".join(sorted({label, other_label}))))
            zoom = rng.uniform(1.0, 3.0)
            side = SIZE / zoom
            box = (rng.uniform(0, SIZE - side), rng.uniform(0, SIZE - side))
            zoomed = image.crop((*box, box[0] + side, box[1] + side)).resize((SIZE, SIZE))
            scores.append((f"zoom_{i:03d}.jpg", zoomed, f"{zoom:.3f}"))
            (folder / "single" / split / label).mkdir(parents=True, exist_ok=True)
            image.save(folder / "single" / split / label / f"{i:03d}.jpg", quality=92)
        _write(folder / "tags", split, tags, "labels")
        _write(folder / "scores", split, scores, "value")
    return {"tags": folder / "tags", "scores": folder / "scores", "single": folder / "single"}


def train(data: Path, task: str, epochs: int, work: Path) -> tuple[runs.Run, float]:
    config = TrainConfig(data=str(data), task=task, epochs=epochs, early_stopping=0)
    run = runs.create(work / "runs", config)
    started = time.perf_counter()
    state = pipeline.execute(config, run.path, EventLog(run.metrics_file), threading.Event(), work)
    assert state == "finished", run.status()
    return run, time.perf_counter() - started


def test_records(data: Path, task: str) -> tuple[list[Path], list]:
    lines = (data / "test" / "metadata.csv").read_text(encoding="utf-8").splitlines()[1:]
    rows = [line.split(",", 1) for line in lines]
    targets = [r[1].split(";") if task == "multi" else float(r[1]) for r in rows]
    return [data / "test" / r[0] for r in rows], targets


def probe(data: Path, task: str, work: Path) -> tuple[np.ndarray, np.ndarray, object]:
    """The same frozen features as feature extraction trains on (the default backbone's pooled output)."""
    config = TrainConfig(data=str(data), task=task)
    split = prepare(config, work)
    feats = {p: dataset_features(split.root, records, split.labels, FeatureSpec()) for p, records in
             (("train", split.train), ("val", split.val))}
    return feats["train"], feats["val"], split


def measure_tags(sets: dict, epochs: int, work: Path) -> dict:
    run, seconds = train(sets["tags"], "multi", epochs, work)
    images, truth = test_records(sets["tags"], "multi")
    predictor = Predictor(run.path)
    labels = predictor.labels
    answers = [set(p.extra["labels"]) for p in predictor.predict_details(images)]
    y_true = np.array([[label in t for label in labels] for t in truth])
    ours = np.array([[label in a for label in labels] for a in answers])
    train_x, _, split = probe(sets["tags"], "multi", work)
    y_train = np.array([[label in r.labels for label in labels] for r in split.train])
    head = make_pipeline(StandardScaler(), OneVsRestClassifier(LogisticRegression(max_iter=2000))).fit(train_x, y_train)
    test_x = _features_of(images, labels)
    baseline = head.predict(test_x).astype(bool)
    return {"transferlab_micro_f1": float(f1_score(y_true, ours, average="micro")),
            "probe_micro_f1": float(f1_score(y_true, baseline, average="micro")),
            "transferlab_macro_f1": float(f1_score(y_true, ours, average="macro")),
            "probe_macro_f1": float(f1_score(y_true, baseline, average="macro")),
            "train_s": round(seconds, 2), "test_images": len(images)}


def measure_scores(sets: dict, epochs: int, work: Path) -> dict:
    run, seconds = train(sets["scores"], "regression", epochs, work)
    images, truth = test_records(sets["scores"], "regression")
    answers = [p.extra for p in Predictor(run.path).predict_details(images)]
    values = np.array([a["value"] for a in answers])
    covered = [a["interval"][0] <= t <= a["interval"][1] for a, t in zip(answers, truth) if a.get("interval")]
    train_x, _, split = probe(sets["scores"], "regression", work)
    head = make_pipeline(StandardScaler(), Ridge()).fit(train_x, [r.value for r in split.train])
    baseline = head.predict(_features_of(images, []))
    return {"transferlab_mae": float(mean_absolute_error(truth, values)),
            "probe_mae": float(mean_absolute_error(truth, baseline)),
            "interval_coverage_on_test": float(np.mean(covered)) if covered else None,
            "promised_coverage": 0.9, "train_s": round(seconds, 2), "test_images": len(images)}


def _features_of(images: list[Path], labels: list[str]) -> np.ndarray:
    from core.data.report import ImageRecord

    records = [ImageRecord(p.name, "x", None, f"{i:064d}", 1, 1) for i, p in enumerate(images)]
    return dataset_features(images[0].parent, records, labels or ["x"], FeatureSpec())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--zip", type=Path, default=DEFAULT_ZIP)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "tasks_small_data-2core-cpu.json")
    args = parser.parse_args()
    pictures = photos(args.zip)
    report = {"machine": f"{os.cpu_count()} CPU cores, {platform.machine()}", "photos": len(pictures),
              "load_average_before": os.getloadavg(), "seeds": []}
    for seed in range(args.seeds):
        work = Path(tempfile.mkdtemp())
        try:
            sets = make_sets(pictures, work / "data", seed)
            _, single_s = train(sets["single"], "single", args.epochs, work)
            report["seeds"].append({"seed": seed, "single_label_train_s": round(single_s, 2),
                                    "tags": measure_tags(sets, args.epochs, work),
                                    "scores": measure_scores(sets, args.epochs, work)})
            print(json.dumps(report["seeds"][-1]), file=sys.stderr, flush=True)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    report["load_average_after"] = os.getloadavg()
    print(json.dumps(report, indent=2))
    args.out.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
