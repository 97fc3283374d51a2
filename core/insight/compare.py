"""'Compare for me': every backbone on this server, measured on the user's own images.

Each backbone costs one pass over the images (its frozen features go into the shared feature cache, so training it
afterwards, or comparing again, decodes nothing); both heads are then scored on those features by cross-validation
(core.insight.heads). The leaderboard gives accuracy with a 95% interval, macro-F1, the backbone's time per image
and its size; `recommend` picks the best, or the smallest whose interval overlaps the best's. It never raises: a
comparison that cannot run says why in one sentence, a backbone that cannot be measured is listed with its reason.
"""
from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Protocol

import numpy as np
import torch

from core.data.archive import ArchiveRefused
from core.data.datasets import inspect_data
from core.data.report import DataReport
from core.insight import heads
from core.insight.embeddings import FeatureSpec, dataset_features
from core.models import backbones
from core.models.features import FeatureCache
from core.training import devices

Progress = Callable[[dict[str, Any]], None]
TIMING_BATCH = 8  # images per timed forward pass


class StopSignal(Protocol):
    def is_set(self) -> bool: ...


class Cancelled(Exception):
    """The user stopped the comparison."""


@dataclass
class Comparison:
    rows: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[dict[str, str]] = field(default_factory=list)  # {"backbone", "reason"}
    refusal: str | None = None
    cancelled: bool = False
    method: str = ""
    images: int = 0
    classes: int = 0
    seconds: float = 0.0

    @property
    def recommendation(self) -> dict[str, Any] | None:
        return recommend(self.rows)

    def to_json(self) -> dict[str, Any]:
        return {"rows": self.rows, "skipped": self.skipped, "refusal": self.refusal, "cancelled": self.cancelled,
                "method": self.method, "images": self.images, "classes": self.classes,
                "seconds": round(self.seconds, 2), "recommendation": self.recommendation}


def available() -> list[str]:
    """The backbones whose weights are on this server (bundled, or copied/downloaded before): none is fetched."""
    return [name for name in backbones.NAMES if backbones.info(name).bundled or _on_disk(name)]


def _on_disk(name: str) -> bool:
    try:
        return backbones.weights_available(name)
    except Exception:  # a source that cannot even say (a broken install) counts as absent
        return False


def compare_backbones(data: Path, names: list[str] | None = None, folds: int = 5, seed: int = 0,
                      work_dir: Path | None = None, cache: FeatureCache | None = None,
                      stop: StopSignal | None = None, progress: Progress | None = None,
                      image_size: int | None = None, device: str = "auto") -> Comparison:
    """The leaderboard for `names` (default: every available backbone). Never raises."""
    started, result = time.perf_counter(), Comparison()
    try:
        report, records, targets = _checked_data(Path(data), work_dir, names, folds)
    except (ValueError, ArchiveRefused, OSError) as error:
        result.refusal = str(error) if isinstance(error, ValueError) else "This data could not be read."
        return result
    chosen = names or available()
    how = heads.plan(list(Counter(targets.tolist()).values()), folds)
    result.method, result.images, result.classes = how.words, len(records), len(report.labels)
    try:
        for step, name in enumerate(chosen):
            _measure(name, step, len(chosen), report, records, targets, how, result,
                     _Context(seed, work_dir, cache, stop, progress or (lambda _: None), image_size, device))
    except Cancelled:
        result.cancelled = True
    result.seconds = time.perf_counter() - started
    return result


@dataclass(frozen=True)
class _Context:
    seed: int
    work_dir: Path | None
    cache: FeatureCache | None
    stop: StopSignal | None
    progress: Progress
    image_size: int | None
    device: str

    def check(self) -> None:
        if self.stop is not None and self.stop.is_set():
            raise Cancelled()


def _checked_data(data: Path, work_dir: Path | None, names: list[str] | None,
                  folds: int) -> tuple[DataReport, list, np.ndarray]:
    """The labelled images and their class numbers; a ValueError with the sentence when it cannot work."""
    unknown = [n for n in names or [] if n not in backbones.NAMES]
    if unknown:
        raise ValueError(f"There is no backbone '{unknown[0]}'; choose from: {', '.join(backbones.NAMES)}.")
    if not 2 <= folds <= 20:
        raise ValueError(f"Cross-validation needs between 2 and 20 folds, not {folds}.")
    report = inspect_data(data, work_dir)
    if not report.trainable:
        raise ValueError(report.error or "This data cannot be compared on.")
    if report.task != "single":
        raise ValueError("The comparison measures classification (one label per image); this data has "
                         f"{'several labels' if report.task == 'multi' else 'numbers'} per image.")
    records = [r for r in report.images if r.split != "test"]
    counts = Counter(r.label for r in records)
    if len(counts) < 2:
        raise ValueError("The comparison needs at least two classes of images.")
    smallest = min(report.labels, key=lambda label: counts.get(label, 0))
    if counts.get(smallest, 0) < 2:
        raise ValueError(f"Every class needs at least 2 images so that one can be held out; '{smallest}' has "
                         f"{counts.get(smallest, 0)}.")
    index = {label: i for i, label in enumerate(report.labels)}
    return report, records, np.array([index[r.label] for r in records])


