"""Hostile inputs to the serving side: log URLs typed into the Monitor page, kept files the labelling pool reads."""
from __future__ import annotations

import io
import os
import time
import uuid
from pathlib import Path

import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

from core import paths
from core.data import intake
from core.data.store import DatasetStore
from core.serving.keep import ImageKeeper, kept_images_for_review
from core.serving.log_access import REFUSED, resolve_log_url
from core.serving.predlog import LogUnavailable, PredictionLog
from core.serving.to_labelling import send_for_labelling
from core.text import md
from tests.conftest import jpeg_bytes

APP = str(Path(__file__).resolve().parent.parent / "app.py")


def test_log_urls_that_name_no_possible_file_are_refused_in_a_sentence(isolated_home):
    home = paths.home()
    for url in (f"sqlite:///{home}/log\x00/../../etc/passwd", f"sqlite:///{home}/{'a' * 5000}.sqlite",
                f"sqlite:///{home}/" + "/".join(["b" * 200] * 30) + "/log.sqlite"):
        with pytest.raises(LogUnavailable, match="not a prediction log of this workspace"):
            resolve_log_url(url, home / "workspaces" / paths.new_workspace_key())


def test_a_sqlite_url_in_capitals_is_judged_like_any_sqlite_url(isolated_home):
    for url in ("SQLITE:////etc/passwd", "Sqlite+PySqlite:////etc/passwd"):
        with pytest.raises(LogUnavailable):  # refused: by its path, or as a database this server cannot open
            resolve_log_url(url, paths.home() / "workspaces" / paths.new_workspace_key())


def test_the_monitor_page_answers_an_overlong_log_path_with_a_sentence(isolated_home):
    at = AppTest.from_file(APP, default_timeout=60)
    at.query_params["ws"] = paths.new_workspace_key()
    at.switch_page("views/monitor.py")
    at.run()
    at.radio(key="monitor_source").set_value("A prediction log database (URL)").run()
    at.text_input(key="monitor_url").set_value(f"sqlite:///{paths.home()}/{'a' * 5000}.sqlite").run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.error and at.error[0].value == md(REFUSED)


def mpo_bytes() -> bytes:
    """A JPEG as many phones write it (with a second, preview picture): Pillow calls its format MPO."""
    buffer = io.BytesIO()
    Image.new("RGB", (96, 96), (10, 120, 60)).save(buffer, "MPO", save_all=True,
                                                      append_images=[Image.new("RGB", (96, 96), "white")])
    return buffer.getvalue()


def log_with_kept_files(log_url: str, kept_files: list[str | None]) -> PredictionLog:
    log = PredictionLog(log_url)
    log.write([{"id": uuid.uuid4().hex, "time": time.time() + position, "model": "run1", "content_hash": "0" * 64,
                "top_k": [], "latency_ms": 3.0, "kept_file": kept, "label": "cat", "confidence": 0.3,
                "unsure": True, "unknown": False} for position, kept in enumerate(kept_files)])
    return log


def test_a_kept_phone_photo_reaches_the_labelling_pool(tmp_path, log_url):
    keeper = ImageKeeper(tmp_path / "kept")
    name = keeper.keep(uuid.uuid4().hex, mpo_bytes(), Image.open(io.BytesIO(mpo_bytes())).format)
    review = kept_images_for_review(log_with_kept_files(log_url, [name]), keeper.folder)
    store = DatasetStore(tmp_path / "store")
    dataset = intake.new_pool(store, "pool", ["cat", "dog"]).dataset
    sent = send_for_labelling(store, dataset, review, tmp_path / "work")
    assert (sent.added, sent.skipped) == (1, [])


def test_only_files_the_service_kept_are_offered_for_labelling(tmp_path, log_url):
    """A log row naming a path outside the kept folder, or a link placed in it, never reads another file."""
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "private.jpg").write_bytes(jpeg_bytes(size=(96, 96)))
    keeper = ImageKeeper(tmp_path / "kept")
    genuine = keeper.keep(uuid.uuid4().hex, jpeg_bytes((0, 0, 200), (96, 96)), "JPEG")
    os.symlink(outside / "private.jpg", keeper.folder / "linked.jpg")
    log = log_with_kept_files(log_url, [genuine, "../elsewhere/private.jpg", "/etc/passwd", "linked.jpg"])
    review = kept_images_for_review(log, keeper.folder)
    assert [item["path"].name for item in review] == [genuine]
