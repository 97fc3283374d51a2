"""Local services in a classroom: slots per workspace and in all, counted without names, an idle service stopped
by itself; `serve --run RUN_ID --workspace-key-env NAME` so that no command shows a workspace path (it holds the
key); a service that fails to start shows no server path."""
from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from core import paths
from core.cli import main as cli_main
from core.serving import process
from core.serving.process import ROOT, ServiceProcess, ServiceStartError, free_port, stop_service, wait_until_healthy
from core.serving.registry import ServiceRegistry


def workspace_with_run(trained_run: Path, run_id: str | None = None) -> tuple[str, Path]:
    """A new workspace (a key this server issued) holding a copy of the trained run; (key, run folder)."""
    key = paths.new_workspace_key()
    run_dir = paths.home() / "workspaces" / key / "runs" / (run_id or trained_run.name)
    shutil.copytree(trained_run, run_dir)
    return key, run_dir


def test_slots_per_workspace_and_in_all_are_counted_and_an_idle_service_stops(trained_run, shapes_folder, monkeypatch):
    registry = ServiceRegistry(limit=2, per_workspace=1)
    _, first = workspace_with_run(trained_run)
    second = first.parent / "second-run"
    shutil.copytree(first, second)
    _, elsewhere = workspace_with_run(trained_run)
    _, third = workspace_with_run(trained_run)
    mine, theirs, latecomer = (run.parent.parent for run in (first, elsewhere, third))
    try:
        service = registry.start(first, mine)
        picture = sorted(shapes_folder.rglob("*.jpg"))[0]
        httpx.post(f"{service.url}/predict", files={"file": (picture.name, picture.read_bytes())}, timeout=60)
        health = httpx.get(f"{service.url}/health", timeout=10).json()
        assert health["requests"] == 1 and health["idle_s"] < 60  # /health itself is not a request
        assert registry.reap_idle() == [] and service.alive()  # not idle: the default is 15 minutes
        with pytest.raises(ServiceStartError, match="This workspace already runs 1 local service"):
            registry.start(second, mine)  # one student cannot take the class's slots
        assert registry.usage(mine).sentence() == "1 of 2 services are running: 1 yours, 0 of other workspaces."
        registry.start(elsewhere, theirs)
        assert registry.usage(latecomer).sentence() == "2 of 2 services are running: 0 yours, 2 of other workspaces."
        with pytest.raises(ServiceStartError, match=r"All 2 local services .* \(0 yours, 2 of other workspaces\)"):
            registry.start(third, latecomer)
        assert registry.get(third) is None

        monkeypatch.setenv(process.IDLE_ENV, "1")
        deadline = time.monotonic() + 60
        while registry.usage(mine).running and time.monotonic() < deadline:
            time.sleep(1.2)  # nobody calls them: /health does not count as a request
            registry.reap_idle()
        assert registry.usage(mine).sentence().startswith("No local service is running")
        assert registry.get(first) is None and registry.get(elsewhere) is None
        registry.start(third, latecomer)  # the slots are free again
        assert registry.usage(latecomer).yours == 1
    finally:
        registry.stop_all()


def test_serve_by_run_id_reads_the_workspace_key_from_the_environment(trained_run, capsys, monkeypatch, tmp_path):
    key, run_dir = workspace_with_run(trained_run)
    monkeypatch.delenv("TL_WORKSPACE", raising=False)
    for value in (None, "0" * 64, key[:-1] + ("0" if key[-1] != "0" else "1")):  # unset, made up, tampered
        if value is not None:
            monkeypatch.setenv("TL_WORKSPACE", value)
        assert cli_main(["serve", "--run", run_dir.name, "--workspace-key-env", "TL_WORKSPACE"]) == 2
        error = capsys.readouterr().err
        assert "after ws=" in error and str(paths.home()) not in error and key not in error
    monkeypatch.setenv("TL_WORKSPACE", key)
    for run_id in ("../../" + run_dir.name, "nope", run_dir.name + "/.."):
        assert cli_main(["serve", "--run", run_id, "--workspace-key-env", "TL_WORKSPACE"]) == 2
        error = capsys.readouterr().err
        assert "this workspace has no run with that id" in error and str(paths.home()) not in error

    port = free_port()
    command = [sys.executable, "-m", "core", "serve", "--run", run_dir.name, "--workspace-key-env", "TL_WORKSPACE",
               "--port", str(port)]
    with (tmp_path / "out.txt").open("wb") as sink:
        running = subprocess.Popen(command, cwd=ROOT, stdout=sink, stderr=subprocess.STDOUT)
    service = ServiceProcess(run_dir.name, f"http://127.0.0.1:{port}", running, tmp_path / "out.txt", command)
    try:
        wait_until_healthy(service, 120)
        assert httpx.get(f"{service.url}/health").json()["model"] == run_dir.name
    finally:
        stop_service(service)
    printed = (tmp_path / "out.txt").read_text()
    assert f"Serving run {run_dir.name}" in printed and key not in printed  # the log's path, key hidden
    assert (run_dir.parent.parent / "serving" / f"{run_dir.name}.sqlite").exists()  # its log: in the workspace


def test_a_service_that_fails_to_start_shows_no_server_path_or_key(trained_run, monkeypatch):
    key, run_dir = workspace_with_run(trained_run)
    with socket.socket() as taken:  # the port the service is given is taken: it prints its start line, then fails
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        monkeypatch.setattr(process, "free_port", lambda: taken.getsockname()[1])
        with pytest.raises(ServiceStartError) as failed:
            ServiceRegistry().start(run_dir, run_dir.parent.parent)
    shown = f"{failed.value} {failed.value.output}"
    assert "Serving run" in failed.value.output  # the output is there, with what a user may read of it
    assert key not in shown and str(paths.home()) not in shown and str(ROOT) not in shown
