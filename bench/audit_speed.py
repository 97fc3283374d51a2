"""How much the trust loop costs on top of training: the label audit and one Grad-CAM heatmap.

    python bench/audit_speed.py [--images 400] [--threads 2] [--heatmaps 10] [--out bench/results/NAME.json]

Targets (issue 8): the audit of 400 images with cached features adds at most 5 s to feature extraction on
2 CPU cores; one Grad-CAM takes under 300 ms per image for the default backbone on CPU. Prints one JSON object.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import core  # noqa: E402, F401  (first: it makes OpenMP threads sleep while they wait, as in the app)

# isort: split
import torch  # noqa: E402

from core.data import sample  # noqa: E402
from core.insight.audit import audit  # noqa: E402
from core.insight.embeddings import FeatureSpec, dataset_features  # noqa: E402
from core.insight.explain import explain  # noqa: E402
from core.models import backbones  # noqa: E402
from core.models.features import FeatureCache  # noqa: E402


def time_audit(folder: Path, work: Path, spec: FeatureSpec) -> dict:
    from core.data.datasets import inspect_data

    report = inspect_data(folder, work)
    cache = FeatureCache(work / "cache")
    started = time.perf_counter()
    dataset_features(report.root, report.images, report.labels, spec, cache)  # what training's extraction costs
    extraction = time.perf_counter() - started
    started = time.perf_counter()
    result = audit(folder, spec, folds=5, seed=0, work_dir=work, cache=cache)
    added = time.perf_counter() - started
    return {"images": len(report.images), "feature_extraction_s": round(extraction, 2),
            "audit_with_cached_features_s": round(added, 2), "label_issues": len(result.flagged),
            "target_s": 5.0, "meets_target": added <= 5.0}


def time_heatmaps(count: int) -> dict:
    model = backbones.build(backbones.BUNDLED, 3, pretrained=True).eval()
    prep = backbones.preprocessing(backbones.BUNDLED)
    pictures = [prep.to_uint8(sample.draw("circle", __import__("random").Random(i), 256)) for i in range(count + 2)]
    for picture in pictures[:2]:  # warm-up: first calls allocate and pick kernels
        explain(model, prep, picture)
    times = []
    for picture in pictures[2:]:
        started = time.perf_counter()
        explain(model, prep, picture)
        times.append((time.perf_counter() - started) * 1000)
    return {"backbone": backbones.BUNDLED, "input_px": prep.crop_size, "median_ms": round(statistics.median(times), 1),
            "max_ms": round(max(times), 1), "target_ms": 300, "meets_target": statistics.median(times) < 300}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=400)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--heatmaps", type=int, default=10)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        folder = sample.write_folder(Path(tmp) / "data", per_class=-(-args.images // 3), size=256, seed=11)
        result = {"audit": time_audit(folder, Path(tmp) / "work", FeatureSpec(device="cpu")),
                  "gradcam": time_heatmaps(args.heatmaps)}
    result["machine"] = {"torch_threads": torch.get_num_threads(), "cpus": os.cpu_count(),
                         "load_average": [round(x, 2) for x in os.getloadavg()], "device": "cpu"}
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
