"""`audit`, `cv` and `report`: check the labels, cross-validate, write a run's model card."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from core import paths
from core.i18n import _
from core.models import backbones
from core.training import config as cfg


def register(sub: argparse._SubParsersAction) -> None:
    for name, handler, text in (("audit", _audit, _("find probably wrong labels, outliers and near-duplicates (JSON)")),
                                ("cv", _cv, _("k-fold cross-validation of feature extraction (JSON)"))):
        p = sub.add_parser(name, help=text)
        p.add_argument("data")
        p.add_argument("--backbone", default=backbones.BUNDLED, choices=backbones.NAMES)
        p.add_argument("--folds", type=int, default=5)
        p.add_argument("--seed", type=int, default=0)
        p.add_argument("--image-size", type=int, default=None)
        p.add_argument("--weights", choices=cfg.WEIGHT_CHOICES, default="default")
        p.add_argument("--device", choices=cfg.DEVICES, default="auto")
        if name == "cv":
            p.add_argument("--freeze-depth", type=cfg.parse_freeze_depth, default=cfg.FREEZE_ALL)
        p.set_defaults(handler=handler)
    p = sub.add_parser("report", help=_("write a run's model card (self-contained HTML) into its folder"))
    p.add_argument("--run", required=True)
    p.set_defaults(handler=_report)


def _spec(args: argparse.Namespace):
    from core.insight.embeddings import FeatureSpec

    return FeatureSpec(args.backbone, args.weights, args.seed, args.image_size, args.device)


def _cache():
    from core.models.features import FeatureCache

    return FeatureCache(paths.home() / "feature-cache")


def _audit(args: argparse.Namespace) -> int:
    from core.data.archive import ArchiveRefused
    from core.insight.audit import AuditImpossible, audit

    try:
        result = audit(Path(args.data), _spec(args), args.folds, args.seed, paths.home(), _cache())
    except (AuditImpossible, ArchiveRefused) as error:
        print(_("The audit cannot run: {reason}").format(reason=error), file=sys.stderr)
        return 2
    print(json.dumps(result.to_json(), ensure_ascii=False, indent=2))
    return 0


def _cv(args: argparse.Namespace) -> int:
    from core.data.archive import ArchiveRefused
    from core.insight.audit import AuditImpossible
    from core.insight.crossval import cross_validate, fine_tuning_note

    if not cfg.TrainConfig(data=args.data, backbone=args.backbone, freeze_depth=args.freeze_depth).trains_head_only():
        print(json.dumps({"folds": args.folds, "done": False, "note": fine_tuning_note(args.folds, None)}))
        return 0
    try:
        result = cross_validate(Path(args.data), _spec(args), args.folds, args.seed, paths.home(), _cache())
    except (AuditImpossible, ArchiveRefused) as error:
        print(_("Cross-validation cannot run: {reason}").format(reason=error), file=sys.stderr)
        return 2
    print(json.dumps({**result.summary(), "done": True, "note": result.sentence()}, ensure_ascii=False, indent=2))
    return 0


def _report(args: argparse.Namespace) -> int:
    from core.serving.model_card import write_model_card

    path = write_model_card(Path(args.run))
    print(json.dumps({"path": str(path)}))
    return 0
