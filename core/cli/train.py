"""`train`: train a model headless and print its progress."""
from __future__ import annotations

import argparse
import json
import sys
import threading
from pathlib import Path

from core import paths
from core.models import backbones
from core.training import config as cfg


def register(sub: argparse._SubParsersAction) -> None:
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


def _train(args: argparse.Namespace) -> int:
    from core.training import ddp, distributed
    if distributed.is_distributed():  # launched by torchrun: every process trains its share (DDP)
        return ddp.train(args)
    from core.models.features import FeatureCache
    from core.training import runner, runs
    from core.training.events import EventLog

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
