"""timm's networks cut into stages (from timm's own block lists), and preprocessing from timm's data config.

Imported only when a timm-based backbone is built or asked for its preprocessing: timm costs start-up time.
"""
from __future__ import annotations

import math
from functools import lru_cache

import timm
import torch
from timm.data import resolve_data_config
from timm.layers import global_pool_nlc
from timm.models import get_pretrained_cfg
from torch import nn

from core.data.preprocessing import Preprocessing
from core.models.staged import StagedModel, TokensToGrid


def efficientnet(m: nn.Module, n: int) -> StagedModel:
    """timm's EfficientNet family (Lite, V2): the stem, each of `blocks`, the 1x1 head convolution, then the new head."""
    stages = [("stem", nn.Sequential(m.conv_stem, m.bn1))]
    stages += [(f"blocks {i}", block) for i, block in enumerate(m.blocks)]
    stages += [("head conv", nn.Sequential(m.conv_head, m.bn2))]
    head = nn.Sequential(m.global_pool, nn.Dropout(0.2), nn.Linear(m.num_features, n))
    return StagedModel(stages, head)


class _Tokens(nn.Module):
    """A timm ViT's input side as one stage: patchify, class and register tokens, position embedding
    (timm's patch_embed, _pos_embed, patch_drop and norm_pre, for a fixed input size)."""

    def __init__(self, vit: nn.Module) -> None:
        super().__init__()
        if vit.pos_embed is None or vit.dynamic_img_size:
            raise ValueError("only ViTs with a learned position embedding at a fixed size are staged here")
        self.patch_embed, self.pos_embed, self.no_embed_class = vit.patch_embed, vit.pos_embed, vit.no_embed_class
        self.prefix = nn.ParameterList([t for t in (vit.cls_token, vit.reg_token) if t is not None])
        self.pos_drop, self.patch_drop, self.norm_pre = vit.pos_drop, vit.patch_drop, vit.norm_pre

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.patch_embed(x)
        prefix = [token.expand(x.shape[0], -1, -1) for token in self.prefix]
        if self.no_embed_class:  # DINOv2, SigLIP: the position embedding covers the patches only
            x = torch.cat(prefix + [x + self.pos_embed], dim=1)
        else:  # the original ViT and CLIP: it covers the class token too
            x = torch.cat(prefix + [x], dim=1) + self.pos_embed
        return self.norm_pre(self.patch_drop(self.pos_drop(x)))


class _Pooled(nn.Module):
    """The image embedding as the last stage: final norm, then timm's pooling (class token, mean, or SigLIP's
    attention pool), then a CLIP model's projection into the joint image-text space when it has one. A stage, not
    part of the head, so feature extraction caches one vector per image instead of every token."""

    def __init__(self, vit: nn.Module) -> None:
        super().__init__()
        self.norm, self.attn_pool, self.fc_norm = vit.norm, vit.attn_pool, vit.fc_norm
        self.global_pool, self.num_prefix_tokens = vit.global_pool, vit.num_prefix_tokens
        self.include_prefix = getattr(vit, "pool_include_prefix", False)
        self.projection = vit.head if isinstance(vit.head, nn.Linear) else nn.Identity()
        self.width = vit.head.out_features if isinstance(vit.head, nn.Linear) else vit.num_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.norm(x)
        if self.attn_pool is not None:
            x = self.attn_pool(x if self.include_prefix else x[:, self.num_prefix_tokens:])
        else:
            x = global_pool_nlc(x, pool_type=self.global_pool, num_prefix_tokens=self.num_prefix_tokens,
                                reduce_include_prefix=self.include_prefix)
        return self.projection(self.fc_norm(x))


def vit(m: nn.Module, n: int) -> StagedModel:
    """timm's VisionTransformer: the token embedding, each of `blocks`, the pooled embedding, then the new Linear.
    Grad-CAM reads the last block's first LayerNorm, its patch tokens as a grid (prefix tokens dropped)."""
    pooled = _Pooled(m)
    stages = [("patch embedding", _Tokens(m))] + [(f"block {i}", block) for i, block in enumerate(m.blocks)]
    stages.append(("pooled embedding", pooled))
    return StagedModel(stages, nn.Sequential(nn.Linear(pooled.width, n)),
                       cam_target=(m.blocks[-1].norm1, TokensToGrid(prefix=m.num_prefix_tokens)))


def create(tag: str, pretrained_file: str | None = None, input_size: int | None = None) -> nn.Module:
    """timm's network for `tag`; its weights from `pretrained_file` (timm's own loading: strict, with the model's
    checkpoint filter, e.g. DINOv2's position embedding resampled from 518 to 224 px) when given."""
    overlay, kwargs = _overlay(input_size), {"img_size": input_size} if input_size else {}
    if pretrained_file is None:
        return timm.create_model(tag, pretrained=False, pretrained_cfg_overlay=overlay, **kwargs)
    return timm.create_model(tag, pretrained=True, pretrained_cfg_overlay=overlay | {"file": pretrained_file},
                             **kwargs)


@lru_cache(maxsize=64)
def preprocessing(tag: str, input_size: int | None = None) -> Preprocessing:
    """timm's evaluation transform for these weights (resolve_data_config over the pretrained config), as ours."""
    cfg = get_pretrained_cfg(tag).to_dict() | _overlay(input_size)
    return from_data_config(resolve_data_config({}, pretrained_cfg=cfg))


def from_data_config(config: dict) -> Preprocessing:
    """timm's data config -> Preprocessing: resize to floor(crop / crop_pct), as timm's eval transform does."""
    crop = config["input_size"][-1]
    return Preprocessing(math.floor(crop / config["crop_pct"]), crop, tuple(config["mean"]), tuple(config["std"]),
                         config["interpolation"])


def _overlay(input_size: int | None) -> dict:
    return {"input_size": (3, input_size, input_size)} if input_size else {}
