"""The Data page checks the workspace quota before it stores an upload, and says so in one sentence."""
from __future__ import annotations

from core import paths
from tests.conftest import class_members, write_zip
from tests.test_app import no_exception, open_page, upload


def test_an_upload_past_the_workspace_limit_is_not_stored(tmp_path, monkeypatch):
    monkeypatch.setenv("TRANSFERLAB_WORKSPACE_QUOTA_MB", "0.01")  # 10 KB
    data = write_zip(tmp_path / "pets.zip", class_members("", {"cats": 10, "dogs": 10})).read_bytes()
    assert len(data) > 10 << 10
    at = upload(open_page("data"), "pets.zip", data)
    no_exception(at)
    errors = [e.value.replace("\\", "") for e in at.error]
    assert errors == [f"'pets.zip' was not stored: This workspace holds 0 KB of its 10 KB limit and these files need "
                      f"{len(data) >> 10} KB more; delete old runs or datasets, or add fewer files."]
    assert any("Upload a zip" in i.value for i in at.info) and not at.metric
    workspace = paths.home() / "workspaces" / at.query_params["ws"]
    assert not list(workspace.glob("uploads/*"))
    monkeypatch.setenv("TRANSFERLAB_WORKSPACE_QUOTA_MB", "100")
    at = upload(open_page("data", ws=at.query_params["ws"]), "pets2.zip", data)
    assert {m.label: m.value for m in at.metric}["Images"] == "20"
