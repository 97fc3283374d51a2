"""What the service logs, on SQLite and on PostgreSQL: one row per answer with the replica that gave it; a retry
(same Idempotency-Key) answered from its row, never logged twice; feedback limited to the model's classes, the first
label kept, every later one in the history with who and when; a one-sentence 503 while the database is down."""
from __future__ import annotations

import os
import socket
import uuid
from pathlib import Path

import psycopg
import pytest
from fastapi.testclient import TestClient

from core.serving import monitor
from core.serving.predlog import MAX_FEEDBACK, PredictionLog
from core.serving.service import create_app
from tests.conftest import LOG_BACKENDS, new_log_url


@pytest.fixture(scope="module", params=LOG_BACKENDS)
def served(request, trained_run, tmp_path_factory) -> tuple[str, TestClient]:
    url = new_log_url(request.param, tmp_path_factory.mktemp("log"), request)
    with TestClient(create_app(trained_run, log_url=url, max_batch=8)) as client:
        yield url, client


def pictures(shapes_folder: Path, count: int = 1, start: int = 0) -> list[tuple[str, tuple[str, bytes, str]]]:
    paths = sorted(shapes_folder.rglob("*.jpg"))[start:start + count]
    return [("file", (p.name, p.read_bytes(), "image/jpeg")) for p in paths]


def sentence(response) -> str:
    detail = response.json()["detail"]
    assert isinstance(detail, str) and detail.endswith(".") and "\n" not in detail and "Traceback" not in detail
    return detail


def test_each_row_records_the_replica_that_answered(served, shapes_folder):
    url, client = served
    answer = client.post("/predict", files=pictures(shapes_folder)).json()["results"][0]
    replica = client.get("/health").json()["replica"]
    assert replica == f"{socket.gethostname()}:{os.getpid()}"  # TestClient serves in this very process
    [row] = PredictionLog(url).by_id([answer["id"]]).values()
    assert row["replica"] == replica
    assert monitor.per_replica([row]) == [{"replica": replica, "images": 1}]


def test_a_retry_with_the_same_idempotency_key_is_answered_from_its_row_and_logged_once(served, shapes_folder):
    url, client = served
    log, key = PredictionLog(url), {"Idempotency-Key": uuid.uuid4().hex}
    first = client.post("/predict", files=pictures(shapes_folder, 2), headers=key)
    assert first.status_code == 200, first.text
    logged = log.count()
    again = client.post("/predict", files=pictures(shapes_folder, 2), headers=key)  # the client saw no answer
    assert again.json()["results"] == first.json()["results"]  # the same ids and answers, latency included
    assert log.count() == logged
    other = client.post("/predict", files=pictures(shapes_folder, 2), headers={"Idempotency-Key": uuid.uuid4().hex})
    assert {r["id"] for r in other.json()["results"]}.isdisjoint(r["id"] for r in first.json()["results"])
    different = client.post("/predict", files=pictures(shapes_folder, 2, start=5), headers=key)  # other images
    assert {r["id"] for r in different.json()["results"]}.isdisjoint(r["id"] for r in first.json()["results"])
    assert log.count() == logged + 4
    bad = client.post("/predict", files=pictures(shapes_folder), headers={"Idempotency-Key": "a b"})
    assert bad.status_code == 422 and "idempotency-key" in sentence(bad)


def test_feedback_outside_the_models_classes_or_with_control_characters_is_refused(served, shapes_folder):
    url, client = served
    answer = client.post("/predict", files=pictures(shapes_folder)).json()["results"][0]
    for label in ("zebra", "Circle", "circle\x00", "circ\x07le", "circle\n", "\x00" * 50):
        response = client.post("/feedback", json={"id": answer["id"], "label": label})
        assert response.status_code == 422, (label, response.text)
        assert "label" in sentence(response)
    assert "control characters" in sentence(client.post("/feedback", json={"id": answer["id"], "label": "a\x00"}))
    assert "one of this model's classes" in sentence(client.post("/feedback", json={"id": answer["id"], "label": "x"}))
    log = PredictionLog(url)
    assert log.by_id([answer["id"]])[answer["id"]]["feedback_label"] is None and not log.feedback_history(answer["id"])


