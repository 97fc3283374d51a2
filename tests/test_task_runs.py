"""Tags and scores, end to end: a metadata.csv in, a trained run out, and the same answers from the Predictor and
the command line."""
from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
import zipfile

import pytest

from core.cli import main
from core.data import sample
from core.data.datasets import inspect_data
from core.runs import folder as runs
from core.runs import pipeline
from core.serving.export import export_bundle
from core.serving.inference import Predictor
from core.training.config import TrainConfig
from core.training.events import EventLog

QUICK = dict(image_size=64, epochs=6, early_stopping=0, batch_size=16)


@pytest.fixture(scope="module")
def tagged(tmp_path_factory):
    return sample.write_tagged_folder(tmp_path_factory.mktemp("tagged"), 48, size=96, seed=2)


@pytest.fixture(scope="module")
def scored(tmp_path_factory):
    return sample.write_scored_folder(tmp_path_factory.mktemp("scored"), 48, size=96, seed=3)


@pytest.fixture(scope="module")
def tags_run(tagged, tmp_path_factory):
    return _train(tagged, "multi", tmp_path_factory.mktemp("tags_run"))


@pytest.fixture(scope="module")
def scores_run(scored, tmp_path_factory):
    return _train(scored, "regression", tmp_path_factory.mktemp("scores_run"))


def _train(data, task, tmp_path, **settings) -> runs.Run:
    config = TrainConfig(data=str(data), task=task, **(QUICK | settings))
    run = runs.create(tmp_path / "runs", config)
    state = pipeline.execute(config, run.path, EventLog(run.metrics_file), threading.Event(), tmp_path)
    assert state == "finished", run.status()
    return run


def test_the_task_is_read_from_the_metadata_column(tagged, scored, tmp_path):
    tags = inspect_data(tagged, tmp_path)
    assert tags.task == "multi" and tags.labels == ["circle", "square", "triangle"] and tags.trainable
    assert sum(tags.classes.values()) > len(tags.images)  # some pictures carry two or three tags
    values = inspect_data(scored, tmp_path)
    assert values.task == "regression" and values.labels == [] and values.details["values"]["count"] == 48


def test_a_multi_label_run_answers_with_every_label_above_its_threshold(tagged, tags_run, capsys):
    run = tags_run
    evaluation = run.evaluation()
    assert evaluation.task == "multi" and {"micro_f1", "macro_f1", "map", "exact_match"} <= set(evaluation.metrics)
    assert len(run.calibration()["thresholds"]) == 3
    picture = next(tagged.glob("*.jpg"))
    answer = Predictor(run.path).predict_details([picture])[0]
    assert set(answer.extra["labels"]) <= {"circle", "square", "triangle"} and len(answer.top_k) == 3
    assert main(["predict", "--run", str(run.path), str(picture)]) == 0
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert printed["labels"] == answer.extra["labels"] and "unknown" in printed


def test_a_score_run_answers_a_number_with_a_conformal_interval(scored, scores_run, capsys):
    run = scores_run
    evaluation = run.evaluation()
    assert evaluation.task == "regression" and evaluation.metrics["mae"] is not None
    assert evaluation.trust["conformal"]["coverage"] == 0.9
    picture = next(scored.glob("*.jpg"))
    answer = Predictor(run.path).predict_details([picture])[0].extra
    if answer.get("interval"):  # too few validation images promise no interval at all, and say so (unsure)
        low, high = answer["interval"]
        assert low <= answer["value"] <= high
    assert main(["predict", "--run", str(run.path), str(picture)]) == 0
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert printed["value"] == pytest.approx(answer["value"])
    assert main(["predict", "--run", str(run.path), "--coverage", "0.5", str(picture)]) == 0
    narrower = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    if answer.get("interval") and narrower.get("interval"):
        assert narrower["interval"][1] - narrower["interval"][0] <= answer["interval"][1] - answer["interval"][0]
        assert narrower["coverage"] == 0.5


def _exported_answers(run, pictures, tmp_path) -> list[dict]:
    result = export_bundle(run.path, tmp_path / "bundle.zip", with_onnx=False)
    assert result.verified, result.note
    zipfile.ZipFile(result.path).extractall(tmp_path / "bundle")  # our own bundle, not user input
    done = subprocess.run([sys.executable, str(tmp_path / "bundle" / "predict.py"), *map(str, pictures)],
                          capture_output=True, text=True, check=True, cwd=tmp_path)
    return [json.loads(line) for line in done.stdout.splitlines()]


