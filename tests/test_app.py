"""Every page, headless (Streamlit's AppTest), with real assertions on what a user sees."""
from __future__ import annotations

import io
import json
import os
import time
import zipfile
from pathlib import Path

import pytest
import torch
from streamlit.testing.v1 import AppTest

from core.data import sample
from core.training import advice
from tests.conftest import class_members, write_zip

APP = str(Path(__file__).resolve().parent.parent / "app.py")
TIMEOUT = 900  # AppTest runs a page in-process; on two shared cores a first page with torch imports is slow


@pytest.fixture(scope="module")
def tiny_shapes_zip(tmp_path_factory) -> bytes:
    folder = sample.write_folder(tmp_path_factory.mktemp("tiny"), per_class=10, size=64, seed=3)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for path in sorted(folder.rglob("*.jpg")):
            archive.write(path, path.relative_to(folder).as_posix())
    return buffer.getvalue()


def open_page(page: str, **query) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    for key, value in query.items():
        at.query_params[key] = value
    at.switch_page(f"views/{page}.py")
    return at.run()


def go(at: AppTest, page: str) -> AppTest:
    at.switch_page(f"views/{page}.py")
    return at.run()


def no_exception(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]


def upload(at: AppTest, name: str, data: bytes) -> AppTest:
    at.file_uploader[0].set_value((name, data, "application/zip"))
    return at.run()


LONG = 1000  # epochs, with early stopping off: a run that is still going when the test acts on it


def start_training(at: AppTest, epochs: int = 2) -> str:
    """On the Train page: a small, random-initialised mobilenet (explicitly chosen), started. A LONG run has early
    stopping off, or it could end by itself (in seconds on this tiny data) before the test cancels it."""
    at.selectbox(key="backbone").set_value("mobilenet_v3_small").run()
    at.checkbox(key="random_init").check().run()
    at.number_input(key="image_size").set_value(64)
    at.number_input(key="epochs").set_value(epochs)
    if epochs >= LONG:
        [n for n in at.number_input if n.label.startswith("Early stopping patience")][0].set_value(0)
    at.button(key="start").click().run()
    no_exception(at)
    return at.query_params["job"]


def wait_until(at: AppTest, predicate, timeout: float = TIMEOUT) -> AppTest:
    deadline = time.time() + timeout
    while time.time() < deadline:
        at.run()
        if predicate(at):
            return at
        time.sleep(0.5)
    raise AssertionError("the page never showed the expected state")


def finished(at: AppTest) -> bool:
    return any("Finished" in s.value for s in at.success)


def test_data_page_reports_classes_warnings_and_skipped_files(tmp_path):
    members = class_members("", {"cats": 6, "dogs": 2}) | {"dogs/notes.txt": b"x"}
    at = upload(open_page("data"), "pets.zip", write_zip(tmp_path / "p.zip", members).read_bytes())
    no_exception(at)
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Classes"] == "2" and metrics["Images"] == "8" and metrics["Skipped files"] == "1"
    assert any("Very few images in 'dogs'" in w.value for w in at.warning)
    assert at.get("plotly_chart") and len(at.get("image")) == 2  # a thumbnail strip per class


def test_data_page_refuses_a_broken_archive_with_a_sentence():
    at = upload(open_page("data"), "photos.zip", b"this is not a zip file")
    no_exception(at)
    assert any("not a zip archive" in e.value for e in at.error)


def test_sample_dataset_is_one_click_away():
    at = open_page("data")
    at.button[0].click().run()
    assert {m.label: m.value for m in at.metric}["Classes"] == "3"
    assert any("ready" in s.value for s in at.success)


