"""Which prediction-log URLs the Monitor page may open: SQLite files only inside the visitor's own workspace, every
refusal of a file in one identical sentence (nothing tells which files exist)."""
from __future__ import annotations

import os
import time
import uuid

import pytest

from core import paths
from core.serving.log_access import LOG_SERVERS_ENV, REFUSED, open_typed_log, resolve_log_url
from core.serving.predlog import LogUnavailable, PredictionLog, default_url


@pytest.fixture
def workspaces(tmp_path):
    """Two workspaces of one server; the second holds a real log of a run whose id the first one knows."""
    mine, theirs = (paths.home() / "workspaces" / paths.new_workspace_key() for _ in range(2))
    log = PredictionLog(default_url(theirs, "run1"))
    log.write([{"id": uuid.uuid4().hex, "time": time.time(), "model": "run1", "content_hash": "0" * 64, "top_k": [],
                "latency_ms": 1.0}])
    (mine / "serving").mkdir(parents=True)
    return mine, theirs


def refusal(url: str, workspace) -> str:
    with pytest.raises(LogUnavailable) as refused:
        open_typed_log(url, workspace)
    return str(refused.value)


def test_a_log_inside_the_own_workspace_opens_by_relative_or_full_path(workspaces):
    mine, _ = workspaces
    PredictionLog(default_url(mine, "run2"))
    for url in ("sqlite:///serving/run2.sqlite", default_url(mine, "run2"), f"  {default_url(mine, 'run2')}  "):
        assert resolve_log_url(url, mine) == default_url(mine.resolve(), "run2")
        assert open_typed_log(url, mine).count() == 0


def test_another_workspaces_log_and_a_missing_or_foreign_file_get_the_same_sentence(workspaces, tmp_path):
    """A student who knows another's run id must not read their log, nor learn which files exist."""
    mine, theirs = workspaces
    (mine / "serving" / "notes.txt").write_bytes(b"")  # a file of the own workspace that is not a log
    (mine / "serving" / "empty.sqlite").write_bytes(b"")
    for url in (default_url(theirs, "run1"),  # exists, a real log, another workspace
                f"sqlite:///{mine}/../{theirs.name}/serving/run1.sqlite",  # '..' climbs into it
                "sqlite:///../" + theirs.name + "/serving/run1.sqlite",  # relative, climbing
                f"sqlite:///{mine}/serving/missing.sqlite", "sqlite:///serving/missing.sqlite",
                f"sqlite:///{mine}/serving/notes.txt", "sqlite:///serving/empty.sqlite",
                "sqlite:////etc/passwd", f"sqlite:///{tmp_path / 'log.sqlite'}", f"sqlite:///{mine}-twin/log.sqlite",
                f"sqlite:///{mine}/log\x00/../../etc/passwd", f"sqlite:///{mine}/{'a' * 5000}.sqlite",
                "sqlite://", "sqlite:///:memory:", f"sqlite:///file:{mine}/x.sqlite?uri=true",
                f"sqlite:///{mine}/%2e%2e/%2e%2e/etc/passwd?uri=true", "not a url at all", "SQLITE:////etc/passwd"):
        assert refusal(url, mine) == REFUSED, url
    assert (mine / "serving" / "notes.txt").read_bytes() == b""  # never turned into a database
    assert "/" not in REFUSED.replace("sqlite:///serving/RUN_ID.sqlite", "")  # names no server path


def test_a_symbolic_link_inside_the_workspace_that_points_outside_is_refused(workspaces):
    mine, theirs = workspaces
    os.symlink(theirs / "serving" / "run1.sqlite", mine / "serving" / "innocent.sqlite")
    os.symlink(theirs / "serving", mine / "serving" / "folder-link")
    assert refusal("sqlite:///serving/innocent.sqlite", mine) == REFUSED
    assert refusal("sqlite:///serving/folder-link/run1.sqlite", mine) == REFUSED


def test_database_servers_only_when_the_operator_allows_them_and_only_plain_postgresql(monkeypatch, workspaces):
    """Otherwise anyone at the page makes the server connect wherever they like (and some drivers' options read
    the server's files, e.g. MySQL's local_infile)."""
    mine, _ = workspaces
    monkeypatch.delenv(LOG_SERVERS_ENV, raising=False)
    assert "TRANSFERLAB_LOG_SERVERS=1" in refusal("postgresql://monitor@db.example/predictions", mine)
    monkeypatch.setenv(LOG_SERVERS_ENV, "1")
    assert resolve_log_url("postgresql://monitor@db.example/predictions", mine)
    assert resolve_log_url("postgresql+psycopg://monitor@db.example/predictions", mine)
    for url in ("postgresql://monitor@db.example/predictions?sslmode=disable", "mysql://evil.example/db",
                "mysql+pymysql://evil.example/db?local_infile=1", "postgresql+pg8000://db.example/p"):
        assert "Only a PostgreSQL URL" in refusal(url, mine) or "not a prediction log" in refusal(url, mine), url


def test_an_unreachable_postgresql_log_names_its_driver(monkeypatch, workspaces):
    mine, _ = workspaces
    monkeypatch.setenv(LOG_SERVERS_ENV, "1")
    from core.serving.process import free_port

    log = open_typed_log(f"postgresql://monitor@127.0.0.1:{free_port()}/predictions", mine)  # nobody listens there
    with pytest.raises(LogUnavailable, match="psycopg"):
        log.rows()
