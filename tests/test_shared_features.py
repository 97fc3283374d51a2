"""The shipped sample's features are computed once for a whole class; a student's own upload never shares them.

Real training runs (the bundled backbone, feature extraction, tiny images), each in its own workspace's runs folder,
through the training process's one entry (core.runs.pipeline.start_run): a run says in its run_started event
whether it found the frozen layers' output already cached.
"""
from __future__ import annotations

import shutil

import pytest

from core import paths
from core.data import public, sample
from core.runs import folder as runs
from core.runs import pipeline
from core.training.config import TrainConfig
from core.training.events import RUN_STARTED
from core.workspace import Workspace

QUICK = dict(image_size=64, epochs=1, early_stopping=0, batch_size=16)


@pytest.fixture
def home(tmp_path, monkeypatch):
    folder = tmp_path / "home"
    monkeypatch.setenv("TRANSFERLAB_HOME", str(folder))
    return folder


def train(workspace: Workspace, data) -> bool:
    """Train once in this workspace; True when the features came from the cache."""
    run = runs.create(workspace.runs, TrainConfig(data=str(data), **QUICK))
    assert pipeline.start_run(run.path, paths.home()) == "finished", run.status()
    return run.records(RUN_STARTED)[0]["features_cached"]


def workspace() -> Workspace:
    return Workspace.of(paths.new_workspace_key())


def test_the_public_sample_is_computed_once_for_every_workspace(home):
    assert train(workspace(), sample.SAMPLE_ZIP) is False
    assert train(workspace(), sample.SAMPLE_ZIP) is True  # another student: the class computed it already


def test_the_same_private_upload_in_two_workspaces_is_computed_in_each(home, tmp_path):
    folder = sample.write_folder(tmp_path / "mine", per_class=8, size=80, seed=3)
    archive = shutil.make_archive(str(tmp_path / "mine"), "zip", folder)
    anna, ben = workspace(), workspace()
    for space in (anna, ben):
        space.uploads.mkdir(parents=True)
        shutil.copy(archive, space.uploads / "upload.zip")
    assert train(anna, anna.uploads / "upload.zip") is False
    assert train(ben, ben.uploads / "upload.zip") is False  # same bytes, other workspace: nothing learnt from speed
    assert train(anna, anna.uploads / "upload.zip") is True  # one's own re-run is still fast


def test_only_the_exact_bytes_of_shipped_data_are_public(home):
    space = workspace()
    space.uploads.mkdir(parents=True)
    copy = shutil.copy(sample.SAMPLE_ZIP, space.uploads / "sample.zip")
    assert public.shared_scope(copy) == public.shared_scope(sample.SAMPLE_ZIP) is not None
    with open(copy, "ab") as handle:
        handle.write(b"\0")
    assert public.shared_scope(copy) is None
    (space.uploads / public.SHARED_MARKER).write_text("class-anything")  # a marker outside the classes folder
    assert public.shared_scope(copy) is None


def test_the_pipeline_scopes_a_private_upload_to_its_workspace(home):
    space = workspace()
    run = runs.create(space.runs, TrainConfig(data=str(space.uploads / "x.zip")))
    assert pipeline.feature_cache(home, run).namespace == str(space.runs.resolve())
    shared = runs.create(space.runs, TrainConfig(data=str(sample.SAMPLE_ZIP)))
    assert pipeline.feature_cache(home, shared).namespace == f"public:{public.digest(sample.SAMPLE_ZIP)}"
