"""LoRA adapters in a StagedModel's later stages: the third way to adapt a backbone, beside feature extraction and
fine-tuning the last stages.

Every pretrained weight W stays as it is; each adapted layer learns a low-rank change B·A (rank r, B starting at zero,
so the adapted model starts out exactly as the pretrained one). Hugging Face's peft builds the layers: its LoRA wraps
nn.Linear (timm's attention qkv and proj, the MLPs) and nn.Conv2d (a CNN's pointwise and full convolutions;
depthwise ones, with groups > 1, are left alone: peft cannot merge them and they hold few weights) in place, inside
the stages. torchvision's nn.MultiheadAttention reads its in- and out-projections as weights, never calling a Linear,
and peft's LoRA for it lets the pretrained weights drift by rounding (it adds B·A before each forward and subtracts
it after), so it gets the same change through a small parametrization here (`LowRankChange`). Either way
`run_stages`, `forward_from`, the feature cache of the stages before the first adapter, DDP and Grad-CAM's target
work as they are.

Where: the last `count` stages that hold such layers, by default two (core.training.config.TrainConfig.adapter_stages):
the stages the partial fine-tuning recommendation retrains, so the two compare at the same cost per epoch, while the
stages before run once per image (cached features, or the kept augmented views of core.training.augmented_views).
Adapters in every stage would make every epoch run the whole network forward and backward.

A run keeps only the adapters and the head (`trained_state`); loading rebuilds the pretrained backbone from its source,
adds the adapters, loads them and folds them into the weights (`merged`: peft's merge_and_unload), so prediction,
serving and the TorchScript/ONNX export see a plain StagedModel.

Counting (`stage_widths`) needs no peft and works on the meta device: the Train page shows the trainable parameters
before anything is built.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Iterator

import torch
from torch import nn
from torch.nn.utils import parametrize

from core.models.staged import StagedModel

FORMAT = "transferlab-adapters"  # the model file's metadata says what it holds, and on which pretrained weights
ADAPTER_MARK = "lora_"  # peft's LoRA parameters are named ...lora_A.default.weight / ...lora_B.default.weight
HEAD_PREFIX = "head."


class AdapterMismatch(ValueError):
    """Saved adapters that do not fit the network they are loaded into; the message says so in a sentence."""


def _targets(stage: nn.Module) -> Iterator[tuple[str, nn.Module]]:
    """(name inside the stage, layer) of each layer an adapter goes into. A MultiheadAttention is one target: peft
    adapts its out_proj itself (whose forward the attention never calls), so that is not listed again."""
    inside_attention: list[str] = []
    for name, module in stage.named_modules():
        if any(name.startswith(prefix + ".") for prefix in inside_attention):
            continue
        if isinstance(module, nn.MultiheadAttention) and module._qkv_same_embed_dim:
            inside_attention.append(name)
            yield name, module
        elif isinstance(module, nn.Linear) or (isinstance(module, nn.Conv2d) and module.groups == 1):
            yield name, module


def width(layer: nn.Module) -> int:
    """Adapter parameters per unit of rank: A is (r, inputs x kernel), B is (outputs, r)."""
    if isinstance(layer, nn.MultiheadAttention):  # in_proj: embed -> 3 embed; out_proj: embed -> embed
        return layer.embed_dim * 4 + layer.embed_dim * 2
    if isinstance(layer, nn.Conv2d):
        kernel = layer.kernel_size[0] * layer.kernel_size[1]
        return layer.in_channels * kernel + layer.out_channels
    return layer.in_features + layer.out_features


def stage_widths(model: StagedModel) -> tuple[int, ...]:
    """Per stage, adapter parameters per unit of rank (0: nothing to adapt there). Shapes only: meta tensors work."""
    return tuple(sum(width(layer) for _, layer in _targets(stage)) for stage in model.stages)


def adapted_stages(widths: tuple[int, ...], count: int) -> list[int]:
    """The last `count` stages that hold layers to adapt, in order.

    >>> adapted_stages((0, 5, 0, 7, 9, 0), 2)  # a last stage without layers (a pooling stage) is skipped
    [3, 4]
    """
    holding = [i for i, w in enumerate(widths) if w > 0]
    if not holding:
        raise AdapterMismatch("this backbone has no layers adapters can go into")
    return holding[-max(count, 1):]


def first_adapted(widths: tuple[int, ...], count: int) -> int:
    """How many stages run before the first adapter: their output can be cached, as with feature extraction."""
    return adapted_stages(widths, count)[0]


def parameter_count(widths: tuple[int, ...], rank: int, count: int) -> int:
    return rank * sum(widths[i] for i in adapted_stages(widths, count))


def _adapted_layers(model: StagedModel, count: int) -> list[tuple[str, nn.Module]]:
    """(full module name as in the state dict, layer) of each layer adapters go into."""
    return [(f"stages.{i}.{name}" if name else f"stages.{i}", layer)
            for i in adapted_stages(stage_widths(model), count) for name, layer in _targets(model.stages[i])]


def _lora_config(names: list[str], rank: int):
    from peft import LoraConfig  # imported here: peft brings transformers, seconds of start-up

    # lora_alpha = r: the change B·A is applied as it is (scale 1) whatever the rank; no dropout on the adapters.
    return LoraConfig(r=rank, lora_alpha=rank, lora_dropout=0.0, target_modules=names, bias="none")


class LowRankChange(nn.Module):
    """W -> W + B·A as a parametrization (torch.nn.utils.parametrize) of a weight the module reads directly:
    nn.MultiheadAttention's in_proj_weight and out_proj.weight. peft's own LoRA for that layer adds B·A into the
    stored weight before each forward and subtracts it after, so the pretrained weight drifts by rounding with every
    step; here the stored weight is never written. A as peft (and the LoRA paper) starts it, B at zero."""

    def __init__(self, weight: torch.Tensor, rank: int) -> None:
        super().__init__()
        self.lora_A = nn.Parameter(torch.empty(rank, weight.shape[1], device=weight.device, dtype=weight.dtype))
        self.lora_B = nn.Parameter(torch.zeros(weight.shape[0], rank, device=weight.device, dtype=weight.dtype))
        nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        return weight + self.lora_B @ self.lora_A


def _attention_weights(layer: nn.MultiheadAttention) -> list[tuple[nn.Module, str]]:
    return [(layer, "in_proj_weight"), (layer.out_proj, "weight")]


def _add_attention(layers: list[nn.Module], rank: int) -> None:
    for layer in layers:
        for module, weight in _attention_weights(layer):
            parametrize.register_parametrization(module, weight, LowRankChange(getattr(module, weight), rank))


def _fold_attention(layers: list[nn.Module]) -> None:
    for layer in layers:
        for module, weight in _attention_weights(layer):
            parametrize.remove_parametrizations(module, weight, leave_parametrized=True)


def _split(model: StagedModel, count: int) -> tuple[list[str], list[nn.Module]]:
    """The layers peft adapts (by name), and the attention layers adapted here."""
    layers = _adapted_layers(model, count)
    return ([name for name, layer in layers if not isinstance(layer, nn.MultiheadAttention)],
            [layer for _, layer in layers if isinstance(layer, nn.MultiheadAttention)])


def add(model: StagedModel, rank: int, count: int) -> int:
    """Put rank-`rank` adapters into the last `count` stages holding adaptable layers, in place; return the number
    of stages before the first one. The model's output is unchanged until the adapters train (B starts at zero)."""
    first = first_adapted(stage_widths(model), count)
    names, attention = _split(model, count)
    if names:
        from peft import inject_adapter_in_model

        inject_adapter_in_model(_lora_config(names, rank), model)
    _add_attention(attention, rank)
    return first


