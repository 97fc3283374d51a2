"""The classroom wired into app.py, headless (Streamlit's AppTest): what a class's rules do on the ordinary pages."""
from __future__ import annotations

from pathlib import Path

from streamlit.testing.v1 import AppTest

from core.classroom import joining, roster, starter
from core.data import sample

APP = str(Path(__file__).resolve().parent.parent / "app.py")
TIMEOUT = 900  # in-process pages import torch; two shared cores are slow


def test_a_student_sees_only_what_the_class_allows_on_the_train_page(tmp_path):
    """The class allows the bundled backbone, feature extraction and the default settings: the page offers nothing
    else (the job manager refuses anything else anyway: tests/test_classroom.py)."""
    classroom, _ = roster.create("Year 7")
    classroom = starter.push(classroom, sample.write_zip(tmp_path / "lesson.zip", per_class=6, size=64), "lesson")
    student = joining.join(classroom, "Fox")
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.query_params["ws"] = student.workspace_key
    at.switch_page("views/train.py")
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert len(at.selectbox(key="backbone").options) == 1  # only the bundled one
    assert len(at.radio(key="strategy").options) == 1  # feature extraction only
    assert not any("Advanced settings" in e.label for e in at.expander)