def _measure(name: str, step: int, steps: int, report: DataReport, records: list, targets: np.ndarray,
             how: heads.Plan, result: Comparison, ctx: _Context) -> None:
    """One backbone: its features (one pass, cached), both heads scored, its time per image; or why not."""
    ctx.check()
    info = backbones.info(name)
    if not (info.bundled or _on_disk(name)):
        result.skipped.append({"backbone": name, "reason": "Its pretrained weights are not on this server, and "
                               "the comparison never downloads any."})
        return
    say = lambda stage, **extra: ctx.progress({"stage": stage, "backbone": name, "step": step,  # noqa: E731
                                               "steps": steps, **extra})
    say("features", done=0, total=len(records))

    def on_features(_: str, done: int, total: int) -> None:
        ctx.check()  # raising here abandons the pass within one batch
        say("features", done=done, total=total)

    spec = FeatureSpec(name, "default", ctx.seed, ctx.image_size, ctx.device)
    try:
        features = dataset_features(report.root, records, report.labels, spec, ctx.cache, on_features)
        ctx.check()
        say("scoring")
        scores = heads.score_heads(features, targets, len(report.labels), how, ctx.seed)
        seconds = seconds_per_image(name, ctx.image_size, ctx.device)
    except Cancelled:
        raise
    except backbones.WeightsUnavailable:
        result.skipped.append({"backbone": name, "reason": "Its pretrained weights could not be loaded here."})
        return
    except Exception as error:  # one backbone's failure (memory, a damaged file) must not end the comparison
        result.skipped.append({"backbone": name, "reason": f"It could not be measured ({type(error).__name__})."})
        return
    head_params = features.shape[1] * len(report.labels) + len(report.labels)
    for score in scores:
        result.rows.append({"backbone": name, "title": info.title, **score.to_json(),
                            "seconds_per_image": round(seconds, 5), "params_m": info.params_m,
                            "head_params": head_params, "gflops": info.gflops})
    say("done")


def seconds_per_image(name: str, image_size: int | None = None, device: str = "auto") -> float:
    """The backbone's forward pass per image, batch of TIMING_BATCH at its input size, on this machine now (random
    weights and pixels: the speed is the same, and the pass does not depend on what is cached)."""
    accel = devices.resolve(device)
    size = backbones.preprocessing(name, image_size).crop_size
    model = backbones.build(name, 2, pretrained=False).to(accel.device).eval()
    x = torch.rand(TIMING_BATCH, 3, size, size, device=accel.device)
    with torch.inference_mode(), accel.autocast():
        model(x)  # the first pass allocates and picks kernels
        if accel.device.type == "cuda":
            torch.cuda.synchronize()
        started = time.perf_counter()
        model(x)
        if accel.device.type == "cuda":
            torch.cuda.synchronize()
    return (time.perf_counter() - started) / TIMING_BATCH


def recommend(rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The best row, or the smallest backbone whose interval overlaps the best's (with its better head), and why."""
    if not rows:
        return None
    best = max(rows, key=lambda r: (r["accuracy"], -r["params_m"], r["head"] == "linear"))
    within = [r for r in rows if r["accuracy_high"] >= best["accuracy_low"]]
    smallest = min(within, key=lambda r: (r["params_m"], r["gflops"]))["backbone"]
    pick = max((r for r in within if r["backbone"] == smallest), key=lambda r: (r["accuracy"], r["head"] == "linear"))
    return {"backbone": pick["backbone"], "head": pick["head"], "reason": _reason(pick, best)}


def _reason(pick: dict[str, Any], best: dict[str, Any]) -> str:
    said = lambda r: (f"{r['accuracy']:.0%} (95% interval {r['accuracy_low']:.0%} to "  # noqa: E731
                      f"{r['accuracy_high']:.0%})")
    if pick is best:
        return (f"{pick['title']} with the {pick['head']} head scored best: {said(pick)} of {pick['images']} images "
                f"by {pick['method']}.")
    return (f"{pick['title']} with the {pick['head']} head scored {said(pick)} against {said(best)} for the best, "
            f"{best['title']} with the {best['head']} head: {pick['images']} images cannot tell these apart, so the "
            f"smaller, faster backbone is preselected.")
