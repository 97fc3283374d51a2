"""Zero-shot from class names with a tiny random open_clip model written into a temporary HF_HOME in the hub
cache's layout (open_clip_config.json + open_clip_model.safetensors under models--ORG--NAME/snapshots/REV/,
refs/main), loaded offline through the real path: the text tower, the prompt-averaged head, the pre-labelled pool,
a zero-shot run the Predictor answers from, and training that starts from the text head.

The image tower is a registry entry of the timm-hub source shrunk to one 32-pixel block (the real ones are
ViT-B/16s); its random weights come from a fixed seed, so every build is the same network. The expected answers
are computed here independently: the written open_clip model's own encode_text, the staged image tower's
embedding, cosine times the logit scale, softmax. Accuracy needs real weights: bench/zero_shot.py.
"""
from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import dataclass
from pathlib import Path

import open_clip
import pytest
import timm
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

from core.data import intake
from core.data.preprocessing import Preprocessing, load_rgb
from core.data.store import DatasetStore
from core.labelling import suggest
from core.labelling import zero_shot as prelabelling
from core.models import backbones
from core.models.entry import WeightsUnavailable
from core.models.features import FeatureCache
from core.models.sources.timm_hub import TimmHub
from core.models.zero_shot import classifier, text_tower
from core.runs import zero_shot as zero_shot_runs
from core.serving.inference import Predictor
from core.training import head_init
from core.training.config import ConfigError, TrainConfig
from core.training.data import prepare
from core.training.events import EventLog
from core.training.loop import fit

REPO, NAME, DIM, SIZE = "test/tiny-clip", "tiny_clip", 16, 32
TINY_CLIP = {"embed_dim": DIM, "vision_cfg": {"image_size": SIZE, "layers": 1, "width": 32, "patch_size": 16, "head_width": 16},
             "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 16, "heads": 2, "layers": 1}}
MEAN, STD = (0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711)


@dataclass(frozen=True)
class TinyClipHub(TimmHub):
    """The timm-hub source's CLIP entry at toy size: same staging, head (UnitLength + Linear) and text_tower."""

    def _network(self, pretrained: bool) -> torch.nn.Module:
        torch.manual_seed(7)  # the "pretrained" image tower: the same random weights every build
        return timm.create_model("vit_base_patch16_clip_224", img_size=SIZE, embed_dim=32, depth=1, num_heads=2,
                                 num_classes=DIM)

    def preprocessing(self) -> Preprocessing:
        return Preprocessing(SIZE, SIZE, MEAN, STD, "bicubic")


TINY = TinyClipHub(NAME, "Tiny CLIP (test)", "vit_base_patch16_clip_224.openai", "vit", 0.1, 0.01, 0.0, SIZE,
                   "zero-shot", fixed_size=True, text_tower=REPO)


def write_open_clip_repo(hub: Path, seed: int = 3, revision: str = "c" * 40) -> open_clip.CLIP:
    """The tiny model in huggingface_hub's layout: blobs named by sha256, snapshot symlinks, refs/main."""
    torch.manual_seed(seed)
    model = open_clip.model.CLIP(**TINY_CLIP).eval()
    with torch.no_grad():
        model.logit_scale.fill_(torch.log(torch.tensor(50.0)))
    folder = hub / f"models--{REPO.replace('/', '--')}"
    snapshot, blobs = folder / "snapshots" / revision, folder / "blobs"
    snapshot.mkdir(parents=True)
    blobs.mkdir()
    staged = folder / "weights.tmp"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(staged))
    files = {text_tower.CONFIG: json.dumps({"model_cfg": TINY_CLIP, "preprocess_cfg": {"mean": MEAN, "std": STD}})
             .encode(), text_tower.WEIGHTS[0]: staged.read_bytes()}
    staged.unlink()
    for name, data in files.items():
        digest = hashlib.sha256(data).hexdigest()
        (blobs / digest).write_bytes(data)
        (snapshot / name).symlink_to(Path("..", "..", "blobs", digest))
    (folder / "refs").mkdir()
    (folder / "refs" / "main").write_text(revision)
    return model


