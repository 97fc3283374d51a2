"""Does the Train page's time estimate hold? Estimated range against measured wall time, quiet and loaded.

    python bench/estimate_accuracy.py [--epochs 3] [--image-size 128] [--burners 2] [--out FILE]

For feature extraction, the last stage and the whole network (EfficientNet-Lite0 on 120 generated photos), the
range the page would show (core.training.estimate.likely_range, which reads the machine's load now) is compared
with the wall time of `python -m core train` (process start included, as a user waits for it). Then the same
with `--burners` busy processes started a minute earlier (the load average needs that long to see them). Prints
JSON (and writes --out).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from core.data import sample  # noqa: E402
from core.models import backbones  # noqa: E402
from core.training import estimate  # noqa: E402

BACKBONE = "efficientnet_lite0"


def one(data: Path, out: Path, frozen: int, epochs: int, size: int, speed, total: int) -> dict:
    num_train, num_val = 96, 24  # the default 20% validation share of 120 images
    point = estimate.for_settings(BACKBONE, size, frozen, "auto", num_train, num_val, epochs, speed, 2)
    fast, slow = estimate.likely_range(point)
    depth = "all" if frozen >= total else str(frozen)
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "core", "train", "--data", str(data), "--epochs", str(epochs),
                    "--image-size", str(size), "--freeze-depth", depth, "--early-stopping", "0",
                    "--out", str(out)], cwd=ROOT, check=True, capture_output=True)
    measured = time.perf_counter() - started
    return {"frozen": frozen, "point_s": round(point, 1), "range_s": [round(fast, 1), round(slow, 1)],
            "measured_s": round(measured, 1), "inside": fast <= measured <= slow,
            "measured_over_point": round(measured / point, 2), "busy_factor": round(estimate.busy_factor(), 2),
            "loadavg": os.getloadavg()}


def series(data: Path, work: Path, epochs: int, size: int) -> list[dict]:
    speed = estimate.device_speed("cpu")
    total = len(estimate.stage_flops(BACKBONE, backbones.preprocessing(BACKBONE, size).crop_size)) - 1
    return [one(data, work / f"runs-{frozen}", frozen, epochs, size, speed, total) for frozen in (total, total - 1, 0)]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--burners", type=int, default=2)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "estimate_accuracy-2core-cpu.json")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        data = sample.write_folder(work / "photos", per_class=40, size=160, seed=1)
        report = {"machine": f"{os.cpu_count()} CPU cores", "backbone": BACKBONE, "epochs": args.epochs,
                  "image_size": args.image_size, "quiet": series(data, work / "quiet", args.epochs, args.image_size)}
        burners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(args.burners)]
        try:
            time.sleep(65)  # the one-minute load average the estimate reads needs this long to see them
            report["loaded"] = series(data, work / "loaded", args.epochs, args.image_size)
        finally:
            for burner in burners:
                burner.kill()
    rows = report["quiet"] + report["loaded"]
    report["inside_range"] = f"{sum(r['inside'] for r in rows)} of {len(rows)}"
    text = json.dumps(report, indent=2)
    args.out.write_text(text + "\n", encoding="utf-8")
    print(text)


if __name__ == "__main__":
    main()
