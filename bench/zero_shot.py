"""Zero-shot and text-started few-shot accuracy of the CLIP-family backbones, where their weights exist.

    python bench/zero_shot.py --data DIR_OR_ZIP [--shots 1 5] [--repeats 10] [--templates "a photo of a {}."]

Needs the real weights in the Hugging Face hub cache (HF_HOME): the image tower (timm/<tag>/model.safetensors)
and the text tower (open_clip_config.json + open_clip weights of the entry's text_tower repository). This
machine has neither: then it prints, and saves, which files are missing, and no numbers.

For each backbone with both towers, on a labelled folder (class subfolders, names = the class names):
  - zero-shot accuracy with its Wilson 95% interval, and milliseconds per image for the image embedding;
  - `agreement`: the cosine between the registry's image embedding and open_clip's own encode_image on the first
    images (the registry's tower is what trains and serves; 1.0 means they are the same network);
  - k-shot (k in --shots) accuracy on the rest, the head trained on k images a class from the text head
    (head_init="text") and from a random head, as the training loop does for feature extraction (AdamW on the
    unit-length embedding), mean and min/max over --repeats draws.
Prints one JSON object, saved as bench/results/zero_shot-<data>.json.
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

import numpy as np
import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from core.data import intake  # noqa: E402
from core.data.store import DatasetStore  # noqa: E402
from core.labelling import zero_shot as prelabelling  # noqa: E402
from core.models import backbones  # noqa: E402
from core.models.features import FeatureCache  # noqa: E402
from core.models.zero_shot import classifier, text_tower  # noqa: E402
from core.stats.intervals import wilson  # noqa: E402

EPOCHS, LR = 30, 3e-3  # the training loop's head-only default learning rate


def missing(name: str) -> list[str]:
    found = []
    if not backbones.weights_available(name):
        found.append(backbones.missing_message(name))
    if not text_tower.available(name):
        found.append(text_tower.missing_message(text_tower.repo_for(name)))
    return found


def train_head(start: torch.nn.Linear, x: torch.Tensor, y: torch.Tensor) -> torch.nn.Linear:
    head = torch.nn.Linear(start.in_features, start.out_features)
    head.load_state_dict(start.state_dict())
    optimizer = torch.optim.AdamW(head.parameters(), lr=LR, weight_decay=1e-4)
    for _ in range(EPOCHS):
        optimizer.zero_grad()
        F.cross_entropy(head(F.normalize(x, dim=-1)), y).backward()
        optimizer.step()
    return head


def few_shot(head: classifier.TextHead, x: torch.Tensor, y: torch.Tensor, shots: int, repeats: int) -> dict:
    results: dict[str, list[float]] = {"text_start": [], "random_start": []}
    for seed in range(repeats):
        rng = np.random.default_rng(seed)
        chosen = np.concatenate([rng.permutation(np.flatnonzero(y.numpy() == c))[:shots]
                                 for c in range(len(head.labels))])
        rest = np.setdiff1d(np.arange(len(y)), chosen)
        torch.manual_seed(seed)
        for kind, start in (("text_start", head.linear()), ("random_start", torch.nn.Linear(*head.linear().weight.T.shape))):
            trained = train_head(start, x[chosen], y[chosen])
            with torch.no_grad():
                accuracy = float((trained(F.normalize(x[rest], dim=-1)).argmax(1) == y[rest]).float().mean())
            results[kind].append(accuracy)
    return {kind: {"mean": round(float(np.mean(v)), 4), "min": round(min(v), 4), "max": round(max(v), 4)}
            for kind, v in results.items()}


def agreement(name: str, store: DatasetStore, digests: list[str], ours: torch.Tensor) -> float:
    """Cosine between the registry tower's embedding and open_clip's own encode_image (same images)."""
    import open_clip

    folder = text_tower.snapshot(text_tower.repo_for(name))
    model, preprocess = open_clip.create_model_from_pretrained(f"local-dir:{folder}")
    from PIL import Image

    with torch.no_grad():
        theirs = model.eval().encode_image(torch.stack([preprocess(Image.open(store.object_path(d)).convert("RGB"))
                                                        for d in digests]))
    return round(float(F.cosine_similarity(theirs.float(), ours.float(), dim=-1).mean()), 4)


def measure(name: str, data: Path, work: Path, args: argparse.Namespace) -> dict:
    store = DatasetStore(work / "datasets")
    version = intake.import_labelled(store, data, data.stem, work).version
    digests = sorted(version.images)
    classes = sorted({version.images[d]["label"] for d in digests})
    y = torch.tensor([classes.index(version.images[d]["label"]) for d in digests])
    started = time.perf_counter()
    x = prelabelling.embed(store, digests, FeatureCache(None), name)
    ms_per_image = 1000 * (time.perf_counter() - started) / len(digests)
    head = classifier.text_head(name, classes, args.templates)
    correct = int((head.probabilities(x).argmax(1) == y).sum())
    return {"backbone": name, "images": len(digests), "classes": len(classes), "templates": list(head.templates),
            "zero_shot_accuracy": round(correct / len(digests), 4),
            "zero_shot_interval": [round(v, 4) for v in wilson(correct, len(digests))],
            "ms_per_image": round(ms_per_image, 1), "agreement": agreement(name, store, digests[:8], x[:8]),
            "few_shot": {str(k): few_shot(head, x, y, k, args.repeats) for k in args.shots}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--shots", type=int, nargs="+", default=[1, 5])
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--templates", nargs="*", default=None)
    args = parser.parse_args()
    result: dict = {"data": args.data.name, "machine": f"{platform.machine()}, {os.cpu_count()} cores, "
                    f"{platform.python_version()}", "backbones": [], "not_measured": {}}
    for name in text_tower.backbones_with_text():
        if missing(name):
            result["not_measured"][name] = missing(name)
            continue
        with tempfile.TemporaryDirectory() as work:
            result["backbones"].append(measure(name, args.data, Path(work), args))
    if not result["backbones"]:
        result["status"] = "No CLIP-family weights on this computer: nothing was measured (see not_measured)."
    print(json.dumps(result, indent=2))
    out = ROOT / "bench" / "results" / f"zero_shot-{args.data.stem}.json"
    out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
