"""The real app for browser tests: `streamlit run app.py` on a free loopback port with its own TRANSFERLAB_HOME."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
IDLE = "[data-testid='stApp'][data-test-script-state='notRunning']"
CHROMIUM_ARGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


# The app as a user installs it (requirements.txt alone: scripts/test.sh builds that .venv), so a page that needs a
# package only the test environment has fails here instead of on a user's machine.
APP_PYTHON = os.environ.get("TRANSFERLAB_APP_PYTHON") or sys.executable


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def running_app(home: Path, start_timeout: float = 90.0) -> Iterator[str]:
    """Yields the app's URL once /_stcore/health answers; stops the server (and what it started) afterwards."""
    port = free_port()
    env = os.environ | {"TRANSFERLAB_HOME": str(home), "TRANSFERLAB_OFFLINE": "1"}
    process = subprocess.Popen(
        [APP_PYTHON, "-m", "streamlit", "run", str(ROOT / "app.py"), "--server.port", str(port),
         "--server.address", "127.0.0.1", "--server.headless", "true"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_until_healthy(process, url, start_timeout)
        yield url
    finally:
        process.terminate()  # the app's exit handler stops the local services it started
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()


def _wait_until_healthy(process: subprocess.Popen, url: str, timeout: float) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            urllib.request.urlopen(url + "/_stcore/health", timeout=2)
            return
        except OSError:
            time.sleep(0.3)
    process.kill()
    raise RuntimeError("streamlit did not start: " + process.stdout.read().decode(errors="replace")[-2000:])
