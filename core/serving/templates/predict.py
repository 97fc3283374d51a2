"""Predict with a TransferLab model. Needs only torch, torchvision and Pillow.

    python predict.py photo1.jpg photo2.png [--top-k 3]

Prints one JSON object per image: {"image": ..., "top_k": [{"label": ..., "probability": ...}, ...]}.
The preprocessing below is TransferLab's own, so predictions match the app's.
"""
import argparse
import json
import warnings
from pathlib import Path

import numpy as np
import torch
import torchvision.transforms.functional as TF
from PIL import Image, ImageOps
from torchvision.transforms import InterpolationMode

HERE = Path(__file__).resolve().parent


def load_rgb(path, resize_size):
    image = Image.open(path)
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


def preprocess(path, prep):
    image = load_rgb(path, prep["resize_size"])
    image = TF.resize(image, [prep["resize_size"]], interpolation=InterpolationMode(prep["interpolation"]),
                      antialias=True)
    x = TF.pil_to_tensor(TF.center_crop(image, [prep["crop_size"]])).float() / 255.0
    return TF.normalize(x, prep["mean"], prep["std"])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("images", nargs="+")
    parser.add_argument("--top-k", type=int, default=3)
    args = parser.parse_args()
    labels = json.loads((HERE / "labels.json").read_text(encoding="utf-8"))
    prep = json.loads((HERE / "preprocessing.json").read_text(encoding="utf-8"))
    warnings.filterwarnings("ignore", category=FutureWarning)  # TorchScript's deprecation notice
    model = torch.jit.load(str(HERE / "model.torchscript.pt"), map_location="cpu").eval()
    with torch.inference_mode():
        for path in args.images:
            probabilities = model(preprocess(path, prep).unsqueeze(0))[0]
            values, indices = probabilities.topk(min(args.top_k, len(labels)))
            top = [{"label": labels[i], "probability": round(float(p), 6)} for p, i in zip(values, indices)]
            print(json.dumps({"image": path, "top_k": top}, ensure_ascii=False))


if __name__ == "__main__":
    main()
