"""Predict with a TransferLab model. Needs only torch, torchvision and Pillow.

    python predict.py photo1.jpg photo2.png [--top-k 3]

Prints one JSON object per image, as `python -m core predict` does: {"image": ..., "top_k": [{"label": ...,
"probability": ...}, ...], "unsure": true/false, "unknown": true/false, "ood_score": ...}, answering as the run's
task does (calibration.json names it). One label per image: probabilities calibrated with the stored temperature,
"unsure" when the top one is below the threshold chosen on validation ("not sure: refer to a person"), and "set":
the classes the truth is among at the stored coverage. Tags: "labels", every label at or above its own threshold.
A score: "value" and its "interval" at the stored "coverage". "unknown" means the image is unlike every training image: its
mean cosine distance to the k most similar training images (ood_reference.pt, in the embedding the model's last
layer reads) is above the run's threshold. An image that cannot be read is reported as {"image": ..., "error": ...}
and the next one is processed. The preprocessing below is TransferLab's own, so answers match the app's.
"""
import argparse
import json
import sys
import warnings
from pathlib import Path

import numpy as np
import torch
import torchvision.transforms.functional as TF
from PIL import Image, ImageOps

HERE = Path(__file__).resolve().parent


# As in TransferLab: beyond this ratio of the longer to the shorter side the model would see a sliver of the image.
MAX_ASPECT_RATIO = 20
UNSURE_BAND = 0.1  # as in TransferLab: a tag this close to its threshold makes the whole answer "not sure"


def load_rgb(path, resize_size):
    image = Image.open(path)
    if max(image.size) > MAX_ASPECT_RATIO * max(1, min(image.size)):
        raise ValueError(f"too long and thin: one side is over {MAX_ASPECT_RATIO} times the other "
                         f"({image.size[0]}x{image.size[1]} pixels), and the model sees only a centre square")
    if image.format == "JPEG":
        image.draft("RGB", (resize_size, resize_size))  # TransferLab decodes JPEGs at reduced scale too
    image.load()
    image = ImageOps.exif_transpose(image)
    if image.mode.startswith("I") or image.mode == "F":
        values = np.asarray(image).astype(np.float64)
        if values.max() > 255 and values.min() >= 0 and values.max() <= 65535:
            values = np.round(values / 257.0)
        elif values.max() > 255 or values.min() < 0:
            values = np.round((values - values.min()) / max(values.max() - values.min(), 1e-12) * 255.0)
        image = Image.fromarray(values.astype(np.uint8), "L")
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in image.info:
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    return image.convert("RGB")


def bounded_resize(image, resize_size, crop_size, interpolation):
    """TransferLab's resize: the centre square of the image resized to `resize_size` on its shorter side, computed
    from that region of the input alone (a thin strip costs a small square, not a huge resize)."""
    width, height = image.size
    short, long = min(width, height), max(width, height)
    new_long = int(resize_size * long / short)
    new_width, new_height = (resize_size, new_long) if width <= height else (new_long, resize_size)
    side = max(resize_size, crop_size)
    box, size = [], []
    for new, old in ((new_width, width), (new_height, height)):
        keep = min(new, side)
        start = int(round((new - crop_size) / 2.0)) - int(round((keep - crop_size) / 2.0))
        scale = old / new
        box.append((start * scale, min(old, (start + keep) * scale)))
        size.append(keep)
    region = (box[0][0], box[1][0], box[0][1], box[1][1])
    return image.resize((size[0], size[1]), Image.Resampling[interpolation.upper()], box=region)


def preprocess(path, prep):
    image = load_rgb(path, prep["resize_size"])
    image = bounded_resize(image, prep["resize_size"], prep["crop_size"], prep["interpolation"])
    x = TF.pil_to_tensor(TF.center_crop(image, [prep["crop_size"]])).float() / 255.0
    return TF.normalize(x, prep["mean"], prep["std"])


def calibration():
    """What the run's answers need (its task, temperature and thresholds, interval widths); {} without the file."""
    path = HERE / "calibration.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}


