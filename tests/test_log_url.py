"""Which prediction-log URLs the Monitor page may open: SQLite files only under $TRANSFERLAB_HOME."""
from __future__ import annotations

import os

import pytest

from core import paths
from core.serving.predlog import LOG_SERVERS_ENV, LogUnavailable, PredictionLog, allowed_log_url


def test_a_sqlite_file_inside_the_home_is_allowed():
    inside = paths.home() / "serving" / "run.sqlite"
    assert allowed_log_url(f"sqlite:///{inside}") is None
    assert allowed_log_url(f"  sqlite:///{inside}  ") is None


def test_database_servers_only_when_the_operator_allows_them_and_only_plain_postgresql(monkeypatch):
    """Otherwise anyone at the page makes the server connect wherever they like (and some drivers' options read
    the server's files, e.g. MySQL's local_infile)."""
    monkeypatch.delenv(LOG_SERVERS_ENV, raising=False)
    assert "TRANSFERLAB_LOG_SERVERS=1" in allowed_log_url("postgresql://monitor@db.example/predictions")
    monkeypatch.setenv(LOG_SERVERS_ENV, "1")
    assert allowed_log_url("postgresql://monitor@db.example/predictions") is None
    for url in ("postgresql://monitor@db.example/predictions?sslmode=disable", "mysql://evil.example/db",
                "mysql+pymysql://evil.example/db?local_infile=1"):
        assert allowed_log_url(url) is not None, url


def test_an_ordinary_file_inside_the_home_is_not_turned_into_a_database():
    marker = paths.home() / "serving" / "notes.txt"
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.write_bytes(b"")
    with pytest.raises(LogUnavailable, match="is not a prediction log"):
        PredictionLog(f"sqlite:///{marker}", create=False)
    assert marker.read_bytes() == b""


def test_files_elsewhere_on_the_server_are_refused_with_a_sentence(tmp_path):
    home = paths.home()
    for url in ("sqlite:////etc/passwd", f"sqlite:///{tmp_path / 'log.sqlite'}",
                f"sqlite:///{home}/serving/../../elsewhere.sqlite",  # '..' climbs out of the home
                f"sqlite:///{home}-twin/log.sqlite"):  # a sibling whose name merely starts like the home
        refusal = allowed_log_url(url)
        assert refusal == f"Only prediction logs inside {home.resolve()} can be opened here.", url


def test_a_symbolic_link_inside_the_home_that_points_outside_is_refused(tmp_path):
    outside = tmp_path / "secret.sqlite"
    outside.write_bytes(b"")
    link = paths.home() / "serving" / "innocent.sqlite"
    link.parent.mkdir(parents=True, exist_ok=True)
    link.unlink(missing_ok=True)
    os.symlink(outside, link)
    try:
        assert allowed_log_url(f"sqlite:///{link}") is not None
        (paths.home() / "serving" / "folder-link").unlink(missing_ok=True)
        os.symlink(tmp_path, paths.home() / "serving" / "folder-link")
        assert allowed_log_url(f"sqlite:///{paths.home()}/serving/folder-link/secret.sqlite") is not None
    finally:
        link.unlink()
        (paths.home() / "serving" / "folder-link").unlink()


def test_relative_paths_memory_uri_tricks_and_garbage_are_refused():
    for url in ("sqlite:///log.sqlite", "sqlite:///serving/../log.sqlite", "sqlite://", "sqlite:///:memory:",
                f"sqlite:///file:{paths.home()}/x.sqlite?uri=true",
                f"sqlite:///{paths.home()}/%2e%2e/%2e%2e/etc/passwd?uri=true"):
        assert allowed_log_url(url), url
    assert "not a database URL" in allowed_log_url("not a url at all")
