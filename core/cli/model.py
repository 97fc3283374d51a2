"""`predict` and `export`: use a finished run."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from core.i18n import _


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(_("must be 1 or more"))
    return value


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("predict", help=_("top-k predictions of a trained run, one JSON line per image"))
    p.add_argument("--run", required=True)
    p.add_argument("images", nargs="+")
    p.add_argument("--top-k", type=positive_int, default=3)
    p.add_argument("--coverage", type=float, default=None,
                   help=_("how often a score's interval (or a class answer's set) must hold the truth, e.g. 0.9 "
                        "(default: the run's 90%%)"))
    p.set_defaults(handler=_predict)
    p = sub.add_parser("export", help=_("write a run's TorchScript bundle (zip)"))
    p.add_argument("--run", required=True)
    p.add_argument("--out", default=None)
    p.set_defaults(handler=_export)


def _predict(args: argparse.Namespace) -> int:
    """One image at a time: a bad image is reported on its own line and the rest are still predicted."""
    from core.data.preprocessing import ImageRejected
    from core.serving.inference import Predictor

    predictor = Predictor(Path(args.run))
    failed = 0
    for image in args.images:
        try:
            (details,) = predictor.predict_details([image], top_k=args.top_k, coverage=args.coverage)
        except ImageRejected as error:
            failed += 1
            print(json.dumps({"image": image, "error": str(error)}, ensure_ascii=False))
            print(_("skipped {reason}").format(reason=error), file=sys.stderr)
            continue
        answer = details.to_json()  # top_k plus "unsure", "unknown", "ood_score"
        print(json.dumps({"image": image, "top_k": answer.pop("predictions"), **answer}, ensure_ascii=False), flush=True)
    return 1 if failed else 0


def _export(args: argparse.Namespace) -> int:
    from core.serving.export import export_bundle

    result = export_bundle(Path(args.run), Path(args.out) if args.out else None)
    print(json.dumps({"path": str(result.path), "verified": result.verified, "note": result.note}))
    return 0 if result.verified else 1
