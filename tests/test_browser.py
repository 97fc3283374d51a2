"""End to end in a real browser: Playwright drives Debian's Chromium against `streamlit run` on localhost.

upload -> train -> curve visible -> reload -> same job -> predict an image -> top-k shown.
Set TRANSFERLAB_SCREENSHOTS=docs to refresh the README's screenshots from this run.
"""
from __future__ import annotations

import os
import re
import zipfile
from pathlib import Path

import pytest
from playwright.sync_api import expect, sync_playwright

from core.data import sample
from tests.streamlit_server import CHROMIUM, CHROMIUM_ARGS, IDLE, ROOT, running_app

pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian's chromium is not installed")
expect.set_options(timeout=90_000)  # training happens between steps; a slow CI core must not fail the test


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with running_app(tmp_path_factory.mktemp("e2e-home")) as url:
        yield url


@pytest.fixture(scope="module")
def browser_page():
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.set_default_timeout(90_000)
        yield page
        browser.close()


def shapes_zip(folder: Path) -> Path:
    sample.write_folder(folder / "data", per_class=10, size=96, seed=5)
    target = folder / "shapes.zip"
    with zipfile.ZipFile(target, "w") as archive:
        for path in sorted((folder / "data").rglob("*.jpg")):
            archive.write(path, path.relative_to(folder / "data").as_posix())
    return target


def settle(page) -> None:
    page.wait_for_selector(IDLE)


def shoot(page, name: str) -> None:
    folder = os.environ.get("TRANSFERLAB_SCREENSHOTS")
    if folder:  # only when refreshing the docs: a picture of a page still loading helps nobody
        settle(page)
        expect(page.locator("[data-testid='stSpinner']")).to_have_count(0, timeout=120_000)
        page.wait_for_timeout(1500)  # Plotly's charts draw after their data arrives
        Path(ROOT / folder).mkdir(exist_ok=True)
        page.screenshot(path=str(ROOT / folder / f"{name}.png"), full_page=True)


def open_step(page, title: str) -> None:
    page.get_by_test_id("stSidebarNav").get_by_text(title).click()
    settle(page)


def test_upload_train_reload_predict(server, browser_page, tmp_path):
    page = browser_page
    page.goto(server)
    settle(page)
    page.locator("input[type='file']").first.set_input_files(str(shapes_zip(tmp_path)))
    expect(page.get_by_text("Your data is ready")).to_be_visible()
    shoot(page, "data")

    open_step(page, "2. Train")
    expect(page.get_by_text("Trainable parameters")).to_be_visible()
    shoot(page, "train_setup")
    page.get_by_text("Advanced settings").click()
    epochs = page.get_by_label("Epochs (passes over the data)")
    epochs.fill("2")
    epochs.press("Enter")
    settle(page)
    page.get_by_role("button", name="Start training").click()
    expect(page.get_by_text("Finished:")).to_be_visible()
    expect(page.locator("[data-testid='stPlotlyChart']").first).to_be_visible()
    assert "job=" in page.url
    job_url = page.url
    shoot(page, "train")

    page.reload()
    settle(page)
    assert page.url == job_url
    expect(page.get_by_text("Finished:")).to_be_visible()  # the same job, after a reload
    expect(page.locator("[data-testid='stPlotlyChart']").first).to_be_visible()

    open_step(page, "3. Evaluate")
    expect(page.get_by_text("Confusion matrix").first).to_be_visible()
    shoot(page, "evaluate")

    open_step(page, "4. Predict")
    image = sorted((tmp_path / "data" / "triangle").glob("*.jpg"))[0]
    page.locator("input[type='file']").first.set_input_files(str(image))
    expect(page.get_by_text(re.compile(r"sure\)|Best guess: "))).to_be_visible()  # sure, or unsure: a guess
    expect(page.locator("[data-testid='stPlotlyChart']").first).to_be_visible()
    shoot(page, "predict")

    open_step(page, "5. Export")
    page.get_by_role("button", name="Prepare the download").click()
    expect(page.get_by_text("gives the same predictions")).to_be_visible()
    shoot(page, "export")

    open_step(page, "Runs")
    expect(page.locator("[data-testid='stDataFrame']").first).to_be_visible()
    shoot(page, "runs")
