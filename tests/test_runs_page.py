"""The Runs page headless: plain columns, a warning when runs were measured on different images, and the retrain
offer for a run on a plain zip that was later imported and relabelled on the Label page."""
from __future__ import annotations

import io
import json
import shutil
import zipfile

import pytest

from core import paths
from core.data import sample
from core.data.store import DatasetStore
from core.runs import folder as runs
from tests.test_app import finished, go, no_exception, open_page, start_training, upload, wait_until
from tests.test_label_page import label_ticked, ticks


@pytest.fixture(scope="module")
def tiny_shapes_zip(tmp_path_factory) -> bytes:
    folder = sample.write_folder(tmp_path_factory.mktemp("tiny"), per_class=10, size=64, seed=3)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for path in sorted(folder.rglob("*.jpg")):
            archive.write(path, path.relative_to(folder).as_posix())
    return buffer.getvalue()


def test_runs_measured_on_different_validation_images_are_flagged_and_settings_read_as_words(trained_run):
    at = open_page("data")
    home = paths.home() / "workspaces" / at.query_params["ws"] / "runs"
    same, fewer = home / f"{trained_run.name[:-4]}aaaa", home / f"{trained_run.name[:-4]}bbbb"
    shutil.copytree(trained_run, same)
    shutil.copytree(trained_run, fewer)
    report = json.loads((fewer / "evaluation.json").read_text())
    report["predictions"], report["num_images"] = report["predictions"][1:], report["num_images"] - 1
    (fewer / "evaluation.json").write_text(json.dumps(report))
    go(at, "runs")
    no_exception(at)
    table = at.dataframe[0].value
    assert set(table["what learned"]) == {"only the new last layer"} and set(table["network"]) == {"EfficientNet-Lite0"}
    assert sorted(table["tested on"]) == [report["num_images"], report["num_images"] + 1]
    warned = " ".join(w.value for w in at.warning)
    assert f"({report['num_images']} and {report['num_images'] + 1} images" in warned
    at.multiselect[0].set_value([r for r in at.multiselect[0].value][:1]).run()
    assert not any("different validation images" in w.value for w in at.warning)  # one run: nothing to compare


def test_a_run_on_a_zip_that_was_imported_and_relabelled_is_offered_a_retrain(tiny_shapes_zip):
    at = upload(open_page("data"), "shapes.zip", tiny_shapes_zip)
    go(at, "train")
    start_training(at, epochs=1)
    wait_until(at, finished)
    go(at, "label")
    at.button(key="import_current").click().run()  # the zip the run trained on, into the dataset store
    no_exception(at)
    at.radio(key="mode").set_value("Browse and relabel").run()
    at.selectbox(key="browse").set_value("circle").run()
    next(iter(ticks(at, "b").values())).check()
    label_ticked(at, "browse", "square")
    store = DatasetStore(paths.home() / "workspaces" / at.query_params["ws"] / "datasets")
    dataset = at.session_state["dataset_choice"]
    assert store.head(dataset) == 3
    go(at, "runs")
    no_exception(at)
    assert at.dataframe[0].value["data"].tolist() == ["shapes.zip, version 2"]  # matched by its images
    at.button(key="retrain").click().run()
    no_exception(at)
    retrained = [r for r in runs.list_runs(paths.home() / "workspaces" / at.query_params["ws"] / "runs")
                 if r.config.get("dataset_version")]
    assert [r.config["dataset_version"] for r in retrained] == [f"{dataset}@3"]
    assert retrained[0].config["backbone"] == "mobilenet_v3_small"  # the same settings
