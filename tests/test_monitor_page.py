"""The Monitor page (AppTest) over a log filled by the real service, and the local service it starts and stops."""
from __future__ import annotations

import json
import shutil
import time
import uuid
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from streamlit.testing.v1 import AppTest

from core import paths
from core.data.store import DatasetStore
from core.serving.keep import ImageKeeper
from core.serving.log_access import REFUSED
from core.serving.predlog import PredictionLog, default_url
from core.serving.process import default_keep_dir, free_port
from core.serving.registry import registry
from core.serving.service import create_app
from core.text import md
from tests.conftest import jpeg_bytes

APP = str(Path(__file__).resolve().parent.parent / "app.py")


@pytest.fixture
def served_run(trained_run, shapes_folder, isolated_home) -> tuple[str, Path]:
    """A workspace holding the trained run, whose log has 40 answers from the real service, 2 with feedback."""
    key = paths.new_workspace_key()  # a key this server issued (signed)
    run_dir = isolated_home / "workspaces" / key / "runs" / trained_run.name
    if not run_dir.exists():
        shutil.copytree(trained_run, run_dir)
    pictures = sorted(shapes_folder.rglob("*.jpg"))[:20]
    with TestClient(create_app(run_dir)) as client:
        results = []
        for _ in range(2):
            files = [("file", (p.name, p.read_bytes(), "image/jpeg")) for p in pictures]
            results += client.post("/predict", files=files).json()["results"]
        for result, truth in zip(results[:2], ("circle", "triangle")):
            assert client.post("/feedback", json={"id": result["id"], "label": truth}).status_code == 200
    return key, run_dir


def open_monitor(key: str) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=120)
    at.query_params["ws"] = key
    at.switch_page("views/monitor.py")
    return at.run()


def metric(at: AppTest, label: str) -> str:
    return next(m.value for m in at.metric if m.label == label)


def test_monitor_shows_traffic_trust_drift_feedback_and_how_to_call(served_run):
    key, run_dir = served_run
    at = open_monitor(key)
    assert not at.exception, [e.value for e in at.exception]
    assert metric(at, "Images answered") == "40"
    assert metric(at, "Accuracy on feedback") in ("50%", "0%", "100%")
    assert metric(at, "Accuracy on feedback") == "50%"  # two circles: the model says circle, so triangle is wrong
    assert metric(at, "Not sure").endswith("%") and metric(at, "Latency p50 / p95").endswith("ms")
    texts = " ".join(element.value for element in list(at.info) + list(at.warning))
    assert "Confidence" in texts and ("Stable" in texts or "shift" in texts)
    code = " ".join(block.value for block in at.code)
    assert (f"python -m core serve --run {run_dir.name} --workspace-key-env TRANSFERLAB_WORKSPACE --port 8000"
            in code and 'curl -F "file=@photo.jpg"' in code)
    assert "httpx.post(" in code
    assert "after ws=" in " ".join(c.value for c in at.caption)  # where to find the key, not the key itself
    shown = code + " ".join(e.value for e in list(at.markdown) + list(at.caption) + list(at.info) + list(at.success))
    assert key not in shown and str(paths.home()) not in shown
    assert len(at.get("plotly_chart")) >= 3


def test_user_supplied_labels_are_escaped_in_the_charts(served_run):
    key, run_dir = served_run
    log = PredictionLog(default_url(run_dir.parent.parent, run_dir.name))
    log.write([{"id": uuid.uuid4().hex, "time": time.time(), "model": run_dir.name, "content_hash": "0" * 64,
                "top_k": [], "label": "<b>zebra</b>", "confidence": 0.5, "unsure": True, "unknown": False,
                "latency_ms": 5.0}])
    at = open_monitor(key)
    assert not at.exception
    ticks = [x for chart in at.get("plotly_chart") for trace in json.loads(chart.proto.spec)["data"]
             for x in trace.get("x", []) if isinstance(x, str) and "zebra" in x]
    assert ticks and set(ticks) == {"&lt;b&gt;zebra&lt;/b&gt;"}  # shown as typed, never as bold markup


def test_log_urls_of_other_workspaces_missing_or_foreign_files_get_one_sentence_and_no_traceback(served_run, tmp_path):
    key, run_dir = served_run
    other_key, other_run = served_run_elsewhere(run_dir)
    at = open_monitor(key)
    at.radio(key="monitor_source").set_value("A prediction log database (URL)").run()
    notes = run_dir.parent.parent / "serving" / "notes.txt"
    notes.write_bytes(b"not a log")
    for url in (default_url(other_run.parent.parent, other_run.name),  # another student's log, its run id known
                f"sqlite:///serving/{uuid.uuid4().hex}.sqlite", "sqlite:///serving/notes.txt",  # missing; not a log
                "sqlite:////etc/passwd", f"sqlite:///{paths.home()}/../{tmp_path.name}/log.sqlite"):
        at.text_input(key="monitor_url").set_value(url).run()
        assert not at.exception and [e.value for e in at.error] == [md(REFUSED)], url
        assert not at.metric and not [e for e in at.expander if e.label == "Technical details"]
    at.text_input(key="monitor_url").set_value(f"sqlite:///serving/{run_dir.name}.sqlite").run()  # its own, relative
    assert not at.exception and metric(at, "Images answered") == "40"


