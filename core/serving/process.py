"""Local services as subprocesses: start `python -m core serve` for a run on loopback, track it, stop it.

A process-wide registry (one per server process) knows which runs are being served; the Monitor page and the
load benchmark use it. Services always listen on 127.0.0.1 on a free port, so they need no API key.
"""
from __future__ import annotations

import atexit
import shlex
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from core import paths

ROOT = Path(__file__).resolve().parents[2]  # where `python -m core` is importable
MAX_LOCAL_SERVICES = 4  # each holds a model in memory; a classroom server must not run thirty


class ServiceStartError(RuntimeError):
    """The service did not come up; the message says why in a sentence, `output` has the process's last lines."""

    def __init__(self, message: str, output: str = "") -> None:
        super().__init__(message)
        self.output = output


@dataclass
class ServiceProcess:
    run_id: str
    url: str
    process: subprocess.Popen
    output: Path
    command: list[str]

    def alive(self) -> bool:
        return self.process.poll() is None

    def output_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.output.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def serve_command(run_dir: Path, port: int, log_url: str | None = None, max_batch: int = 16,
                  keep_images: Path | None = None) -> list[str]:
    command = [sys.executable, "-m", "core", "serve", "--run", str(run_dir), "--host", "127.0.0.1",
               "--port", str(port), "--max-batch", str(max_batch)]
    return command + (["--log-db", log_url] if log_url else []) + (["--keep-images", str(keep_images)]
                                                                    if keep_images else [])


def default_keep_dir(run_id: str) -> Path:
    """Where a service started from the app keeps inputs, when asked to (the Monitor page reviews them)."""
    return paths.home() / "serving" / f"{run_id}-kept"


def how_to_call(run_dir: Path, url: str = "http://127.0.0.1:8000") -> dict[str, str]:
    """The exact serve command for a run, a curl line and a five-line Python example."""
    python = (f'import httpx\n'
              f'with open("photo.jpg", "rb") as image:\n'
              f'    answer = httpx.post("{url}/predict", files={{"file": image}}).json()\n'
              f'best = answer["results"][0]["predictions"][0]\n'
              f'print(best["label"], best["probability"], answer["results"][0]["unsure"])')
    return {"serve": f"python -m core serve --run {shlex.quote(str(run_dir))} --port {url.rsplit(':', 1)[-1]}",
            "curl": f'curl -F "file=@photo.jpg" "{url}/predict?top_k=3"', "python": python}


def start_service(run_dir: Path, log_url: str | None = None, max_batch: int = 16, timeout: float = 120.0,
                  output: Path | None = None, keep_images: Path | None = None) -> ServiceProcess:
    """Start a service for run_dir on 127.0.0.1 and wait until /health answers."""
    run_dir = Path(run_dir)
    port = free_port()
    command = serve_command(run_dir, port, log_url, max_batch, keep_images)
    output = output or paths.home() / "serving" / f"{run_dir.name}.{port}.out"
    output.parent.mkdir(parents=True, exist_ok=True)
    with output.open("wb") as sink:
        process = subprocess.Popen(command, cwd=ROOT, stdout=sink, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    service = ServiceProcess(run_dir.name, f"http://127.0.0.1:{port}", process, output, command)
    try:
        wait_until_healthy(service, timeout)
    except ServiceStartError:
        stop_service(service)
        raise
    return service


def wait_until_healthy(service: ServiceProcess, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not service.alive():
            raise ServiceStartError("The service stopped while starting.", service.output_tail())
        try:
            if httpx.get(f"{service.url}/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.25)
    raise ServiceStartError(f"The service did not answer within {timeout:.0f} seconds.", service.output_tail())


def stop_service(service: ServiceProcess, grace: float = 15.0) -> int | None:
    """SIGTERM (requests in flight finish), then SIGKILL if it lingers; returns the exit status."""
    if service.alive():
        service.process.terminate()
        try:
            service.process.wait(grace)
        except subprocess.TimeoutExpired:
            service.process.kill()
            service.process.wait()
    return service.process.returncode


class ServiceRegistry:
    """The local services of this process, one per run at most."""

    def __init__(self) -> None:
        self._services: dict[str, ServiceProcess] = {}
        self._lock = threading.Lock()

    def get(self, run_id: str) -> ServiceProcess | None:
        with self._lock:
            service = self._services.get(run_id)
            if service is not None and not service.alive():
                del self._services[run_id]
                return None
            return service

    def start(self, run_dir: Path, log_url: str | None = None, max_batch: int = 16,
              keep_images: Path | None = None) -> ServiceProcess:
        existing = self.get(Path(run_dir).name)
        if existing is not None:
            return existing
        if sum(s.alive() for s in list(self._services.values())) >= MAX_LOCAL_SERVICES:
            raise ServiceStartError(f"{MAX_LOCAL_SERVICES} local services are already running; stop one first.")
        service = start_service(run_dir, log_url, max_batch, keep_images=keep_images)
        with self._lock:
            self._services[service.run_id] = service
        return service

    def stop(self, run_id: str) -> None:
        with self._lock:
            service = self._services.pop(run_id, None)
        if service is not None:
            stop_service(service)

    def stop_all(self) -> None:
        for run_id in list(self._services):
            self.stop(run_id)


registry = ServiceRegistry()
atexit.register(registry.stop_all)  # a local service never outlives the app that started it