def test_from_upload_to_training_evaluation_prediction_and_export(tiny_shapes_zip, shapes_folder):
    at = upload(open_page("data"), "shapes.zip", tiny_shapes_zip)
    go(at, "train")
    no_exception(at)
    assert "Trainable parameters" in [m.label for m in at.metric]
    job_id = start_training(at, epochs=2)
    wait_until(at, finished)
    curves = json.loads(at.get("plotly_chart")[0].proto.spec)
    val_accuracy = [t for t in curves["data"] if t["name"] == "validation accuracy"][0]
    assert len(val_accuracy["x"]) == 2

    go(at, "evaluate")
    no_exception(at)
    assert {m.label for m in at.metric} >= {"Accuracy", "Class-balanced score"}
    assert at.dataframe and len(at.get("plotly_chart")) >= 1

    go(at, "predict")
    image = sorted((shapes_folder / "circle").glob("*.jpg"))[0]
    at.file_uploader[0].set_value((image.name, image.read_bytes(), "image/jpeg")).run()
    no_exception(at)
    assert any("sure)" in m.value.replace("\\", "") or "Best guess" in m.value for m in at.markdown) and at.get("plotly_chart")

    go(at, "export")
    at.button[0].click().run()
    no_exception(at)
    assert any("same predictions" in s.value for s in at.success) and at.get("download_button")
    bundle = zipfile.ZipFile(at.session_state[f"export_{job_id}"].path)
    model = torch.jit.load(io.BytesIO(bundle.read("model.torchscript.pt")))
    probabilities, embedding = model(torch.zeros(1, 3, 64, 64))  # the answers and what "unknown" measures
    assert probabilities.shape == (1, 3) and embedding.shape[0] == 1


def test_a_reload_reattaches_to_the_running_job_and_a_second_job_queues(tiny_shapes_zip):
    at = upload(open_page("data"), "shapes.zip", tiny_shapes_zip)
    go(at, "train")
    first = start_training(at, epochs=LONG)
    reloaded = open_page("train", ws=at.query_params["ws"], job=first)  # a new browser session, same URL
    no_exception(reloaded)
    assert reloaded.button(key="cancel")
    reloaded.button[-1].click().run()  # "Set up another training"
    second = start_training(reloaded, epochs=1)
    assert second != first
    wait_until(reloaded, lambda a: any("1 ahead of yours: 1 run training now (1 of them yours)" in i.value
                                       for i in a.info), 30)
    reloaded.button(key="cancel").click().run()
    attached = open_page("train", ws=at.query_params["ws"], job=first)
    attached.button(key="cancel").click().run()
    wait_until(attached, lambda a: any("cancelled" in w.value for w in a.warning))


def test_workspaces_are_private(tiny_shapes_zip):
    at = upload(open_page("data"), "shapes.zip", tiny_shapes_zip)
    go(at, "train")
    start_training(at, epochs=1)
    wait_until(at, finished)
    mine = go(at, "runs")
    assert mine.dataframe
    stranger = open_page("runs")
    assert stranger.query_params["ws"] != at.query_params["ws"]
    assert any("No runs yet" in i.value for i in stranger.info)


def test_missing_weights_fail_with_a_plain_sentence_and_details(tiny_shapes_zip):
    at = upload(open_page("data"), "shapes.zip", tiny_shapes_zip)
    go(at, "train")
    at.selectbox(key="backbone").set_value("mobilenet_v3_small").run()
    assert any("not on this computer" in w.value for w in at.warning)
    at.number_input(key="image_size").set_value(64)
    at.button(key="start").click().run()
    wait_until(at, lambda a: bool(a.error))
    shown = at.error[0].value.replace("\\", "")  # errors are escaped Markdown: compare the text a user reads
    assert "Pretrained weights for mobilenet_v3_small are not on this computer" in shown
    assert at.expander and not at.exception


def test_a_job_id_in_the_url_cannot_reach_outside_the_workspace(tiny_shapes_zip):
    at = upload(open_page("data"), "shapes.zip", tiny_shapes_zip)
    go(at, "train")
    start_training(at, epochs=1)
    wait_until(at, finished)
    other = open_page("train", ws=at.query_params["ws"], job="../runs")  # a crafted path, not a job id
    no_exception(other)
    assert "cancel" not in [b.key for b in other.button]
    assert other.button(key="start")  # the set-up form, not someone's job