def served_run_elsewhere(run_dir: Path) -> tuple[str, Path]:
    """A second workspace serving a copy of the same run (same run id), with a log of its own."""
    key = paths.new_workspace_key()
    other = paths.home() / "workspaces" / key / "runs" / run_dir.name
    shutil.copytree(run_dir, other)
    PredictionLog(default_url(other.parent.parent, other.name)).write(
        [{"id": uuid.uuid4().hex, "time": time.time(), "model": other.name, "content_hash": "0" * 64, "top_k": [],
          "latency_ms": 1.0}])
    return key, other


def test_the_page_shows_how_many_images_each_replica_answered(served_run):
    key, run_dir = served_run
    PredictionLog(default_url(run_dir.parent.parent, run_dir.name)).write(
        [{"id": uuid.uuid4().hex, "time": time.time(), "model": run_dir.name, "content_hash": "0" * 64, "top_k": [],
          "label": "circle", "confidence": 0.9, "latency_ms": 1.0, "replica": f"other-host:{n % 2 + 7}"}
         for n in range(5)])
    at = open_monitor(key)
    assert not at.exception, [e.value for e in at.exception]
    table = at.dataframe[0].value
    counts = dict(zip(table["replica"], table["images"]))
    assert counts["other-host:7"] == 3 and counts["other-host:8"] == 2 and sum(counts.values()) == 45


def test_a_postgresql_log_is_shown_and_an_unreachable_one_names_the_driver(served_run, postgres, trained_run,
                                                                           shapes_folder, monkeypatch):
    key, run_dir = served_run
    monkeypatch.setenv("TRANSFERLAB_LOG_SERVERS", "1")
    url = postgres.new_database()
    files = [("file", (p.name, p.read_bytes(), "image/jpeg")) for p in sorted(shapes_folder.rglob("*.jpg"))[:6]]
    with TestClient(create_app(run_dir, log_url=url)) as client:
        assert client.post("/predict", files=files).status_code == 200
    at = open_monitor(key)
    at.radio(key="monitor_source").set_value("A prediction log database (URL)").run()
    at.text_input(key="monitor_url").set_value(url).run()
    assert not at.exception and metric(at, "Images answered") == "6"
    at.text_input(key="monitor_url").set_value(f"postgresql://postgres@127.0.0.1:{free_port()}/none").run()
    assert not at.exception and "psycopg" in at.error[0].value and not at.metric
    assert not [e for e in at.expander if e.label == "Technical details"]


def test_start_and_stop_a_local_service_from_the_page(served_run, shapes_folder):
    key, run_dir = served_run
    at = open_monitor(key)
    try:
        at.button(key="monitor_start").click().run()
        assert not at.exception, [e.value for e in at.exception]
        service = registry.get(run_dir)
        assert service is not None and any(service.url in s.value for s in at.success)
        assert "1 of 4 services are running: 1 yours, 0 of other workspaces." in [c.value for c in at.caption]
        picture = sorted(shapes_folder.rglob("*.jpg"))[0]
        answer = httpx.post(f"{service.url}/predict", files={"file": (picture.name, picture.read_bytes())}, timeout=60)
        assert answer.status_code == 200 and answer.json()["model"] == run_dir.name
        assert any(service.url in block.value for block in at.code)  # the examples call this very service
        at.button(key="monitor_stop").click().run()
        assert registry.get(run_dir) is None and not service.alive()
    finally:
        registry.stop(run_dir)


def keep_doubtful_answers(run_dir: Path, pictures: list[bytes]) -> None:
    """Kept files and log rows as a service started with --keep-images writes them, all of them unsure."""
    run_id, workspace = run_dir.name, run_dir.parent.parent
    folder = default_keep_dir(workspace, run_id)
    shutil.rmtree(folder, ignore_errors=True)
    keeper, rows = ImageKeeper(folder), []
    for position, picture in enumerate(pictures):
        prediction = uuid.uuid4().hex
        rows.append({"id": prediction, "time": time.time() + position, "model": run_id, "content_hash": "0" * 64,
                     "top_k": [], "label": "<b>zebra</b>", "confidence": 0.4, "unsure": True, "unknown": False,
                     "latency_ms": 5.0, "kept_file": keeper.keep(prediction, picture, "JPEG")})
    PredictionLog(default_url(workspace, run_id)).write(rows)


def test_kept_images_are_sent_to_the_labelling_pool_once(served_run, shapes_folder):
    key, run_dir = served_run
    new = [jpeg_bytes((40 * i, 90, 200), (96, 96)) for i in range(3)]
    trained_on = sorted(shapes_folder.rglob("*.jpg"))[0].read_bytes()
    keep_doubtful_answers(run_dir, new + new[:1] + [trained_on])  # one sent twice; one the model learnt from
    at = open_monitor(key)
    assert not at.exception, [e.value for e in at.exception]
    assert not any("comes with the dataset store" in c.value for c in at.caption)

    at.button(key="monitor_send").click().run()

    assert not at.exception, [e.value for e in at.exception]
    assert at.success[-1].value.startswith("3 images added to the unlabelled pool of")
    assert "2 already there" in at.success[-1].value
    assert [link.proto.page for link in at.get("page_link")] == ["label"]  # the Label page, in the navigation
    store = DatasetStore(paths.home() / "workspaces" / key / "datasets")
    [dataset] = store.datasets()
    assert len(dataset.pool()) == 3 and sum(dataset.counts().values()) == 36  # the training images came along

    at.button(key="monitor_send").click().run()
    assert at.success[-1].value.startswith("0 images added") and "5 already there" in at.success[-1].value
    assert store.version(dataset.dataset).number == dataset.number
