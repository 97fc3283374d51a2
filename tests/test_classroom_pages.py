"""The classroom wired into app.py, headless (Streamlit's AppTest): what a class's rules do on the ordinary pages."""
from __future__ import annotations

from pathlib import Path

from streamlit.testing.v1 import AppTest

from core.classroom import joining, roster, starter
from core.data import sample

APP = str(Path(__file__).resolve().parent.parent / "app.py")
TIMEOUT = 900  # in-process pages import torch; two shared cores are slow


def test_a_run_the_class_rules_refuse_is_one_sentence_on_the_train_page_and_nothing_starts(tmp_path):
    classroom, _ = roster.create("Year 7")
    classroom = starter.push(classroom, sample.write_zip(tmp_path / "lesson.zip", per_class=6, size=64), "lesson")
    student = joining.join(classroom, "Fox")
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.query_params["ws"] = student.workspace_key
    at.switch_page("views/train.py")
    at.run()
    at.selectbox(key="backbone").set_value("mobilenet_v3_small").run()  # the class allows only the bundled one
    at.checkbox(key="random_init").check().run()
    at.button(key="start").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert any("your teacher allows these backbones" in e.value for e in at.error), [e.value for e in at.error]
    assert not list(student.workspace.runs.glob("*/config.json"))  # refused before a run folder exists
