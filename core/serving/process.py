"""Local services as subprocesses: start `python -m core serve` for a run on loopback, track it, stop it.

A process-wide registry (one per server process) knows which runs are being served; the Monitor page and the
load benchmark use it. Services always listen on 127.0.0.1 on a free port, so they need no API key. Each holds a
model in memory (about 1 GB), so a classroom server runs a few: at most MAX_PER_WORKSPACE per workspace and
MAX_LOCAL_SERVICES in all, and one that answered nothing for TRANSFERLAB_SERVICE_IDLE_S seconds (its /health says
so) is stopped, freeing its slot for the rest of the class.
"""
from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from core import tasks
from core.i18n import _
from core.serving.predlog import workspace_of

ROOT = Path(__file__).resolve().parents[2]  # where `python -m core` is importable
MAX_LOCAL_SERVICES = 4
MAX_PER_WORKSPACE = 1
IDLE_ENV = "TRANSFERLAB_SERVICE_IDLE_S"
DEFAULT_IDLE_S = 15 * 60
KEY_ENV = "TRANSFERLAB_WORKSPACE"  # the variable the Monitor's "start it yourself" command reads the key from
_KEY = re.compile(r"[0-9a-f]{64}")
_PATH = re.compile(r"(?<![\w.:/])/[^\s'\"():,]+|(?<=sqlite:///)/[^\s'\"():,]+")  # not http://host/ of a URL


class ServiceStartError(RuntimeError):
    """The service did not come up; the message says why in a sentence, `output` has the process's last lines
    with every path and key hidden (a user may read it)."""

    def __init__(self, message: str, output: str = "") -> None:
        super().__init__(message)
        self.output = output


def hide_keys(text: str) -> str:
    """Workspace keys (64 hex digits) replaced by a placeholder."""
    return _KEY.sub("<workspace key>", text)


def hide_paths(text: str) -> str:
    """Text a user may read: every absolute path shortened to its last part, every workspace key hidden."""
    return hide_keys(_PATH.sub(lambda match: ".../" + match.group(0).rstrip("/").rsplit("/", 1)[-1], text))


@dataclass
class ServiceProcess:
    run_id: str
    url: str
    process: subprocess.Popen
    output: Path
    command: list[str]
    workspace: str = ""  # the workspace folder it belongs to (the registry counts slots by it)

    def alive(self) -> bool:
        return self.process.poll() is None

    def output_tail(self, lines: int = 20) -> str:
        try:
            text = self.output.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        return hide_paths("\n".join(text.splitlines()[-lines:]))


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def serve_command(run_dir: Path, port: int, log_url: str | None = None, max_batch: int = 16,
                  keep_images: Path | None = None, workers: int = 1, api_key_env: str | None = None) -> list[str]:
    command = [sys.executable, "-m", "core", "serve", "--run", str(run_dir), "--host", "127.0.0.1",
               "--port", str(port), "--max-batch", str(max_batch)]
    command += ["--workers", str(workers)] if workers > 1 else []
    command += ["--api-key-env", api_key_env] if api_key_env else []
    return command + (["--log-db", log_url] if log_url else []) + (["--keep-images", str(keep_images)]
                                                                    if keep_images else [])


def default_keep_dir(workspace: Path, run_id: str) -> Path:
    """Where a service started from the app keeps inputs, when asked to (the Monitor page reviews them): inside
    the workspace, beside its log."""
    return Path(workspace) / "serving" / f"{run_id}-kept"


def how_to_call(run_id: str, url: str = "http://127.0.0.1:8000", task: str = "single") -> dict[str, str]:
    """The serve command for a run (naming it by id: the workspace key comes from an environment variable, never
    printed), where to find the key, a curl line and a five-line Python example."""
    python = (f'import httpx\n'
              f'with open("photo.jpg", "rb") as image:\n'
              f'    answer = httpx.post("{url}/predict", files={{"file": image}}).json()\n'
              f'result = answer["results"][0]\n' + tasks.get(task).python_example)
    return {"serve": f"python -m core serve --run {run_id} --workspace-key-env {KEY_ENV} --port {url.rsplit(':', 1)[-1]}",
            "key": _("Set {variable} to the key in your browser's address bar, after ws= (keep it to yourself: it "
                     "opens your workspace).").format(variable=KEY_ENV),
            "curl": f'curl -F "file=@photo.jpg" "{url}/predict?top_k=3"', "python": python}


def start_service(run_dir: Path, log_url: str | None = None, max_batch: int = 16, timeout: float = 120.0,
                  output: Path | None = None, keep_images: Path | None = None, workers: int = 1,
                  env: dict[str, str] | None = None, api_key_env: str | None = None) -> ServiceProcess:
    """Start a service for run_dir on 127.0.0.1 and wait until /health answers. `env`: variables added to this
    process's environment for the service (e.g. the one `api_key_env` names)."""
    run_dir = Path(run_dir)
    port = free_port()
    command = serve_command(run_dir, port, log_url, max_batch, keep_images, workers, api_key_env)
    output = output or workspace_of(run_dir) / "serving" / f"{run_dir.name}.{port}.out"
    output.parent.mkdir(parents=True, exist_ok=True)
    with output.open("wb") as sink:
        process = subprocess.Popen(command, cwd=ROOT, stdout=sink, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                   env=None if env is None else os.environ | env)
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
            tail = service.output_tail()
            errors = [line for line in tail.splitlines() if line.startswith("error: ")]
            if errors:
                raise ServiceStartError(_("The service stopped while starting ({reason}).").format(
                    reason=errors[-1].removeprefix("error: ").rstrip(".")), tail)
            raise ServiceStartError(_("The service stopped while starting."), tail)
        try:
            if httpx.get(f"{service.url}/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.25)
    raise ServiceStartError(_("The service did not answer within {seconds} seconds.").format(seconds=f"{timeout:.0f}"),
                            service.output_tail())


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


def idle_limit() -> float:
    try:
        return max(1.0, float(os.environ.get(IDLE_ENV, DEFAULT_IDLE_S)))
    except ValueError:
        return float(DEFAULT_IDLE_S)


def idle_seconds(service: ServiceProcess) -> float | None:
    """How long the service has answered nothing, from its /health counters; None when it does not say."""
    try:
        return float(httpx.get(f"{service.url}/health", timeout=2).json()["idle_s"])
    except (httpx.HTTPError, ValueError, KeyError, TypeError):
        return None
