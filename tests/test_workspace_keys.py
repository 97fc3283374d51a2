"""Workspaces in the app: a key the server did not issue is refused, and a mere visit stores nothing."""
from __future__ import annotations

from pathlib import Path

from streamlit.testing.v1 import AppTest

from core import paths
from tests.conftest import class_members, write_zip

APP = str(Path(__file__).resolve().parent.parent / "app.py")


def open_data_page(**query: str) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=60)
    for key, value in query.items():
        at.query_params[key] = value
    at.switch_page("views/data.py")
    return at.run()


def workspaces(home: Path) -> list[str]:
    folder = home / "workspaces"
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_a_visit_without_a_key_gets_a_signed_one_and_no_folder(isolated_home):
    before = workspaces(isolated_home)
    at = open_data_page()
    assert not at.exception
    key = at.query_params["ws"]
    assert paths.is_workspace_key(key) and workspaces(isolated_home) == before
    at.button[0].click().run()  # "Use the sample dataset": now something is saved
    assert workspaces(isolated_home) == sorted([*before, key])


def test_a_key_chosen_in_advance_is_replaced(isolated_home):
    chosen = "0123456789abcdef" * 4
    at = open_data_page(ws=chosen)
    assert not at.exception and at.query_params["ws"] != chosen and paths.is_workspace_key(at.query_params["ws"])
    at.button[0].click().run()
    assert chosen not in workspaces(isolated_home)


def test_an_issued_key_finds_its_workspace_again(isolated_home):
    first = open_data_page()
    first.button[0].click().run()
    again = open_data_page(ws=first.query_params["ws"])
    assert again.query_params["ws"] == first.query_params["ws"]
    assert any("Sample: shapes" in h.value.replace("\\", "") for h in again.subheader)  # shown escaped


def uploads_of(at: AppTest, home: Path) -> list[Path]:
    return sorted((home / "workspaces" / at.query_params["ws"] / "uploads").glob("*.zip"))


def test_replaced_and_refused_uploads_are_deleted(isolated_home, tmp_path):
    first = write_zip(tmp_path / "first.zip", class_members("", {"a": 3, "b": 3})).read_bytes()
    second = write_zip(tmp_path / "second.zip", class_members("", {"c": 3, "d": 3})).read_bytes()
    at = open_data_page()
    at.file_uploader[0].set_value(("first.zip", first, "application/zip")).run()
    [kept] = uploads_of(at, isolated_home)
    at.file_uploader[0].set_value(("second.zip", second, "application/zip")).run()
    assert not kept.exists() and len(uploads_of(at, isolated_home)) == 1
    at.file_uploader[0].set_value(("broken.zip", b"not a zip at all", "application/zip")).run()
    assert not at.exception and any("not a zip archive" in e.value for e in at.error)
    assert uploads_of(at, isolated_home) == []  # the refused one is gone, and so is the one it replaced