@pytest.fixture
def hub(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.delenv("HUGGINGFACE_HUB_CACHE", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setitem(backbones._BY_NAME, NAME, TINY)
    return tmp_path / "hf" / "hub"


@pytest.fixture
def written(hub) -> open_clip.CLIP:
    return write_open_clip_repo(hub)


def expected_directions(model: open_clip.CLIP, names: list[str], templates: tuple[str, ...]) -> torch.Tensor:
    """CLIP's prompt ensemble, by hand: each prompt's unit embedding, averaged per class, made unit again."""
    rows = []
    with torch.no_grad():
        for name in names:
            each = F.normalize(model.encode_text(open_clip.tokenize([t.replace("{}", name) for t in templates])), dim=-1)
            rows.append(F.normalize(each.mean(0), dim=-1))
    return torch.stack(rows)


def expected_probabilities(model: open_clip.CLIP, names: list[str], templates: tuple[str, ...],
                           paths: list[Path]) -> torch.Tensor:
    tower, prep = backbones.build(NAME, 2, pretrained=True).eval(), TINY.preprocessing()
    batch = prep.normalize(torch.stack([prep.to_uint8(load_rgb(p, min_size=SIZE)) for p in paths]))
    with torch.no_grad():
        images = F.normalize(tower.run_stages(batch), dim=-1)
    return (50.0 * images @ expected_directions(model, names, templates).T).softmax(-1)


def shape_paths(folder: Path) -> list[Path]:
    return sorted(Path(folder).rglob("*.jpg"))


def test_text_tower_loads_offline_from_a_copied_hub_cache_and_averages_the_prompts(written):
    tower = text_tower.load(NAME)
    assert tower.repo == REPO and tower.logit_scale == pytest.approx(50.0, rel=1e-5) and tower.logit_bias == 0.0
    assert torch.equal(tower.model.text_projection, written.text_projection)  # the written weights, not random ones
    templates = ("a photo of a {}.", "a {} under a microscope")
    head = classifier.text_head(NAME, ["red_cell", "white cell", "platelet"], templates)
    assert head.labels == ("red_cell", "white cell", "platelet") and head.templates == templates
    # the underscore reads as a space in the prompt; the label keeps it
    expected = expected_directions(written, ["red cell", "white cell", "platelet"], templates)
    assert torch.allclose(head.directions, expected, atol=1e-5)
    assert not torch.allclose(head.directions, expected_directions(written, ["red cell", "white cell", "platelet"],
                                                                   templates[:1]), atol=1e-3)  # both count


def test_missing_text_tower_offline_names_the_repository_the_file_and_the_folder(hub):
    with pytest.raises(WeightsUnavailable) as error:
        classifier.text_head(NAME, ["cat", "dog"])
    message = str(error.value)
    assert REPO in message and text_tower.CONFIG in message and text_tower.WEIGHTS[0] in message
    assert str(hub) in message and "models--test--tiny-clip" in message and "\n" not in message
    with pytest.raises(WeightsUnavailable, match="has no text tower"):
        text_tower.load(backbones.BUNDLED)


def test_prompt_templates_are_bounded_and_a_typed_brace_stays_text():
    assert classifier.clean_templates([" ", ""]) == classifier.TEMPLATES
    assert classifier.clean_templates(["a {} {0.__class__}", "a {} {0.__class__}"]) == ("a {} {0.__class__}",)
    for bad in (["no slot here"], ["{} and {}"], ["x" * 300 + "{}"], [f"{i} {{}}" for i in range(40)]):
        with pytest.raises(classifier.PromptError):
            classifier.clean_templates(bad)
    with pytest.raises(classifier.PromptError, match="two different class names"):
        classifier.text_head(NAME, ["cat", "cat"])


def test_the_unlabelled_pool_is_pre_labelled_with_zero_shot_confidence(written, shapes_folder, tmp_path):
    store = DatasetStore(tmp_path / "datasets")
    created = intake.new_pool(store, "shapes", [])
    paths = shape_paths(shapes_folder)[::4]
    added = intake.add_uploads(store, created.dataset, created.number, [(p.name, p.read_bytes()) for p in paths],
                               None, tmp_path / "work")
    names = ["circle", "square", "triangle"]
    found = prelabelling.prelabel(store, added.version, FeatureCache(tmp_path / "features"), NAME, names)

    by_digest = {hashlib.sha256(p.read_bytes()).hexdigest(): i for i, p in enumerate(paths)}
    expected = expected_probabilities(written, names, classifier.TEMPLATES, paths)
    assert sorted(s.digest for s in found) == sorted(added.version.pool()) and len(found) == len(paths)
    for s in found:  # the feature cache keeps embeddings in half precision: a few thousandths
        row = expected[by_digest[s.digest]]
        top2 = row.topk(2)
        assert s.label == names[int(top2.indices[0])] and s.confidence == pytest.approx(float(top2.values[0]), abs=3e-3)
        assert s.margin == pytest.approx(float(top2.values[0] - top2.values[1]), abs=3e-3)
    # the Label page's loop takes them as it takes the trained head's
    assert [s.margin for s in suggest.most_uncertain_first(found)] == sorted(s.margin for s in found)
    threshold = sorted(s.confidence for s in found)[len(found) // 2]
    assert all(s.confidence >= threshold for s in suggest.confident(found, threshold))


def test_predict_works_before_any_training_from_a_zero_shot_run(written, shapes_folder, tmp_path):
    names, templates = ["circle", "square", "triangle"], ("a photo of a {}.", "a sketch of a {}")
    run = zero_shot_runs.create(tmp_path / "runs", NAME, names, templates)
    assert run.state == "finished" and run.labels() == names and zero_shot_runs.is_zero_shot(run)
    assert zero_shot_runs.create(tmp_path / "runs", NAME, names, templates).id == run.id  # asked again: the same

    paths = shape_paths(shapes_folder)[:6]
    answers = Predictor(run.path).predict_details(paths, top_k=3)
    expected = expected_probabilities(written, names, templates, paths)
    for answer, row in zip(answers, expected):
        assert [p["label"] for p in answer.top_k] == [names[i] for i in row.argsort(descending=True).tolist()]
        assert [p["probability"] for p in answer.top_k] == pytest.approx(sorted(row.tolist(), reverse=True), abs=1e-4)


def test_training_starts_its_head_from_the_class_names(written, shapes_folder, tmp_path):
    config = TrainConfig(data=str(shapes_folder), backbone=NAME, head_init="text", prompts=["a photo of a {}."],
                         epochs=1, lr=1e-6, augmented_views=0, early_stopping=0, batch_size=64)
    assert TrainConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config  # saved and read back
    data = prepare(config, tmp_path / "work")
    trained = fit(config, data, EventLog(None), threading.Event()).model.head[-1]
    text = classifier.text_head(NAME, data.labels, config.prompts)
    assert torch.allclose(trained.weight, text.directions * text.scale, atol=1e-3)  # one tiny step from the text head
    from_scratch = fit(TrainConfig(**{**config.to_dict(), "head_init": "default"}), data, EventLog(None),
                       threading.Event()).model.head[-1]
    assert not torch.allclose(from_scratch.weight, text.directions * text.scale, atol=1.0)


def test_a_text_start_is_refused_in_one_sentence_where_it_cannot_work(hub):
    lite = TrainConfig(data="x", head_init="text")
    with pytest.raises(ConfigError, match="has no text tower"):
        head_init.start_head(None, lite, ["a", "b"], "single")
    with pytest.raises(ConfigError, match="single-label"):
        head_init.start_head(None, TrainConfig(data="x", backbone=NAME, head_init="text"), ["a", "b"], "multi")
    with pytest.raises(ConfigError, match="head start"):
        TrainConfig(data="x", head_init="words")


def _panel_script() -> None:
    import os
    from pathlib import Path

    from ui import zero_shot as panel
    from ui.common import Workspace

    choice = panel.settings("predict", ["circle", "square"])
    if choice is not None:
        panel.try_button(choice, Workspace("0" * 32, Path(os.environ["ZS_WORKSPACE"])))


def test_the_panel_makes_a_zero_shot_model_from_typed_names(written, tmp_path, monkeypatch):
    from streamlit.testing.v1 import AppTest

    from core.runs.folder import list_runs

    monkeypatch.setattr(backbones, "NAMES", (*backbones.NAMES, NAME))
    monkeypatch.setenv("ZS_WORKSPACE", str(tmp_path / "ws"))
    at = AppTest.from_function(_panel_script, default_timeout=120).run()
    assert at.selectbox(key="zs_backbone_predict").options[-1] == "Tiny CLIP (test)"
    at.selectbox(key="zs_backbone_predict").set_value(NAME).run()
    assert any("before you label anything" in c.value for c in at.caption)
    at.text_area(key="zs_names_predict").set_value("tulip\nrose\n**daisy**").run()
    at.button(key="zs_try").click().run()
    assert not at.exception and len(at.success) == 1 and "accuracy is unknown" in at.success[0].value
    [summary] = list_runs(tmp_path / "ws" / "runs")
    assert summary.state == "finished" and summary.run.labels() == ["tulip", "rose", "**daisy**"]
