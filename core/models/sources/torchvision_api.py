"""Backbones from torchvision's weights API. The catalogue row comes from the weights' own meta (parameters,
multiply-adds, ImageNet accuracy, smallest input); the weights are downloaded on first use into
$TORCH_HOME/hub/checkpoints/, or put there by hand on an offline server.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
import torchvision
from torch import nn

from core.data.preprocessing import Preprocessing
from core.i18n import _
from core.models.entry import Backbone, BackboneInfo, WeightsUnavailable
from core.models.staged import StagedModel


@dataclass(frozen=True)
class Torchvision(Backbone):
    name: str  # torchvision's model name (get_model / get_model_weights)
    title: str
    shape: Callable[[nn.Module, int], StagedModel]
    options: dict[str, Any] = field(default_factory=dict)  # for get_model, e.g. Inception's aux_logits
    params_m: float | None = None  # where the staged network drops a part of torchvision's (Inception's aux head)

    def _weights(self) -> torchvision.models.WeightsEnum:
        return torchvision.models.get_model_weights(self.name).DEFAULT

    def info(self) -> BackboneInfo:
        weights = self._weights()
        meta, crop = weights.meta, weights.transforms().crop_size[0]
        smallest = meta.get("min_size", (1, 1))[0]
        return BackboneInfo(
            name=self.name, title=self.title, params_m=self.params_m or round(meta["num_params"] / 1e6, 1),
            gflops=round(meta["_ops"], 2), imagenet_top1=meta["_metrics"]["ImageNet-1K"]["acc@1"], input_size=crop,
            bundled=False, fixed_size=smallest >= crop, source="torchvision", min_input=max(smallest, 32),
            weights_mb=round(meta.get("_file_size", 0.0)))

    def preprocessing(self) -> Preprocessing:
        t = self._weights().transforms()
        return Preprocessing(t.resize_size[0], t.crop_size[0], tuple(t.mean), tuple(t.std), t.interpolation.value)

    def build(self, num_outputs: int, pretrained: bool) -> StagedModel:
        model = torchvision.models.get_model(self.name, weights=None, **self.options)
        if pretrained:
            model.load_state_dict(self._state())
        return self.shape(model, num_outputs)

    def weights_file(self) -> Path:
        return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(self._weights().url)

    def weights_identity(self) -> str:
        return f"torchvision:{self._weights()}:{self.weights_file().name}"

    def where_to_put(self) -> str:
        target = self.weights_file()
        return _("Put the file {file} into the folder {folder} (set TORCH_HOME to use another folder)").format(
            file=target.name, folder=target.parent)

    def download_from(self) -> str:
        return _("PyTorch's download server")

    def _state(self) -> dict[str, torch.Tensor]:
        if not self.weights_available() and not self.downloads_allowed():
            raise WeightsUnavailable(self.missing_message())
        try:
            return self._weights().get_state_dict(progress=True, check_hash=True, weights_only=True)
        except OSError as error:  # URLError and socket errors are OSErrors: no network, or a blocked host
            raise WeightsUnavailable(_("{message} (download failed: {error})").format(
                message=self.missing_message(), error=error)) from error
