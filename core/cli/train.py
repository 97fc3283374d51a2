"""`train`: train a model headless and print its progress. Runs go through the same job manager as the app's."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from core import paths, tasks
from core.i18n import _, number
from core.models import backbones
from core.training import config as cfg
from core.training.events import EPOCH_END, RUN_STARTED, TERMINAL_KINDS

DEFAULTS = cfg.defaults()


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help=_("train a model; prints progress, then the run folder"))
    p.add_argument("--data", required=True)
    p.add_argument("--task", choices=tasks.NAMES, default=None,
                   help=_("what to learn: single (one label), multi (several labels), regression (a number); "
                        "default: what the data says (its metadata.csv column, or class folders: single)"))
    p.add_argument("--target", default="", metavar="COLUMN", help=_("the metadata column to learn (default: label, "
                   "labels or value)"))
    p.add_argument("--backbone", default=DEFAULTS["backbone"], choices=backbones.NAMES)
    p.add_argument("--freeze-depth", type=cfg.parse_freeze_depth, default=DEFAULTS["freeze_depth"],
                   help=_("stages to freeze: 0 = fine-tune everything, 'all' = feature extraction (default)"))
    p.add_argument("--strategy", choices=cfg.STRATEGIES, default=DEFAULTS["strategy"],
                   help="freeze: --freeze-depth says which stages retrain (default: feature extraction); adapters: "
                        "every pretrained weight stays as it is and small low-rank adapters (LoRA) train in the "
                        "last --adapter-stages stages, with the new head")
    p.add_argument("--adapter-rank", type=int, default=DEFAULTS["adapter_rank"],
                   help=f"with --strategy adapters: the rank of each adapter, {_range('adapter_rank')}")
    p.add_argument("--adapter-stages", type=int, default=DEFAULTS["adapter_stages"],
                   help=f"with --strategy adapters: how many of the last stages get adapters, {_range('adapter_stages')}")
    p.add_argument("--epochs", type=int, default=DEFAULTS["epochs"], help=_range("epochs"))
    p.add_argument("--lr", type=float, default=DEFAULTS["lr"], help=_("default: chosen from the freeze depth"))
    p.add_argument("--batch-size", type=int, default=DEFAULTS["batch_size"], help=_("images per step, per process"))
    p.add_argument("--optimizer", choices=cfg.OPTIMIZERS, default=DEFAULTS["optimizer"])
    p.add_argument("--augment", choices=cfg.AUGMENTATIONS, default=DEFAULTS["augment"])
    p.add_argument("--image-size", type=int, default=DEFAULTS["image_size"], help=_range("image_size"))
    p.add_argument("--val-split", type=float, default=DEFAULTS["val_split"], help=_range("val_split"))
    p.add_argument("--seed", type=int, default=DEFAULTS["seed"])
    p.add_argument("--device", choices=cfg.DEVICES, default=DEFAULTS["device"])
    p.add_argument("--weights", choices=cfg.WEIGHT_CHOICES, default=DEFAULTS["weights"],
                   help=_("'none' trains from random initialisation"))
    p.add_argument("--early-stopping", type=int, default=DEFAULTS["early_stopping"], help=_("patience in epochs; 0 = off"))
    p.add_argument("--two-stage", action="store_true", help=_("train the head first, then unfreeze"))
    p.add_argument("--augmented-views", type=int, default=DEFAULTS["augmented_views"],
                   help=_("{range}; with frozen stages and augmentation, the frozen stages' output for this many "
                          "augmented views per image is computed once and reused (0 = every epoch anew)").format(
                       range=_range("augmented_views")))
    p.add_argument("--head", choices=cfg.HEADS, default=DEFAULTS["head"],
                   help=_("prototype: each class the mean of its images' frozen features, no epochs (feature "
                          "extraction, one label per image; `compare` measures whether it beats the linear head)"))
    p.add_argument("--out", default="runs")
    p.set_defaults(handler=_train)


def _range(name: str) -> str:
    low, high = cfg.RANGES[name]
    return _("{low} to {high}").format(low=f"{low:g}", high=f"{high:g}")


def _train(args: argparse.Namespace) -> int:
    from core.runs import launcher
    from core.runs.jobs import JobManager
    from core.training import distributed

    config = _config(args)
    if distributed.is_distributed():  # launched by torchrun: every process trains its share (DDP)
        return launcher.train(config, Path(args.out))
    backbones.preprocessing(config.backbone, config.image_size)  # fail now on an impossible size
    manager = JobManager(paths.home())
    job = manager.submit(config, Path(args.out))
    return _follow(manager, job)


def _config(args: argparse.Namespace) -> cfg.TrainConfig:
    if not Path(args.data).exists():
        raise FileNotFoundError(_("there is no file or folder {path}").format(path=args.data))
    from core.data.datasets import inspect_data

    task = args.task or inspect_data(Path(args.data), paths.home(), target=args.target or None).task
    return cfg.TrainConfig(
        data=str(Path(args.data).resolve()), task=task, target=args.target, backbone=args.backbone,
        freeze_depth=args.freeze_depth, strategy=args.strategy, adapter_rank=args.adapter_rank,
        adapter_stages=args.adapter_stages,
        epochs=args.epochs, lr=args.lr, batch_size=args.batch_size, optimizer=args.optimizer, augment=args.augment,
        image_size=args.image_size, val_split=args.val_split, seed=args.seed, device=args.device,
        weights=args.weights, early_stopping=args.early_stopping, two_stage=args.two_stage,
        augmented_views=args.augmented_views, head=args.head, data_name=Path(args.data).name)


def _follow(manager, job) -> int:
    """Print the run's events as its training process writes them; Ctrl-C cancels it (within one batch)."""
    from core.training.progress import RunProgress

    tail, progress = job.run.tail(), RunProgress()
    try:
        while not job.wait(0.3):
            _print_new(tail.read(), progress)
    except KeyboardInterrupt:
        print(_("cancelling..."), file=sys.stderr)
        manager.cancel(job.id)
        job.wait()
    _print_new(tail.read_to_end(), progress)
    status = job.run.status()
    shown = ("state", "message", "task", "metrics", "val_accuracy", "macro_f1", "best_epoch", "elapsed_s")
    print(json.dumps({"run": str(job.run_dir), **{k: status.get(k) for k in shown}}))
    return {"finished": 0, "cancelled": 130}.get(job.state, 1)


