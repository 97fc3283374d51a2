"""The Monitor page in a real browser (Playwright + Debian's Chromium against `streamlit run` on loopback):
the log's numbers are shown, and a local service is started, answers, and is stopped from the page."""
from __future__ import annotations

import re
import shutil
import time
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from playwright.sync_api import expect, sync_playwright

from core import paths
from core.serving.predlog import default_url
from core.serving.service import create_app
from tests.streamlit_server import CHROMIUM, CHROMIUM_ARGS, IDLE, running_app

pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian's chromium is not installed")


@pytest.fixture(scope="module")
def monitored_home(tmp_path_factory, trained_run, shapes_folder) -> tuple[Path, str]:
    """A TransferLab home with one workspace, its trained run and 12 logged answers from the real service."""
    home = tmp_path_factory.mktemp("monitor-home")
    key = paths.new_workspace_key(home)  # a key that server issues (signed with the secret under its home)
    run_dir = home / "workspaces" / key / "runs" / trained_run.name
    shutil.copytree(trained_run, run_dir)
    log_url = default_url(run_dir.parent.parent, trained_run.name)  # the workspace's own log of that run
    files = [("file", (p.name, p.read_bytes(), "image/jpeg")) for p in sorted(shapes_folder.rglob("*.jpg"))[:12]]
    with TestClient(create_app(run_dir, log_url=log_url)) as client:
        assert client.post("/predict", files=files).status_code == 200
    return home, key


@pytest.fixture(scope="module")
def app_url(monitored_home):
    home, _ = monitored_home
    with running_app(home) as url:
        yield url


def test_monitor_page_shows_the_log_and_starts_and_stops_a_service(app_url, monitored_home):
    _, key = monitored_home
    expect.set_options(timeout=120_000)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.set_default_timeout(120_000)
        page.goto(f"{app_url}/monitor?ws={key}")  # the server's first visitor, by a deep link
        page.wait_for_selector(IDLE)
        expect(page.get_by_test_id("stSidebarNav")).to_contain_text("6. Monitor")  # the app's titles, not file names
        answered = page.get_by_test_id("stMetric").filter(has_text="Images answered")
        expect(answered).to_contain_text("12")
        page.get_by_text("Serve this model to other programs").click()
        expect(page.get_by_text("python -m core serve --run")).to_be_visible()
        page.get_by_role("button", name="Start a local service").click()
        serving = page.get_by_text(re.compile(r"Serving at http://127\.0\.0\.1:\d+"))
        expect(serving).to_be_visible()
        expect(page.get_by_role("button", name="Start a local service")).to_have_count(0)
        url = re.search(r"http://127\.0\.0\.1:\d+", serving.inner_text()).group(0)
        assert httpx.get(f"{url}/health", timeout=10).json()["status"] == "ok"
        page.get_by_role("button", name="Stop the service").click()
        expect(page.get_by_role("button", name="Start a local service")).to_be_visible()
        browser.close()
    assert not answers_within(url, 60), "the service still answers after Stop"


def answers_within(url: str, seconds: float) -> bool:
    """True while the service keeps answering for `seconds`; False as soon as it is gone."""
    deadline = time.time() + seconds
    while time.time() < deadline:
        try:
            httpx.get(f"{url}/health", timeout=2)
        except httpx.HTTPError:
            return False
        time.sleep(0.5)
    return True
