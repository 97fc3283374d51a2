"""The prototype head: each class is the mean direction of its images' frozen features, and an image belongs to the
class whose mean it points closest to (cosine nearest class mean, as in Prototypical Networks and SimpleShot).

With a handful of images a class there is little to fit and a fitted linear head overfits; a class mean needs no
optimiser and no learning rate. It is still one nn.Linear: its rows are the normalised class means, so the logits
`W f` rank classes exactly as cos(f, mean) does (the image's own length |f| is the same for every class). Saving,
loading, calibration, export to TorchScript and ONNX and serving treat it like any trained head.
"""
from __future__ import annotations

import torch
from torch import nn

# The logits are about TEMPERATURE x cosine: the run's temperature scaling (core.stats.calibration) refines it.
TEMPERATURE = 10.0
_EPS = 1e-12


def normalised(features: torch.Tensor) -> torch.Tensor:
    return features / features.norm(dim=1, keepdim=True).clamp_min(_EPS)


def class_sums(features: torch.Tensor, targets: torch.Tensor, classes: int) -> torch.Tensor:
    """(classes, D): the sum of each class's normalised features (a class without images stays zero)."""
    sums = torch.zeros(classes, features.shape[1], dtype=torch.float64)
    return sums.index_add_(0, targets.long(), normalised(features.double()))


def prototypes(features: torch.Tensor, targets: torch.Tensor, classes: int) -> torch.Tensor:
    """(classes, D) unit vectors: the direction of each class's mean normalised feature."""
    return normalised(class_sums(features, targets, classes)).float()


def set_prototype_head(linear: nn.Linear, features: torch.Tensor, targets: torch.Tensor) -> None:
    """Make `linear` the cosine nearest-class-mean classifier of these (N, D) features and class targets."""
    if features.shape[1] != linear.in_features:
        raise ValueError(f"the head reads {linear.in_features} features, these have {features.shape[1]}")
    means = prototypes(features.float().cpu(), targets.cpu(), linear.out_features)
    scale = TEMPERATURE / features.float().norm(dim=1).mean().clamp_min(_EPS)  # logits about TEMPERATURE x cosine
    with torch.no_grad():
        linear.weight.copy_((means * scale).to(linear.weight))
        linear.bias.zero_()


def predict(features: torch.Tensor, means: torch.Tensor) -> torch.Tensor:
    """The nearest class mean (cosine) of each image."""
    return (normalised(features.float()) @ means.T).argmax(1)


def leave_one_out(features: torch.Tensor, targets: torch.Tensor, classes: int) -> torch.Tensor:
    """Each image's predicted class from the class means of all the *other* images (exact, one pass: an image's
    own class sum is recomputed without it). A class whose only image is left out cannot be predicted."""
    z = normalised(features.double())
    sums = class_sums(features, targets, classes)
    scores = z @ normalised(sums).T  # (N, classes): the cosine to each class mean, own image included
    own = sums[targets.long()] - z  # the own class's sum without this image
    own_norm = own.norm(dim=1)
    own_score = torch.where(own_norm > _EPS, (z * own).sum(1) / own_norm.clamp_min(_EPS),
                            torch.full_like(own_norm, -torch.inf))
    scores[torch.arange(len(z)), targets.long()] = own_score
    return scores.argmax(1)