def test_the_exported_predict_script_answers_tags_as_the_app_does(tagged, tags_run, tmp_path):
    pictures = sorted(tagged.glob("*.jpg"))[:4]
    app = Predictor(tags_run.path).predict_details(pictures)
    for mine, exported in zip(app, _exported_answers(tags_run, pictures, tmp_path), strict=True):
        assert exported["labels"] == mine.extra["labels"] and exported["unsure"] == mine.unsure
        assert [p["label"] for p in exported["top_k"]] == [p["label"] for p in mine.top_k]
        assert all(abs(a["probability"] - b["probability"]) < 5e-4 for a, b in zip(exported["top_k"], mine.top_k))
        assert exported["unknown"] == mine.unknown


def test_the_exported_predict_script_answers_scores_as_the_app_does(scored, scores_run, tmp_path):
    pictures = sorted(scored.glob("*.jpg"))[:4]
    app = Predictor(scores_run.path).predict_details(pictures)
    for mine, exported in zip(app, _exported_answers(scores_run, pictures, tmp_path), strict=True):
        assert exported["value"] == pytest.approx(mine.extra["value"], abs=1e-3)
        assert "top_k" in exported and exported["unsure"] == mine.unsure and exported["unknown"] == mine.unknown
        if mine.extra.get("interval"):
            assert exported["interval"] == pytest.approx(mine.extra["interval"], abs=1e-3)


def _page_with(run, page: str):
    import shutil

    from streamlit.testing.v1 import AppTest

    from core import paths
    from tests.test_app import TIMEOUT
    from tests.test_trust_pages import APP

    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.switch_page("views/data.py").run()
    shutil.copytree(run.path, paths.home() / "workspaces" / at.query_params["ws"] / "runs" / run.path.name)
    at.switch_page(f"views/{page}.py").run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _clicked(trace, k: int) -> dict:
    """The selection event Streamlit hands the page for a click on mark k of a trace: what the mark carries."""
    return {"selection": {"points": [{"x": trace.x[k], "y": trace.y[k], "customdata": list(trace.customdata[k])}]}}


def test_a_clicked_tag_bar_lists_the_images_behind_it(tags_run):
    """A click on 'square: missed' lists exactly the images that have a square the model did not tag, as many as
    the bar is high; every bar of every tag maps back to itself."""
    from core.insight import task_charts

    evaluation = tags_run.evaluation()
    bars = task_charts.tag_errors(evaluation).data
    assert [bar.name for bar in bars] == ["found", "missed", "given wrongly"]
    for bar in bars:
        for k, tag in enumerate(evaluation.labels):
            assert task_charts.selected_tag_outcome(evaluation, _clicked(bar, k)) == (tag, bar.name)
            images = task_charts.tag_outcome_images(evaluation, tag, bar.name)
            assert len(images) == bar.y[k]
            has, given = {"found": (True, True), "missed": (True, False), "given wrongly": (False, True)}[bar.name]
            assert all((tag in p["true"]) == has and (tag in p["predicted"]) == given for p in images)
    assert task_charts.selected_tag_outcome(evaluation, {"selection": {"points": []}}) is None


def test_a_clicked_scatter_point_opens_its_image_and_where_the_model_looked(scores_run):
    """A click on one point names that validation image (true and predicted as plotted), a box of points names
    each once, the diagonal's points name nothing; the image is in the run folder, and its heatmap on the value
    is a map of the picture's shape that is not blank."""
    from core.insight import task_charts
    from core.insight.explain import explain

    evaluation = scores_run.evaluation()
    dots, diagonal = task_charts.scatter(evaluation).data
    worst = max(range(len(dots.x)), key=lambda k: abs(dots.x[k] - dots.y[k]))
    [image] = task_charts.selected_images(evaluation, _clicked(dots, worst))
    assert (image["true"], image["predicted"]) == (dots.x[worst], dots.y[worst])
    boxed = {"selection": {"points": [_clicked(dots, k)["selection"]["points"][0] for k in (1, 4, 1)] +
                           [{"x": diagonal.x[0], "y": diagonal.y[0]}]}}
    assert task_charts.selected_images(evaluation, boxed) == [evaluation.predictions[1], evaluation.predictions[4]]
    picture = scores_run.val_pixels(image["sha256"])
    predictor = Predictor(scores_run.path)
    found = explain(predictor.model, predictor.preprocessing, picture)
    assert found.cam.shape == tuple(picture.shape[1:]) and found.cam.max() > 0.5 and found.cam.std() > 0.01