def unknown_check():
    """(unit reference embeddings, k, threshold) of the "unknown input" check, or None when the run has none."""
    path, stored = HERE / "ood_reference.pt", HERE / "calibration.json"
    ood = (json.loads(stored.read_text(encoding="utf-8")) if stored.exists() else {}).get("ood") or {}
    if not path.exists() or ood.get("threshold") is None:
        return None
    reference = torch.load(str(path), map_location="cpu", weights_only=True).float()
    reference = reference / reference.norm(dim=1, keepdim=True).clamp_min(1e-12)
    k = max(1, min(int(ood.get("k", 5)), len(reference) - 1))
    return reference, k, float(ood["threshold"])


def ood_score(embedding, reference, k):
    """Mean cosine distance of one embedding to its k most similar reference embeddings (as TransferLab scores)."""
    unit = embedding.float() / embedding.float().norm().clamp_min(1e-12)
    return float((1.0 - reference @ unit).topk(k, largest=False).values.mean())


def one_label(answers, labels, top_k, stored):
    """Single-label: the exported model outputs probabilities; softmax(log p / T) equals softmax(logits / T)."""
    temperature, threshold = float(stored.get("temperature", 1.0)), float(stored.get("threshold", 0.0))
    probabilities = torch.softmax(torch.log(answers.clamp_min(1e-12)) / temperature, dim=0)
    values, indices = probabilities.topk(min(top_k, len(labels)))
    found = {"top_k": [{"label": labels[i], "probability": round(float(p), 6)} for p, i in zip(values, indices)],
             "unsure": bool(values[0] < threshold)}
    quantile = stored.get("set_quantile")
    if quantile is not None:  # the classes a new image's truth is among, at the stored coverage
        order = torch.argsort(-probabilities, stable=True).tolist()
        found["set"] = [labels[k] for k in order if probabilities[k] >= 1.0 - quantile] or [labels[order[0]]]
        found["set_coverage"] = stored.get("set_coverage")
    return found


def several_labels(answers, labels, top_k, stored):
    """Tags: every label's probability, most probable first, and the labels at or above their own threshold."""
    thresholds = torch.tensor(stored.get("thresholds") or [0.5] * len(labels), dtype=torch.float32)
    order = torch.argsort(-answers, stable=True).tolist()
    return {"top_k": [{"label": labels[i], "probability": round(float(answers[i]), 6)} for i in order],
            "labels": [labels[i] for i in order if answers[i] >= thresholds[i]],
            "unsure": bool(((answers - thresholds).abs() < UNSURE_BAND).any())}


def a_number(answers, labels, top_k, stored):
    """A score: the value and, when the run could promise one, its interval at the stored coverage."""
    value, width = float(answers.reshape(-1)[0]), stored.get("half_width")
    found = {"top_k": [], "value": round(value, 6), "unsure": width is None}
    if width is not None:
        found.update(interval=[round(value - width, 6), round(value + width, 6)], coverage=stored.get("coverage"))
    return found


TASKS = {"single": one_label, "multi": several_labels, "regression": a_number}


def answer(model, path, prep, labels, top_k, stored, check=None):
    output = model(preprocess(path, prep).unsqueeze(0))
    answers, embedding = output if isinstance(output, tuple) else (output, None)
    found = TASKS[stored.get("task", "single")](answers[0].float(), labels, top_k, stored)
    score = ood_score(embedding[0], check[0], check[1]) if check is not None and embedding is not None else None
    return {"image": str(path), **found, "unknown": bool(score is not None and score > check[2]),
            "ood_score": None if score is None else round(score, 6)}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("images", nargs="+")
    parser.add_argument("--top-k", type=int, default=3)
    args = parser.parse_args()
    labels = json.loads((HERE / "labels.json").read_text(encoding="utf-8"))
    prep = json.loads((HERE / "preprocessing.json").read_text(encoding="utf-8"))
    warnings.filterwarnings("ignore", category=FutureWarning)  # TorchScript's deprecation notice
    model = torch.jit.load(str(HERE / "model.torchscript.pt"), map_location="cpu").eval()
    stored = calibration()
    check = unknown_check()
    failed = 0
    with torch.inference_mode():
        for path in args.images:
            try:
                result = answer(model, path, prep, labels, args.top_k, stored, check)
            except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
                failed += 1  # one bad file must not stop the rest
                result = {"image": str(path), "error": f"could not read this image ({error})"}
                print(f"skipped {path}: could not read this image", file=sys.stderr)
            print(json.dumps(result, ensure_ascii=False), flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