def test_a_tab_without_the_job_in_its_url_says_a_run_is_active_and_links_to_it(tiny_shapes_zip):
    at = upload(open_page("data"), "shapes.zip", tiny_shapes_zip)
    go(at, "train")
    job = start_training(at, epochs=LONG)
    other_tab = open_page("train", ws=at.query_params["ws"])  # the workspace's address, as a teacher shares it
    no_exception(other_tab)
    assert any("A training run of this workspace is" in i.value for i in other_tab.info)
    links = [link for link in other_tab.get("page_link") if link.proto.label == "Watch it"]
    assert links and f"job={job}" in links[0].proto.query_string
    at.button(key="cancel").click().run()
    wait_until(at, lambda a: any("cancelled" in w.value for w in a.warning))
    assert not any("A training run" in i.value for i in open_page("train", ws=at.query_params["ws"]).info)


def test_train_page_says_what_learns_in_words_and_where_missing_weights_go(tiny_shapes_zip):
    at = upload(open_page("data"), "shapes.zip", tiny_shapes_zip)
    go(at, "train")
    # 10 photos a class: the backbone that measured better on small data is preselected, and the page says why
    assert at.selectbox(key="backbone").value == "efficientnet_lite2"
    assert any("Suggested for your data: EfficientNet-Lite2. With about 10 images a class" in c.value
               for c in at.caption)
    assert any("one label per image" in c.value for c in at.caption)  # the dataset's task, read-only
    strategy = at.radio(key="strategy")
    assert strategy.options == ["Feature extraction", "Fine-tune the last N stages", "Adapters (LoRA)"]
    strategy.set_value("fine-tune").run()
    slider = at.select_slider(key="depth_efficientnet_lite2")
    assert slider.options[0] == "the last stage" and slider.options[-1] == "everything"
    assert "the last two stages" in slider.options
    at.radio(key="strategy").set_value("adapters").run()
    at.selectbox(key="adapter_rank").set_value(4).run()
    trainable = advice.adapter_parameters("efficientnet_lite2", 4, 2, 3)[0]
    assert {m.label: m.value for m in at.metric}["Trainable parameters"] == f"{trainable:,}"
    assert any("LoRA rank 4: adapters in 'blocks 6' and 'head conv'" in c.value for c in at.caption)
    at.selectbox(key="backbone").set_value("mobilenet_v3_small").run()
    warning = " ".join(w.value for w in at.warning).replace("\\", "")  # escaped Markdown: the text a user reads
    assert "cannot be downloaded on this server" in warning and "automatically" not in warning
    assert "mobilenet_v3_small" in warning  # the file to put there


def test_the_train_page_trains_the_task_the_data_holds_with_the_chosen_adapters(tmp_path):
    """Tags from a metadata.csv: the page says so, and the run it starts learns tags, with the adapters chosen."""
    folder = sample.write_tagged_folder(tmp_path / "tagged", 24, size=64, seed=2)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for path in sorted(p for p in folder.rglob("*") if p.is_file()):
            archive.write(path, path.relative_to(folder).as_posix())
    at = upload(open_page("data"), "tags.zip", buffer.getvalue())
    go(at, "train")
    no_exception(at)
    assert any("What the model learns: **several labels per image (tags)**" in c.value for c in at.caption)
    at.selectbox(key="backbone").set_value("efficientnet_lite0").run()
    at.radio(key="strategy").set_value("adapters").run()
    at.selectbox(key="adapter_rank").set_value(4)
    at.number_input(key="image_size").set_value(64)
    at.number_input(key="epochs").set_value(1)
    at.button(key="start").click().run()
    no_exception(at)
    job = at.query_params["job"]
    wait_until(at, finished)
    config = json.loads(next(Path(os.environ["TRANSFERLAB_HOME"]).rglob(f"{job}/config.json")).read_text())
    assert config["task"] == "multi" and config["strategy"] == "adapters" and config["adapter_rank"] == 4
    assert config["freeze_depth"] == "all"
