"""The backbone registry: every entry builds and splits into stages; weights load through the real paths."""
from __future__ import annotations

import pytest
import torch
import torchvision
from PIL import Image
from skimage import data as skdata

from core.models import backbones, lite0

SMALL_INPUT = 64  # enough for every convolutional backbone; the vision transformer needs its own size


@pytest.mark.parametrize("name", backbones.NAMES)
def test_every_backbone_builds_splits_into_stages_and_sizes_its_head(name):
    torch.manual_seed(0)
    model = backbones.build(name, num_classes=3, pretrained=False).eval()
    size = backbones.info(name).input_size if backbones.info(name).fixed_size else SMALL_INPUT
    x = torch.randn(2, 3, size, size)
    with torch.no_grad():
        logits = model(x)
        middle = len(model.stages) // 2
        assert torch.allclose(model.forward_from(model.run_stages(x, 0, middle), middle), logits, atol=1e-5)
    assert logits.shape == (2, 3)
    assert len(model.stages) == len(model.stage_names) >= 5


def test_catalogue_has_the_meta_a_user_compares_on():
    catalogue = backbones.catalogue()
    assert len(catalogue) >= 7
    for entry in catalogue:
        assert entry.params_m > 0 and entry.gflops > 0 and 50 < entry.imagenet_top1 < 100 and entry.input_size == 224
    assert [b.name for b in catalogue if b.bundled] == [backbones.BUNDLED]
    assert backbones.info("resnet50").params_m == pytest.approx(25.6, abs=0.1)  # from torchvision's weights meta


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
    model = backbones.build(name, num_classes=4, pretrained=True)
    first_conv = model.stages[0][0].weight
    assert torch.equal(first_conv, reference["features.0.0.weight"])
    assert backbones.weights_available(name)


def test_missing_weights_offline_name_the_file_the_folder_and_the_alternatives(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(backbones.WeightsUnavailable) as error:
        backbones.build("resnet18", num_classes=2, pretrained=True)
    message = str(error.value)
    assert "resnet18-f37072fd.pth" in message and str(tmp_path / "hub" / "checkpoints") in message
    assert "weights: none" in message and backbones.BUNDLED in message


def test_bundled_lite0_weights_load_strictly_and_staged_model_matches_timm():
    reference = lite0.imagenet_model().eval()
    staged = backbones.build(backbones.BUNDLED, num_classes=1000, pretrained=True).eval()
    staged.head[-1].load_state_dict(reference.classifier.state_dict())
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        assert torch.allclose(staged(x), reference(x), atol=1e-4)


@pytest.mark.parametrize("photo, accepted", [
    ("coffee", {"espresso"}),
    ("chelsea", {"tabby", "tiger cat", "Egyptian cat", "Persian cat", "Siamese cat"}),
])
def test_bundled_backbone_knows_imagenet(photo, accepted):
    model = lite0.imagenet_model().eval()
    categories = torchvision.models.ResNet50_Weights.DEFAULT.meta["categories"]
    prep = lite0.PREPROCESSING
    x = prep.normalize(prep.to_uint8(Image.fromarray(getattr(skdata, photo)()))[None])
    with torch.no_grad():
        top = categories[int(model(x).argmax())]
    assert top in accepted