def is_adapted(model: nn.Module) -> bool:
    return any(ADAPTER_MARK in name for name, _ in model.named_parameters())


def set_trainable(model: StagedModel, frozen: int) -> int:
    """Only the adapters of stages from `frozen` on, and the head, train; every stage stays in eval mode, so the
    backbone is exactly as frozen as in feature extraction (BatchNorm statistics included). Returns the count."""
    model.train()
    for i, stage in enumerate(model.stages):
        stage.eval()
        for name, parameter in stage.named_parameters():
            parameter.requires_grad_(i >= frozen and ADAPTER_MARK in name)
    model.head.requires_grad_(True)
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def trained_state(model: StagedModel) -> dict[str, torch.Tensor]:
    """What an adapter run keeps: the adapters and the head (the pretrained weights come from the backbone's source)."""
    return {name: value for name, value in model.state_dict().items()
            if ADAPTER_MARK in name or name.startswith(HEAD_PREFIX)}


def merged(model: StagedModel, rank: int, count: int, state: dict[str, torch.Tensor]) -> StagedModel:
    """The pretrained `model` with the saved adapters and head loaded, and the adapters folded into the weights
    (W + B·A: peft's merge_and_unload, and the attention's parametrizations removed with their value kept): a plain
    StagedModel again, which TorchScript and ONNX export like any other."""
    names, attention = _split(model, count)
    tuner = None
    if names:
        from peft.tuners.lora import LoraModel

        tuner = LoraModel(model, _lora_config(names, rank), "default")
    _add_attention(attention, rank)
    if set(state) != set(trained_state(model)) or any(state[k].shape != v.shape for k, v in
                                                      trained_state(model).items()):
        raise AdapterMismatch("the saved adapters do not fit this backbone (another rank, other stages or another "
                              "network)")
    model.load_state_dict(state, strict=False)
    plain = tuner.merge_and_unload(safe_merge=True) if tuner else model  # safe: refuses NaN or infinite weights
    _fold_attention(attention)
    if is_adapted(plain):
        raise AdapterMismatch("the adapters could not be folded into the backbone's weights")
    # peft marked every other weight as not trainable; a loaded model is like any other (Grad-CAM needs gradients)
    return plain.requires_grad_(True)


def file_metadata(weights_identity: str) -> dict[str, str]:
    """The model file's metadata for an adapter run: the exact pretrained weights the adapters were trained on."""
    return {"format": FORMAT, "backbone_weights": weights_identity}


def load_merged(model: StagedModel, rank: int, count: int, path: Path, weights_identity: str) -> StagedModel:
    """`merged` from a model file `save_result` wrote, once it is checked that this computer's pretrained weights
    are the ones the adapters were trained on (adapters on other weights would answer wrongly, silently)."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    with safe_open(str(path), "pt") as stored:
        metadata = stored.metadata() or {}
    if metadata.get("format") != FORMAT:
        raise AdapterMismatch("its model file holds no adapters")
    if metadata.get("backbone_weights") != weights_identity:
        raise AdapterMismatch(f"they were trained on other pretrained weights ({metadata.get('backbone_weights')}) "
                              f"than this computer has ({weights_identity})")
    return merged(model, rank, count, load_file(str(path)))
