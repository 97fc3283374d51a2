"""Shared fixtures: an isolated TransferLab home and TORCH_HOME per test session, real image files."""
from __future__ import annotations

import io
import os
import zipfile
from pathlib import Path

import pytest
from PIL import Image

from core.data import sample

if os.environ.get("PYTEST_XDIST_WORKER"):
    # One worker per core (scripts/test.sh): one compute thread each, and for the processes tests start, or their
    # threads spin against each other's.
    os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = "1"
    import torch

    torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def isolated_home(tmp_path_factory, monkeypatch):
    home = tmp_path_factory.getbasetemp() / "transferlab-home"
    monkeypatch.setenv("TRANSFERLAB_HOME", str(home))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path_factory.getbasetemp() / "torch-home"))
    monkeypatch.setenv("TRANSFERLAB_OFFLINE", "1")  # never try the network in tests
    # Sentences are asserted in English: a developer's zh_CN locale must not translate the commands tests start
    # (LANGUAGE is read first; tests of the Chinese text set it themselves).
    monkeypatch.setenv("LANGUAGE", "en")
    return home


def jpeg_bytes(colour=(200, 30, 30), size=(48, 40)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, "JPEG")
    return buffer.getvalue()


def write_zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return path


def class_members(prefix: str, classes: dict[str, int]) -> dict[str, bytes]:
    """`count` distinct small JPEGs per class (distinct colours, so no accidental duplicates)."""
    members = {}
    for c, (label, count) in enumerate(classes.items()):
        for i in range(count):
            members[f"{prefix}{label}/img_{i}.jpg"] = jpeg_bytes((c * 60 % 256, i * 9 % 256, 100 + c))
    return members


@pytest.fixture(scope="session")
def postgres():
    """A real PostgreSQL server for the session (Debian's package, a throwaway cluster), or a skip saying how to
    install it."""
    from tests.postgres_server import PACKAGE_HINT, find_binaries, running_postgres

    if find_binaries() is None:
        pytest.skip(PACKAGE_HINT)
    with running_postgres() as server:
        yield server


LOG_BACKENDS = ("sqlite", "postgresql")


def new_log_url(backend: str, folder: Path, request) -> str:
    """A fresh, empty prediction-log database of that backend (PostgreSQL: a new database on the session's server)."""
    if backend == "sqlite":
        return f"sqlite:///{folder / 'predictions.sqlite'}"
    return request.getfixturevalue("postgres").new_database()


@pytest.fixture(params=LOG_BACKENDS)
def log_url(request, tmp_path) -> str:
    """Every test of the log runs on SQLite and on PostgreSQL."""
    return new_log_url(request.param, tmp_path, request)


@pytest.fixture(scope="session")
def shapes_folder(tmp_path_factory) -> Path:
    """Real JPEGs of three shapes, 12 per class, 96 px: big enough to learn, small enough to be quick."""
    return sample.write_folder(tmp_path_factory.mktemp("shapes"), per_class=12, size=96, seed=1)


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory, shapes_folder) -> Path:
    """One finished run (bundled pretrained backbone, feature extraction), shared by prediction tests."""
    import threading

    from core.runs import folder as runs
    from core.runs import pipeline as runner
    from core.training.config import TrainConfig
    from core.training.events import EventLog

    root = tmp_path_factory.mktemp("runs")
    config = TrainConfig(data=str(shapes_folder), epochs=4, image_size=96, early_stopping=0)
    run_dir = runs.create(root, config).path
    state = runner.execute(config, run_dir, EventLog(run_dir / "metrics.jsonl"), threading.Event(),
                           tmp_path_factory.mktemp("work"))
    assert state == "finished", runs.Run(run_dir).status()
    return run_dir
