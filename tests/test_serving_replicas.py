"""`python -m core serve --workers 3`: three replicas on one port sharing one log (SQLite, PostgreSQL) under a
bounded load on loopback. One replica is killed with SIGKILL mid-load, and the PostgreSQL server is restarted
mid-load: every answered image has exactly one row, none is answered without one, and the clients' retries (same
Idempotency-Key) are never logged twice; while the database is down each request gets a one-sentence 503 at once."""
from __future__ import annotations

import os
import signal
import threading
import time
import uuid
from collections import Counter
from pathlib import Path

import httpx
import pytest

from core.serving.predlog import PredictionLog
from core.serving.process import ServiceProcess, start_service, stop_service
from tests.conftest import LOG_BACKENDS
from tests.postgres_server import PACKAGE_HINT, find_binaries, running_postgres

REPLICAS = 3
CLIENT_TIMEOUT = 30.0  # a request still unanswered after this fails the test: a database down must not hang answers


class Load:
    """Concurrent clients, each sending `per_client` one-image requests; a request is retried with its own
    Idempotency-Key after a dropped connection or a 503 until answered (within `patience` seconds)."""

    def __init__(self, url: str, pictures: list[tuple[str, bytes]], clients: int, per_client: int,
                 patience: float = 150.0) -> None:
        self.url, self.pictures, self.patience = url, pictures, patience
        self.answered: list[str] = []
        self.refusals: list[str] = []  # the 503 sentences
        self.dropped: list[str] = []  # connections the killed replica left hanging
        self.failures: list[str] = []
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self._client, args=(n, per_client)) for n in range(clients)]

    def start(self) -> Load:
        for thread in self.threads:
            thread.start()
        return self

    def join(self) -> Load:
        for thread in self.threads:
            thread.join(self.patience + CLIENT_TIMEOUT + 30)
        return self

    def _client(self, number: int, count: int) -> None:
        with httpx.Client(base_url=self.url, timeout=CLIENT_TIMEOUT) as http:
            for sent in range(count):
                name, data = self.pictures[(number * 7 + sent) % len(self.pictures)]
                self._send(http, name, data, uuid.uuid4().hex)

    def _send(self, http: httpx.Client, name: str, data: bytes, key: str) -> None:
        deadline = time.monotonic() + self.patience
        while time.monotonic() < deadline:
            try:
                response = http.post("/predict", files={"file": (name, data, "image/jpeg")},
                                     headers={"Idempotency-Key": key})
            except httpx.TimeoutException as error:
                with self.lock:
                    self.failures.append(f"no answer within {CLIENT_TIMEOUT} s ({type(error).__name__})")
                return
            except httpx.TransportError as error:  # the replica died with this connection: retry, same key
                with self.lock:
                    self.dropped.append(type(error).__name__)
                time.sleep(0.1)
                continue
            with self.lock:
                if response.status_code == 200:
                    self.answered.extend(r["id"] for r in response.json()["results"])
                    return
                if response.status_code != 503:
                    self.failures.append(f"{response.status_code}: {response.text[:200]}")
                    return
                self.refusals.append(response.json()["detail"])
            time.sleep(0.2)
        with self.lock:
            self.failures.append("never answered")


def wait_for_replicas(url: str, count: int, timeout: float = 240.0) -> set[str]:
    """The replicas seen answering /health, once `count` distinct ones did (each loads the model on its own)."""
    seen: set[str] = set()
    deadline = time.monotonic() + timeout
    while len(seen) < count and time.monotonic() < deadline:
        try:
            with httpx.Client(timeout=5) as fresh:  # a new connection each time: the kernel picks a replica
                seen.add(fresh.get(f"{url}/health").json()["replica"])
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    assert len(seen) >= count, f"only {len(seen)} of {count} replicas came up"
    return seen


def wait_for_rows(log: PredictionLog, at_least: int, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while log.count() < at_least and time.monotonic() < deadline:
        time.sleep(0.1)


def assert_one_row_per_answer(log: PredictionLog, load: Load, earlier: set[str]) -> list[dict]:
    """The rows this load added: exactly one per answered image."""
    assert not load.failures, load.failures[:5]
    rows = [row for row in log.rows() if row["id"] not in earlier]
    ids = [row["id"] for row in rows]
    assert len(ids) == len(set(ids))
    assert len(load.answered) == len(set(load.answered))
    assert set(ids) == set(load.answered), (len(ids), len(load.answered))  # none missing, none logged twice
    return rows


@pytest.fixture(scope="module")
def own_postgres():
    """A PostgreSQL server of this module alone (it is restarted mid-load)."""
    if find_binaries() is None:
        pytest.skip(PACKAGE_HINT)
    with running_postgres() as server:
        yield server


@pytest.fixture(scope="module", params=LOG_BACKENDS)
def replicas(request, trained_run, tmp_path_factory) -> tuple[ServiceProcess, str, str]:
    folder = tmp_path_factory.mktemp("replicas")
    if request.param == "sqlite":
        url = f"sqlite:///{folder / 'log.sqlite'}"
    else:
        url = request.getfixturevalue("own_postgres").new_database()
    service = start_service(trained_run, log_url=url, max_batch=8, workers=REPLICAS, output=folder / "out.txt",
                            timeout=240)
    try:
        wait_for_replicas(service.url, REPLICAS)
        yield service, url, request.param
    finally:
        stop_service(service)


def pictures(shapes_folder: Path) -> list[tuple[str, bytes]]:
    return [(p.name, p.read_bytes()) for p in sorted(shapes_folder.rglob("*.jpg"))[:12]]


def test_a_replica_killed_mid_load_loses_no_row_and_logs_none_twice(replicas, shapes_folder):
    service, url, _ = replicas
    log = PredictionLog(url, create=False)
    earlier = {row["id"] for row in log.rows()}
    load = Load(service.url, pictures(shapes_folder), clients=4, per_client=12).start()
    wait_for_rows(log, len(earlier) + 12)
    busiest = Counter(row["replica"] for row in log.rows() if row["id"] not in earlier).most_common(1)[0][0]
    killed_at = time.time()
    os.kill(int(busiest.rsplit(":", 1)[1]), signal.SIGKILL)  # no shutdown, no flush, no goodbye
    load.join()
    rows = assert_one_row_per_answer(log, load, earlier)
    assert len(load.answered) == 4 * 12
    by_replica = Counter(row["replica"] for row in rows)
    assert by_replica[busiest] > 0 and len(by_replica) >= 2, by_replica
    assert any(row["time"] > killed_at and row["replica"] != busiest for row in rows)  # the others went on
    assert service.alive(), service.output_tail()  # the supervisor survived the loss of a replica


def test_a_database_restart_mid_load_is_a_503_sentence_then_answers_resume(replicas, own_postgres, shapes_folder):
    service, url, backend = replicas
    if backend != "postgresql":
        pytest.skip("a database server restart concerns PostgreSQL")
    log = PredictionLog(url, create=False)
    earlier = {row["id"] for row in log.rows()}
    load = Load(service.url, pictures(shapes_folder), clients=4, per_client=12).start()
    wait_for_rows(log, len(earlier) + 8)
    own_postgres.stop("fast")  # mid-load: every pooled connection is cut
    try:
        time.sleep(3)
    finally:
        own_postgres.start()
    load.join()
    assert load.refusals, "no request was refused while the database was down"
    for sentence in set(load.refusals):
        assert sentence.endswith(".") and "\n" not in sentence and "prediction log" in sentence
    assert_one_row_per_answer(log, load, earlier)
    assert len(load.answered) == 4 * 12  # every request answered once the database was back
