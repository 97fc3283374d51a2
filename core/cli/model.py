"""`predict` and `export`: use a finished run."""
from __future__ import annotations

import argparse
import json
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("predict", help="top-k predictions of a trained run, one JSON line per image")
    p.add_argument("--run", required=True)
    p.add_argument("images", nargs="+")
    p.add_argument("--top-k", type=int, default=3)
    p.set_defaults(handler=_predict)
    p = sub.add_parser("export", help="write a run's TorchScript bundle (zip)")
    p.add_argument("--run", required=True)
    p.add_argument("--out", default=None)
    p.set_defaults(handler=_export)


def _predict(args: argparse.Namespace) -> int:
    from core.serving.inference import Predictor

    predictor = Predictor(Path(args.run))
    for image, details in zip(args.images, predictor.predict_details(args.images, top_k=args.top_k)):
        answer = details.to_json()  # top_k plus "unsure", "unknown", "ood_score"
        print(json.dumps({"image": image, "top_k": answer.pop("predictions"), **answer}, ensure_ascii=False))
    return 0


def _export(args: argparse.Namespace) -> int:
    from core.serving.export import export_bundle

    result = export_bundle(Path(args.run), Path(args.out) if args.out else None)
    print(json.dumps({"path": str(result.path), "verified": result.verified, "note": result.note}))
    return 0 if result.verified else 1