def test_the_evaluate_and_predict_pages_speak_of_tags_for_a_tag_run(tagged, tags_run):
    at = _page_with(tags_run, "evaluate")
    assert {"Tags found (F1)", "Exactly right", "Ranking quality (mAP)"} <= {m.label for m in at.metric}
    assert "Accuracy" not in {m.label for m in at.metric}
    assert any("Per tag: found, missed" in chart.proto.spec for chart in at.get("plotly_chart"))
    assert any(m.value == "#### Per tag" for m in at.markdown)
    bar = at.selectbox(key="tag_cell")  # what a click on a bar chooses; a keyboard chooses it here
    tag, outcome, count = re.fullmatch(r"(.+): (found|missed|given wrongly) \((\d+)\)", bar.options[1]).groups()
    before = len(at.get("image"))  # the wrong answers' gallery further down
    bar.set_value(0).run()
    assert not at.exception, [e.value for e in at.exception]
    assert any(f"{count} image(s) where the tag '{tag}' was {outcome}" in c.value.replace("\\", "")
               for c in at.caption)
    assert len(at.get("image")) - before == min(int(count), 30)
    at.button(key="model_card").click().run()
    assert not at.exception and at.get("download_button")
    at.switch_page("views/runs.py").run()
    assert not at.exception, [e.value for e in at.exception]
    table = at.dataframe[0].value
    assert table["answers"][0] == "several labels per image (tags)" and table["main score"][0].startswith("Tags found")
    at.switch_page("views/predict.py").run()
    picture = sorted(tagged.glob("*.jpg"))[0]
    at.file_uploader[0].set_value((picture.name, picture.read_bytes(), "image/jpeg")).run()
    assert not at.exception, [e.value for e in at.exception]
    said = " ".join(m.value for m in at.markdown)
    expected = Predictor(tags_run.path).predict_details([picture])[0].extra["labels"]
    assert ("tags: " + ", ".join(expected) if expected else "no tag applies") in said.replace("\\", "")


def test_the_evaluate_and_predict_pages_speak_of_numbers_for_a_score_run(scored, scores_run):
    at = _page_with(scores_run, "evaluate")
    assert {"Typical error", "Explained variation (R²)"} <= {m.label for m in at.metric}
    assert any("Predicted against true values" in chart.proto.spec for chart in at.get("plotly_chart"))
    assert any("Largest errors" in m.value for m in at.markdown)
    at.checkbox(key="cv").check().run()  # k folds on the cached features: a steadier typical error
    assert not at.exception, [e.value for e in at.exception]
    assert any(re.search(r"Across 5 folds the typical error \(MAE\) is [\d.]+ ± [\d.]+ .* R² is", m.value)
               for m in at.markdown)
    at.button(key="model_card").click().run()
    assert not at.exception and at.get("download_button")
    at.switch_page("views/predict.py").run()
    picture = sorted(scored.glob("*.jpg"))[0]
    at.file_uploader[0].set_value((picture.name, picture.read_bytes(), "image/jpeg")).run()
    assert not at.exception, [e.value for e in at.exception]
    value = Predictor(scores_run.path).predict_details([picture])[0].extra["value"]
    assert f"{value:.3g}" in " ".join(m.value for m in at.markdown).replace("\\", "")  # Markdown-escaped


@pytest.mark.parametrize("which", ["tags_run", "scores_run"])
def test_the_monitors_python_example_reads_the_services_answer(which, request, tagged, tmp_path):
    """The example's lines after the request, run on the real service's JSON for this task's run."""
    from fastapi.testclient import TestClient

    from core.serving.process import how_to_call
    from core.serving.service import create_app

    run = request.getfixturevalue(which)
    picture = sorted(tagged.glob("*.jpg"))[0]
    with TestClient(create_app(run.path, log_url=f"sqlite:///{tmp_path / 'log.sqlite'}")) as client:
        answer = client.post("/predict", files={"file": (picture.name, picture.read_bytes(), "image/jpeg")}).json()
    example = how_to_call(run.path.name, task=run.config()["task"])["python"]
    reading = example.split("\n", 3)[3]  # what follows the request: reads `answer`
    exec(compile(reading, "example", "exec"), {"answer": answer})


def _zipped(folder) -> bytes:
    import io

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                archive.write(path, path.relative_to(folder).as_posix())
    return buffer.getvalue()


@pytest.mark.parametrize("which, said", [("tagged", "several labels per image"), ("scored", "a number per image")])
def test_the_data_page_says_what_the_model_will_learn_from_a_metadata_file(which, said, request):
    from streamlit.testing.v1 import AppTest

    from tests.test_app import TIMEOUT, upload
    from tests.test_trust_pages import APP

    at = upload(AppTest.from_file(APP, default_timeout=TIMEOUT).switch_page("views/data.py").run(), f"{which}.zip",
                _zipped(request.getfixturevalue(which)))
    assert not at.exception, [e.value for e in at.exception]
    assert any(said in m.value for m in at.markdown), [m.value for m in at.markdown]
    assert any("Your data is ready" in s.value for s in at.success)
    charts = " ".join(chart.proto.spec for chart in at.get("plotly_chart"))
    assert ("How the values spread" if which == "scored" else "Images per class") in charts
