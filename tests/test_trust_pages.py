"""Evaluate and Predict pages show intervals, calibration, "not sure" / "unknown", heatmaps and the model card."""
from __future__ import annotations

import random
import shutil
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from core.text import md
from tests.test_app import TIMEOUT
from tests.test_trust import _checkerboard

APP = str(Path(__file__).resolve().parent.parent / "app.py")


@pytest.fixture
def app_with_run(trained_run):
    from core import paths

    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.switch_page("views/data.py").run()
    ws = at.query_params["ws"]
    shutil.copytree(trained_run, paths.home() / "workspaces" / ws / "runs" / trained_run.name)
    return at


def no_exception(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]


def test_evaluate_shows_intervals_calibration_cells_heatmaps_and_the_card(app_with_run):
    at = app_with_run
    at.switch_page("views/evaluate.py").run()
    no_exception(at)
    assert any(c.value.startswith("95% interval:") for c in at.caption)
    assert any("could be anywhere from" in i.value for i in at.info)
    titles = [chart.proto.spec for chart in at.get("plotly_chart")]
    assert any("Reliability" in t for t in titles) and any("Answer less" in t for t in titles)
    at.selectbox(key="cell").select_index(1).run()  # the first non-empty cell
    no_exception(at)
    shown = [c.value.replace("\\", "") for c in at.caption]  # captions are Markdown-escaped
    assert any("image(s): true" in text for text in shown), shown
    assert len(at.get("image")) >= 1
    at.button(key="model_card").click().run()
    no_exception(at)
    assert at.get("download_button")


def test_predict_says_unknown_names_a_bad_file_and_shows_a_heatmap(app_with_run, shapes_folder, tmp_path):
    at = app_with_run
    at.switch_page("views/predict.py").run()
    board = tmp_path / "board.png"
    _checkerboard(random.Random(2)).save(board)
    shape = sorted((shapes_folder / "circle").glob("*.jpg"))[0]
    at.toggle(key="why").set_value(True)
    at.file_uploader[0].set_value([(shape.name, shape.read_bytes(), "image/jpeg"),
                                   ("board.png", board.read_bytes(), "image/png"),
                                   ("<b>bad</b>.png", b"not an image", "image/png")]).run()
    no_exception(at)
    assert any("sure)" in m.value.replace("\\", "") for m in at.markdown)  # Markdown-escaped
    assert any("does not look like any of your training images" in w.value for w in at.warning)
    errors = " ".join(e.value for e in at.error)
    assert md("<b>bad</b>.png") in errors and "UploadedFile" not in errors  # named by its name, escaped
    sanity = [c for c in at.caption if "heatmap" in c.value and "scrambled" in c.value]  # plain words first
    assert sanity and all("Sanity check" in c.proto.help for c in sanity)  # the measured number on demand


def test_evaluate_speaks_plainly_first_and_gives_the_score_as_the_card_does(app_with_run, trained_run):
    at = app_with_run
    at.switch_page("views/evaluate.py").run()
    no_exception(at)
    outside = [c.value for c in at.caption if not _inside_expander(at, c)]
    for term in ("ECE", "temperature", "T =", "Macro"):
        assert not any(term in text for text in outside), term
    inside = " ".join(c.value for e in at.expander for c in e.caption)
    assert "ECE" in inside and "temperature scaling" in inside  # the terms are one click away
    score = {m.label: m for m in at.metric}["Class-balanced score"]
    assert "Macro F1" in score.proto.help
    from core.serving.model_card import build_html

    card = build_html(trained_run)
    assert f"<td>Class-balanced score</td><td>{score.value}</td>" in card  # one name, one format, e.g. 91.7%


def _inside_expander(at, element) -> bool:
    return any(element in list(e.caption) for e in at.expander)


def test_an_unknown_image_is_headlined_unknown_and_the_class_is_only_a_best_guess(app_with_run, tmp_path):
    at = app_with_run
    at.switch_page("views/predict.py").run()
    board = tmp_path / "board.png"
    _checkerboard(random.Random(2)).save(board)
    at.file_uploader[0].set_value([("board.png", board.read_bytes(), "image/png")]).run()
    no_exception(at)
    answer = at.columns[1]  # the image on the left, the answer on the right
    first = list(answer.children.values())[0]
    assert first.type == "warning" and "does not look like any of your training images" in first.value
    assert any(m.value.startswith("Best guess: ") for m in answer.markdown)
    assert not any("sure)" in m.value.replace("\\", "") for m in answer.markdown)  # no "dandelion (100% sure)" above "unknown"
