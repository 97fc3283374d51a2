"""Hostile inputs to the serving side: log URLs typed into the Monitor page, kept files the labelling pool reads."""
from __future__ import annotations

from pathlib import Path

from streamlit.testing.v1 import AppTest

from core import paths
from core.serving.predlog import allowed_log_url

APP = str(Path(__file__).resolve().parent.parent / "app.py")


def test_log_urls_that_name_no_possible_file_are_refused_in_a_sentence(isolated_home):
    home = paths.home()
    for url in (f"sqlite:///{home}/log\x00/../../etc/passwd", f"sqlite:///{home}/{'a' * 5000}.sqlite",
                f"sqlite:///{home}/" + "/".join(["b" * 200] * 30) + "/log.sqlite"):
        refusal = allowed_log_url(url)
        assert refusal and refusal.startswith("A SQLite log must be")


def test_a_sqlite_url_in_capitals_is_judged_like_any_sqlite_url(isolated_home):
    for url in ("SQLITE:////etc/passwd", "Sqlite+PySqlite:////etc/passwd"):
        assert allowed_log_url(url)  # refused: by its path, or as a database this server cannot open


def test_the_monitor_page_answers_an_overlong_log_path_with_a_sentence(isolated_home):
    at = AppTest.from_file(APP, default_timeout=60)
    at.query_params["ws"] = paths.new_workspace_key()
    at.switch_page("pages/monitor.py")
    at.run()
    at.radio(key="monitor_source").set_value("A prediction log database (URL)").run()
    at.text_input(key="monitor_url").set_value(f"sqlite:///{paths.home()}/{'a' * 5000}.sqlite").run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.error and "plain file path" in at.error[0].value
