"""Why did it decide that? Grad-CAM heatmaps (pytorch-grad-cam) for every backbone family.

Each backbone's builder names the layer to read (StagedModel.cam_target, set in core/models/sources/): for
convolutional backbones a late feature map, for vision transformers the last block's first LayerNorm with its patch
tokens reshaped into a grid (the block's own output reaches the classifier only through the class token, so its
patch tokens get no gradient). A heatmap is a hint about where the model looked, not proof.

A number (a regression head, which answers mean + std * z around the training values' mean) is explained by what
moved it away from that mean, either way: Grad-CAM keeps only what pushes its target up, so a plain "explain the
output" map of a low answer is often blank.
"""
from __future__ import annotations

import copy
import threading
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from PIL import Image
from pytorch_grad_cam import GradCAM
from pytorch_grad_cam.utils.image import show_cam_on_image
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
from scipy.stats import spearmanr
from torch import nn

from core.data.preprocessing import Preprocessing
from core.i18n import N_, _
from core.models.backbones import StagedModel
from core.tasks.regression import ScaledLinear

CAVEAT = N_("The heatmap shows which parts of the picture pushed the model towards its answer. It is a hint, not "
          "proof: a model can look at the right place for the wrong reason.")
_HOOKS = threading.Lock()  # GradCAM hooks the shared model's layer: one explanation at a time per process


def target_layer(model: StagedModel) -> tuple[nn.Module, Callable | None]:
    """The layer whose activations and gradients make the heatmap, and how its output becomes a (N, C, h, w) map."""
    return model.cam_target


class SignedOutputTarget(ClassifierOutputTarget):
    """One output times +1 (what raised it) or -1 (what lowered it)."""

    def __init__(self, category: int, direction: float = 1.0) -> None:
        super().__init__(category)
        self.direction = direction

    def __call__(self, model_output: torch.Tensor) -> torch.Tensor:
        return self.direction * super().__call__(model_output)


def direction(model: StagedModel, outputs: torch.Tensor, index: int) -> float:
    """+1 for a class or tag (what made it likelier); for a value, the side of the training mean it fell on."""
    head = model.head[-1]
    if not isinstance(head, ScaledLinear):
        return 1.0
    return 1.0 if float(outputs[index]) >= float(head.mean[index]) else -1.0


def heatmaps(model: StagedModel, x: torch.Tensor, class_indices: list[int] | None = None,
             directions: list[float] | None = None) -> np.ndarray:
    """(N, H, W) in [0, 1] for a normalised batch, one pass; class_indices None = each image's predicted class;
    directions (one per index, +1 by default) -1 to show what lowered that output."""
    layer, reshape = target_layer(model)
    model.eval()
    targets = None if class_indices is None else [
        SignedOutputTarget(int(i), d) for i, d in zip(class_indices, directions or [1.0] * len(class_indices))]
    with _HOOKS, torch.enable_grad(), GradCAM(model=model, target_layers=[layer], reshape_transform=reshape) as cam:
        return cam(input_tensor=x, targets=targets)


def heatmap(model: StagedModel, x: torch.Tensor, class_index: int | None = None, sign: float = 1.0) -> np.ndarray:
    """(H, W) for a batch of one image."""
    return heatmaps(model, x, None if class_index is None else [class_index], [sign])[0]


def randomised_last_stage(model: StagedModel, seed: int = 0) -> StagedModel:
    """A copy whose top (the head and the last stage) is re-initialised: the first step of Adebayo et al.'s
    (2018) cascading randomisation. A heatmap that explains the model must change; one that only traces edges
    in the picture would not."""
    torch.manual_seed(seed)
    broken = copy.deepcopy(model)
    for module in [*broken.head.modules(), *broken.stages[-1].modules()]:
        if hasattr(module, "reset_parameters"):
            module.reset_parameters()
    return broken.eval()


def similarity(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman rank correlation of two heatmaps: 1 = the same ranking of places, about 0 = unrelated."""
    if np.ptp(a) == 0 or np.ptp(b) == 0:
        return 0.0
    return float(spearmanr(a.ravel(), b.ravel()).statistic)


def overlay(picture: torch.Tensor, cam: np.ndarray) -> Image.Image:
    """The heatmap over the (3, H, W) uint8 image the model saw."""
    rgb = picture.permute(1, 2, 0).numpy().astype(np.float32) / 255.0
    return Image.fromarray(show_cam_on_image(rgb, cam, use_rgb=True, image_weight=0.55))


@dataclass(frozen=True)
class Explanation:
    class_index: int
    cam: np.ndarray
    image: Image.Image
    sanity: float | None  # similarity to the randomised-last-stage heatmap (lower is better), when asked
    sign: float = 1.0  # +1: what raised the output; -1: what lowered it (a value below the training mean)


def explain(model: StagedModel, prep: Preprocessing, picture: torch.Tensor, class_index: int | None = None,
            sanity_check: bool = False) -> Explanation:
    """`picture`: the (3, crop, crop) uint8 input, e.g. Predictor.tensor(image)."""
    x = prep.normalize(picture.unsqueeze(0)).to(next(model.parameters()).device)
    model.eval()
    with torch.inference_mode():
        outputs = model(x)[0]
    class_index = int(outputs.argmax()) if class_index is None else class_index
    sign = direction(model, outputs, class_index)
    cam = heatmap(model, x, class_index, sign)
    sanity = similarity(cam, heatmap(randomised_last_stage(model), x, class_index, sign)) if sanity_check else None
    return Explanation(class_index, cam, overlay(picture.cpu(), cam), sanity, sign)


def sanity_sentence(score: float) -> str:
    if score < 0.5:
        return _("Sanity check: with the last stage's and the head's learned weights replaced by random ones, the "
                 "heatmap's similarity to this one is {score} (1 = identical), so it depends on what the model "
                 "learned.").format(score=f"{score:.2f}")
    return _("Sanity check: with the last stage's and the head's learned weights replaced by random ones, the "
             "heatmap's similarity to this one is {score} (1 = identical), so treat it with extra caution: it may "
             "show the picture's structure more than the model's reasons.").format(score=f"{score:.2f}")
