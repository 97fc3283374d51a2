"""What zero-shot can and cannot do, in plain words, for the Label and Predict pages (one paragraph)."""
from __future__ import annotations


def can_and_cannot(backbone_title: str = "") -> str:
    model = backbone_title or "a CLIP-family model"
    return (
        f"Zero-shot means {model} guesses a class from its name alone, before you label anything: it compares each "
        "image with sentences such as \"a photo of a {}\" built from your class names, and picks the closest. "
        "It knows what the internet's captioned photos taught it, so it does well on everyday things with common "
        "names (a cat, a tulip, a car) and poorly on what few captions describe: microscope slides, a lab's own "
        "strains, rare species, or names that are codes (\"type A\", \"sample 3\"); describing a class in words "
        "(\"round purple cells\") or adding prompt templates helps. Its confidence is a model's guess, not a "
        "measured accuracy: nobody has checked it on your images yet, so treat its labels as suggestions to "
        "confirm, and accept in bulk only what you have spot-checked. Once you label a few images per class, "
        "training starts from these names and quickly does better; its evaluation then tells you how good it is."
    )