def _print_new(records: list[dict], progress) -> None:
    progress.add(records)
    for record in records:
        _print_event(record["event"], record, progress.summary("running").text())


def _how(started: dict) -> str:
    if started.get("strategy") == "adapters":
        return (f"every pretrained weight kept, adapters of rank {started['adapter_rank']} in "
                f"{', '.join(started['adapted_stages'])}")
    return f"{started['frozen_stages']}/{started['total_stages']} stages frozen"


def _print_event(kind: str, data: dict, where: str) -> None:
    if kind == RUN_STARTED:
        print(_("training {backbone} on {device}: {train} train / {val} val images, {classes} classes, {how}, "
                "{trainable} trainable parameters").format(
            backbone=data["backbone"], device=data["device"], train=data["num_train"], val=data["num_val"],
            classes=len(data["classes"]), how=_how(data), trainable=number(data["trainable_params"])), file=sys.stderr)
    elif kind == EPOCH_END:
        print(_("epoch {epoch}/{epochs}: loss {loss} acc {accuracy} | val loss {val_loss} acc {val_accuracy} | "
                "{where}").format(epoch=data["epoch"], epochs=data["epochs"], loss=f"{data['train_loss']:.4f}",
                                  accuracy=f"{data['train_accuracy']:.3f}", val_loss=f"{data['val_loss']:.4f}",
                                  val_accuracy=f"{data['val_accuracy']:.3f}", where=where), file=sys.stderr)
    elif kind in TERMINAL_KINDS:
        print(data.get("message", kind), file=sys.stderr)
        if data.get("details"):
            print(data["details"], file=sys.stderr)