def test_the_first_label_counts_and_each_change_is_kept_with_who_and_when(served, shapes_folder):
    url, client = served
    answer = client.post("/predict", files=pictures(shapes_folder)).json()["results"][0]
    first = client.post("/feedback", json={"id": answer["id"], "label": "square"})
    assert first.status_code == 200 and first.json()["counted_label"] == "square"
    changed = client.post("/feedback", json={"id": answer["id"], "label": "triangle"})
    assert changed.status_code == 200 and changed.json() == {"id": answer["id"], "label": "triangle",
                                                              "counted_label": "square", "known_label": True}
    log = PredictionLog(url)
    row = log.by_id([answer["id"]])[answer["id"]]
    assert row["feedback_label"] == "square"  # overwriting is not possible: the Monitor's accuracy counts this one
    history = log.feedback_history(answer["id"])
    assert [(h["label"], h["client"], h["source"]) for h in history] == [("square", "testclient", "api"),
                                                                          ("triangle", "testclient", "api")]
    assert row["time"] <= history[0]["time"] <= history[1]["time"]
    assert monitor.feedback_accuracy([row])["images"] == 1
    for _ in range(MAX_FEEDBACK - 2):
        assert client.post("/feedback", json={"id": answer["id"], "label": "circle"}).status_code == 200
    full = client.post("/feedback", json={"id": answer["id"], "label": "circle"})
    assert full.status_code == 409 and str(MAX_FEEDBACK) in sentence(full)
    assert len(log.feedback_history(answer["id"])) == MAX_FEEDBACK


def _allow_connections(postgres, database: str, allowed: bool) -> None:
    with psycopg.connect(postgres.url("postgres"), autocommit=True) as connection:
        connection.execute(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS {str(allowed).lower()}')
        if not allowed:  # and end the service's pooled connections, as a server going down does
            connection.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (database,))


def test_while_the_log_database_refuses_connections_answers_are_a_503_sentence_and_resume(postgres, trained_run,
                                                                                           shapes_folder):
    url = postgres.new_database()
    database = url.rsplit("/", 1)[-1]
    with TestClient(create_app(trained_run, log_url=url)) as client:
        answered = [client.post("/predict", files=pictures(shapes_folder)).json()["results"][0]["id"]]
        _allow_connections(postgres, database, False)
        try:
            down = client.post("/predict", files=pictures(shapes_folder))
            assert down.status_code == 503 and "prediction log" in sentence(down)
            assert down.headers["retry-after"]
            feedback = client.post("/feedback", json={"id": answered[0], "label": "circle"})
            assert feedback.status_code == 503 and "prediction log" in sentence(feedback)
            assert client.get("/health").status_code == 200  # still up: it only cannot log, so it does not answer
        finally:
            _allow_connections(postgres, database, True)
        back = client.post("/predict", files=pictures(shapes_folder))
        assert back.status_code == 200
        answered.append(back.json()["results"][0]["id"])
    assert {r["id"] for r in PredictionLog(url).rows()} == set(answered)  # the refused request left no row


def test_replicas_starting_together_create_the_schema_once(log_url):
    """Eight replicas opening a fresh log at the same moment: every one starts (PostgreSQL's concurrent CREATE TABLE
    fails without the advisory lock), and the tables exist once."""
    import threading

    barrier, failures = threading.Barrier(8), []

    def replica() -> None:
        barrier.wait()
        try:
            PredictionLog(log_url).close()
        except Exception as error:  # noqa: BLE001 - collected and shown by the assertion
            failures.append(repr(error))

    threads = [threading.Thread(target=replica) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not failures, failures
    log = PredictionLog(log_url, create=False)
    assert log.count() == 0 and log.rows() == []
