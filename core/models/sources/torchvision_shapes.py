"""torchvision's networks cut into stages. Each function takes the network (weights loaded or not) and the number
of outputs, and returns a StagedModel whose head ends in a new nn.Linear and whose cam_target is named."""
from __future__ import annotations

import torch
import torchvision
from torch import nn

from core.models.staged import StagedModel, TokensToGrid


def resnet(m: nn.Module, n: int) -> StagedModel:
    stem = nn.Sequential(m.conv1, m.bn1, m.relu, m.maxpool)
    stages = [("stem", stem)] + [(f"layer{i}", getattr(m, f"layer{i}")) for i in range(1, 5)]
    return StagedModel(stages, nn.Sequential(m.avgpool, nn.Flatten(1), nn.Linear(m.fc.in_features, n)))


def features_then_classifier(m: nn.Module, n: int) -> StagedModel:
    """mobilenet_v2/v3, efficientnet, convnext: `features` blocks, a pool, then `classifier` (last layer new)."""
    stages = [(f"block {i}", block) for i, block in enumerate(m.features)]
    pool = getattr(m, "avgpool", nn.AdaptiveAvgPool2d(1))
    kept = list(m.classifier[:-1])
    flatten = [] if any(isinstance(layer, nn.Flatten) for layer in kept) else [nn.Flatten(1)]
    head = nn.Sequential(pool, *flatten, *kept, nn.Linear(m.classifier[-1].in_features, n))
    return StagedModel(stages, head)


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


def vit(m: torchvision.models.VisionTransformer, n: int) -> StagedModel:
    """Grad-CAM reads the last block's first LayerNorm: the block's own output reaches the classifier only through
    the class token, so its patch tokens get no gradient."""
    layers = [(f"encoder {i}", layer) for i, layer in enumerate(m.encoder.layers)]
    head = nn.Sequential(m.encoder.ln, _FlattenTokens(), nn.Linear(m.hidden_dim, n))
    return StagedModel([("patch embedding", _VitEmbedding(m))] + layers, head,
                       cam_target=(m.encoder.layers[-1].ln_1, TokensToGrid(prefix=1)))


def vgg(m: torchvision.models.VGG, n: int) -> StagedModel:
    """Five convolutional blocks (`features` split after each max-pool), then the classifier's two 4096-wide layers
    as one stage: feature extraction caches their 4096 numbers per image, and only the new Linear trains."""
    blocks, current = [], []
    for layer in m.features:
        current.append(layer)
        if isinstance(layer, nn.MaxPool2d):
            blocks.append(nn.Sequential(*current))
            current = []
    stages = [(f"conv block {i}", block) for i, block in enumerate(blocks, 1)]
    stages.append(("classifier", nn.Sequential(m.avgpool, nn.Flatten(1), *m.classifier[:-1])))
    head = nn.Sequential(nn.Linear(m.classifier[-1].in_features, n))
    return StagedModel(stages, head, cam_target=(blocks[-1], None))  # the last map: the classifier is flat


class _InceptionInput(nn.Module):
    """Google's Inception weights expect inputs in [-1, 1]; torchvision's ImageNet normalisation is mapped onto
    that here (torchvision's `transform_input`), so the preprocessing stays the usual one."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
        channels = [x[:, i:i + 1] * (std[i] / 0.5) + (mean[i] - 0.5) / 0.5 for i in range(3)]
        return torch.cat(channels, 1)


_MIXED = ("Mixed_5b", "Mixed_5c", "Mixed_5d", "Mixed_6a", "Mixed_6b", "Mixed_6c", "Mixed_6d", "Mixed_6e",
          "Mixed_7a", "Mixed_7b", "Mixed_7c")


def inception(m: torchvision.models.Inception3, n: int) -> StagedModel:
    """The stem, then the eleven Mixed blocks; the auxiliary classifier is dropped (it only helps training from
    scratch, and its output is not the model's answer)."""
    stem = nn.Sequential(_InceptionInput(), m.Conv2d_1a_3x3, m.Conv2d_2a_3x3, m.Conv2d_2b_3x3, m.maxpool1,
                         m.Conv2d_3b_1x1, m.Conv2d_4a_3x3, m.maxpool2)
    stages = [("stem", stem)] + [(name.replace("_", " "), getattr(m, name)) for name in _MIXED]
    head = nn.Sequential(m.avgpool, m.dropout, nn.Flatten(1), nn.Linear(m.fc.in_features, n))
    return StagedModel(stages, head)
