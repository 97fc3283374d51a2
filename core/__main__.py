"""TransferLab headless: python -m core inspect|backbones|train|predict|export ..."""
from __future__ import annotations

import argparse
import json
import sys
import threading
from pathlib import Path

from core import backbones, config as cfg, paths


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return args.handler(args)
    except (cfg.ConfigError, ValueError, FileNotFoundError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


def _inspect(args: argparse.Namespace) -> int:
    from core.archive import ArchiveRefused
    from core.datasets import inspect

    try:
        report = inspect(Path(args.data), paths.home())
    except ArchiveRefused as error:
        print(json.dumps({"trainable": False, "error": str(error)}, ensure_ascii=False))
        print(str(error), file=sys.stderr)
        return 2
    print(json.dumps(report.to_json(), ensure_ascii=False, indent=2))
    if not report.trainable:
        print(report.error, file=sys.stderr)
        return 2
    return 0


def _backbones(args: argparse.Namespace) -> int:
    rows = [("name", "params (M)", "GFLOPs", "ImageNet top-1", "input", "weights")]
    for b in backbones.catalogue():
        where = "bundled" if b.bundled else ("on disk" if backbones.weights_available(b.name) else "download")
        rows.append((b.name, f"{b.params_m}", f"{b.gflops}", f"{b.imagenet_top1:.1f}", f"{b.input_size}", where))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths)))
    return 0


def _train(args: argparse.Namespace) -> int:
    from core import runner, runs
    from core.events import EventLog
    from core.features import FeatureCache

    config = cfg.TrainConfig(
        data=str(Path(args.data).resolve()), backbone=args.backbone, freeze_depth=args.freeze_depth,
        epochs=args.epochs, lr=args.lr, batch_size=args.batch_size, optimizer=args.optimizer, augment=args.augment,
        image_size=args.image_size, val_split=args.val_split, seed=args.seed, device=args.device,
        weights=args.weights, early_stopping=args.early_stopping, two_stage=args.two_stage,
        data_name=Path(args.data).name)
    backbones.preprocessing(config.backbone, config.image_size)  # fail now on an impossible size
    run_dir = runs.create(Path(args.out), config)
    events, stop = EventLog(run_dir / "metrics.jsonl"), threading.Event()
    outcome: list[str] = []
    home = paths.home()
    worker = threading.Thread(target=lambda: outcome.append(
        runner.execute(config, run_dir, events, stop, home, FeatureCache(home / "feature-cache"))))
    worker.start()
    cursor = 0
    try:
        while worker.is_alive() or cursor < len(events):
            worker.join(0.2)
            new, cursor = events.since(cursor)
            for event in new:
                _print_event(event.kind, event.data)
    except KeyboardInterrupt:
        print("cancelling...", file=sys.stderr)
        stop.set()
        worker.join()
    status = runs.read_status(run_dir)
    print(json.dumps({"run": str(run_dir), **{k: status.get(k) for k in ("state", "message", "val_accuracy",
                                                                         "macro_f1", "best_epoch", "elapsed_s")}}))
    return {"finished": 0, "cancelled": 130}.get(outcome[0] if outcome else "cancelled", 1)


def _print_event(kind: str, data: dict) -> None:
    if kind == "run_started":
        print(f"training {data['backbone']} on {data['device']}: {data['num_train']} train / {data['num_val']} val "
              f"images, {len(data['classes'])} classes, {data['frozen_stages']}/{data['total_stages']} stages frozen",
              file=sys.stderr)
    elif kind == "epoch_end":
        print(f"epoch {data['epoch']}/{data['epochs']}: loss {data['train_loss']:.4f} acc {data['train_accuracy']:.3f}"
              f" | val loss {data['val_loss']:.4f} acc {data['val_accuracy']:.3f} | {data['images_per_s']:.0f} img/s",
              file=sys.stderr)
    elif kind in ("run_failed", "run_cancelled", "run_finished"):
        print(data.get("message", kind), file=sys.stderr)
        if data.get("details"):
            print(data["details"], file=sys.stderr)


def _predict(args: argparse.Namespace) -> int:
    from core.inference import Predictor

    predictor = Predictor(Path(args.run))
    for image, top in zip(args.images, predictor.predict(args.images, top_k=args.top_k)):
        print(json.dumps({"image": image, "top_k": top}, ensure_ascii=False))
    return 0


def _export(args: argparse.Namespace) -> int:
    from core.export import export_bundle

    result = export_bundle(Path(args.run), Path(args.out) if args.out else None)
    print(json.dumps({"path": str(result.path), "verified": result.verified, "note": result.note}))
    return 0 if result.verified else 1


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m core", description="TransferLab, headless.")
    sub = parser.add_subparsers(required=True, metavar="command")
    p = sub.add_parser("inspect", help="check a dataset (.zip or folder) and print its report as JSON")
    p.add_argument("data")
    p.set_defaults(handler=_inspect)
    sub.add_parser("backbones", help="list the backbones").set_defaults(handler=_backbones)
    p = sub.add_parser("train", help="train a model; prints progress, then the run folder")
    p.add_argument("--data", required=True)
    p.add_argument("--backbone", default=backbones.BUNDLED, choices=backbones.NAMES)
    p.add_argument("--freeze-depth", type=cfg.parse_freeze_depth, default=cfg.FREEZE_ALL,
                   help="stages to freeze: 0 = fine-tune everything, 'all' = feature extraction (default)")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--lr", type=float, default=None, help="default: chosen from the freeze depth")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--optimizer", choices=cfg.OPTIMIZERS, default="adamw")
    p.add_argument("--augment", choices=cfg.AUGMENTATIONS, default="auto")
    p.add_argument("--image-size", type=int, default=None)
    p.add_argument("--val-split", type=float, default=0.2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", choices=cfg.DEVICES, default="auto")
    p.add_argument("--weights", choices=cfg.WEIGHT_CHOICES, default="default",
                   help="'none' trains from random initialisation")
    p.add_argument("--early-stopping", type=int, default=3, help="patience in epochs; 0 = off")
    p.add_argument("--two-stage", action="store_true", help="train the head first, then unfreeze")
    p.add_argument("--out", default="runs")
    p.set_defaults(handler=_train)
    p = sub.add_parser("predict", help="top-k predictions of a trained run, one JSON line per image")
    p.add_argument("--run", required=True)
    p.add_argument("images", nargs="+")
    p.add_argument("--top-k", type=int, default=3)
    p.set_defaults(handler=_predict)
    p = sub.add_parser("export", help="write a run's TorchScript bundle (zip)")
    p.add_argument("--run", required=True)
    p.add_argument("--out", default=None)
    p.set_defaults(handler=_export)
    return parser


if __name__ == "__main__":
    sys.exit(main())
