"""The shape every backbone takes: an ordered list of stages, then a head whose last layer is the new nn.Linear.

Freeze depth k freezes the first k stages; the feature cache runs those k stages once per image. The trainer, the
unknown-input embedding (`head[:-1]`) and the later zero-shot and LoRA heads rely on the head ending in that Linear.
Each source's builder also names the layer Grad-CAM reads (`cam_target`), so the explainer never sniffs model types.
"""
from __future__ import annotations

import math
from typing import Callable

import torch
from torch import nn

StageList = list[tuple[str, nn.Module]]
Reshape = Callable[[torch.Tensor], torch.Tensor]


class StagedModel(nn.Module):
    """Stages run in order, then the head: `forward(x) == head(stages[k:](stages[:k](x)))` for any k.

    >>> model = StagedModel([("a", nn.Conv2d(3, 4, 3)), ("b", nn.ReLU())],
    ...                     nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(1), nn.Linear(4, 2)))
    >>> x = torch.randn(1, 3, 8, 8)
    >>> bool(torch.allclose(model(x), model.forward_from(model.run_stages(x, 0, 1), 1)))
    True
    >>> model.cam_target[0] is model.stages[-1]  # by default Grad-CAM reads the last stage's output
    True
    """

    def __init__(self, stages: StageList, head: nn.Module,
                 cam_target: tuple[nn.Module, Reshape | None] | None = None) -> None:
        super().__init__()
        if not isinstance(head, nn.Sequential) or not isinstance(head[-1], nn.Linear):
            raise TypeError("a StagedModel's head is an nn.Sequential ending in the nn.Linear to the outputs")
        self.stage_names = [name for name, _ in stages]
        self.stages = nn.ModuleList([module for _, module in stages])
        self.head = head
        # A plain attribute (a tuple), not a registered submodule: the module already lives in `stages`, so the
        # state dict and parameters() stay as they are; deepcopy maps it onto the copy's own module.
        self.cam_target = cam_target or (self.stages[-1], None)

    def run_stages(self, x: torch.Tensor, start: int = 0, stop: int | None = None) -> torch.Tensor:
        for stage in self.stages[start:stop]:
            x = stage(x)
        return x

    def forward_from(self, features: torch.Tensor, start: int) -> torch.Tensor:
        return self.head(self.run_stages(features, start))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_from(x, 0)


class UnitLength(nn.Module):
    """Scales each embedding to length 1. Heads of CLIP-family backbones start with it: their joint image-text
    space compares directions, so a head made from text embeddings (zero-shot, or a training start) reads cosines.

    >>> float(UnitLength()(torch.tensor([[3.0, 4.0]])).norm())
    1.0
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.normalize(x, dim=-1)


class TokensToGrid:
    """Grad-CAM for a vision transformer: (N, prefix + h*w, C) tokens -> (N, C, h, w), without the class and
    register tokens (`prefix` of them: timm's num_prefix_tokens).

    >>> TokensToGrid(prefix=5)(torch.zeros(2, 5 + 16, 8)).shape
    torch.Size([2, 8, 4, 4])
    """

    def __init__(self, prefix: int) -> None:
        self.prefix = prefix

    def __call__(self, tokens: torch.Tensor) -> torch.Tensor:
        patches = tokens[:, self.prefix:, :]
        side = math.isqrt(patches.shape[1])
        return patches.reshape(patches.shape[0], side, side, patches.shape[2]).permute(0, 3, 1, 2)
