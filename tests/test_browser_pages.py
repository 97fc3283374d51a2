"""What only a real browser shows (Playwright + Debian's Chromium against `streamlit run` on localhost): the first
visit says it is loading, a click on a confusion-matrix cell shows that cell's images, a click on a scatter point
shows its image and heatmap, the Label page keeps its tab
and names the current version after a save, and a started job's id is in the address bar at once."""
from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest
from playwright.sync_api import expect, sync_playwright

from tests.conftest import jpeg_bytes
from tests.streamlit_server import CHROMIUM, CHROMIUM_ARGS, IDLE, running_app

pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian's chromium is not installed")
expect.set_options(timeout=120_000)  # pages import torch and train between steps; a busy core must not fail a test

# Records, from the first paint on, whether the loading notice was ever in the page: no polling interval can miss it.
WATCH_LOADING = """
window.__sawLoading = false;
new MutationObserver(() => {
  if (document.body && document.body.innerText.includes('Loading TransferLab')) window.__sawLoading = true;
}).observe(document, {childList: true, subtree: true, characterData: true});
"""


@pytest.fixture(scope="module")
def browser():
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory, browser):
    """The app, and whether its very first visit (torch not yet imported) showed the loading notice."""
    home = tmp_path_factory.mktemp("pages-home")
    with running_app(home) as url:
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.set_default_timeout(180_000)  # the first visit imports torch: slow on a busy core, never stuck
        page.add_init_script(WATCH_LOADING)
        page.goto(url)
        settle(page)
        expect(page.get_by_text("1. Your images")).to_be_visible()
        saw_loading = page.evaluate("window.__sawLoading")
        page.close()
        yield url, home, saw_loading


@pytest.fixture
def page(browser):
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    page.set_default_timeout(120_000)
    yield page
    page.close()


def settle(page) -> None:
    page.wait_for_selector(IDLE)


def workspace_of(page) -> str:
    return parse_qs(urlparse(page.url).query)["ws"][0]


def test_the_first_visit_says_it_is_loading(server):
    assert server[2], "the main area stayed blank while the first page imported its libraries"


def test_clicking_a_confusion_cell_shows_its_images(server, page, trained_run):
    url, home, _ = server
    page.goto(url)
    settle(page)
    shutil.copytree(trained_run, home / "workspaces" / workspace_of(page) / "runs" / trained_run.name)
    page.goto(f"{url}/evaluate?ws={workspace_of(page)}")
    settle(page)
    chart = page.get_by_test_id("stPlotlyChart").filter(has_text="Confusion matrix")
    expect(chart).to_be_visible()
    chart.scroll_into_view_if_needed()  # the mouse clicks in the viewport
    report = json.loads((trained_run / "evaluation.json").read_text())
    labels, matrix = report["labels"], report["confusion"]
    cells = [(i, j) for i in range(len(labels)) for j in range(len(labels)) if matrix[i][j]]
    i, j = next(((i, j) for i, j in cells if i != j), cells[-1])  # a mistake cell if there is one
    x, y = page.evaluate("""([truth, guess]) => {
        const chart = [...document.querySelectorAll('.js-plotly-plot')]
            .find(g => ((g.layout.title || {}).text || '').includes('Confusion matrix'));
        const xa = chart._fullLayout.xaxis, ya = chart._fullLayout.yaxis, box = chart.getBoundingClientRect();
        return [box.left + xa._offset + xa.d2p(guess), box.top + ya._offset + ya.d2p(truth)];
    }""", [labels[i], labels[j]])
    page.mouse.move(x, y)  # Plotly clicks what the pointer hovers
    page.mouse.click(x, y)
    settle(page)
    expect(page.get_by_text(f"{matrix[i][j]} image(s): true {labels[i]}, predicted {labels[j]}")).to_be_visible()
    expect(page.locator("[data-testid='stImage']").first).to_be_visible()


CLICK_POINT = """(title) => {
    const chart = [...document.querySelectorAll('.js-plotly-plot')]
        .find(g => ((g.layout.title || {}).text || '').includes(title));
    const xa = chart._fullLayout.xaxis, ya = chart._fullLayout.yaxis, box = chart.getBoundingClientRect();
    const dots = chart.data[0], at = dots.x.map((x, k) => [xa.d2p(x), ya.d2p(dots.y[k])]);
    const room = k => Math.min(...at.map((p, j) => j === k ? 1e9 : Math.hypot(p[0] - at[k][0], p[1] - at[k][1])));
    const k = [...at.keys()].reduce((a, b) => room(b) > room(a) ? b : a);  // the point farthest from the others
    return [box.left + xa._offset + at[k][0], box.top + ya._offset + at[k][1], dots.customdata[k][0]];
}"""


def test_clicking_a_scatter_point_shows_its_image_and_where_the_model_looked(server, page, tmp_path_factory):
    from core.data import sample
    from core.tasks import get
    from tests.test_task_runs import _train

    url, home, _ = server
    run = _train(sample.write_scored_folder(tmp_path_factory.mktemp("scored"), 20, size=64, seed=3), "regression",
                 tmp_path_factory.mktemp("scores_run"), epochs=2)  # the click is tested, not the model
    page.goto(url)
    settle(page)
    shutil.copytree(run.path, home / "workspaces" / workspace_of(page) / "runs" / run.path.name)
    page.goto(f"{url}/evaluate?ws={workspace_of(page)}")
    settle(page)
    chart = page.get_by_test_id("stPlotlyChart").filter(has_text="Predicted against true values")
    expect(chart).to_be_visible()
    chart.scroll_into_view_if_needed()
    x, y, index = page.evaluate(CLICK_POINT, "Predicted against true values")
    page.mouse.move(x, y)
    page.mouse.click(x, y)
    settle(page)
    clicked = run.evaluation().predictions[index]
    expect(page.get_by_text("Where the model looked", exact=True)).to_be_visible()
    expect(page.get_by_text(f"{clicked['path']}: {get('regression').describe(clicked)}")).to_be_visible()


def test_the_label_page_keeps_its_tab_and_names_the_current_version_after_a_save(server, page, tmp_path):
    url, _, _ = server
    page.goto(f"{url}/label")
    settle(page)
    page.get_by_role("button", name="Create an empty dataset").click()
    settle(page)
    files = []
    for n in range(3):
        files.append(tmp_path / f"photo{n}.jpg")
        files[-1].write_bytes(jpeg_bytes((60 * n, 120, 200 - 50 * n), (96, 96)))
    uploader = page.get_by_test_id("stFileUploader").filter(has_text="Images, or zips of images")
    uploader.locator("input[type='file']").set_input_files([str(f) for f in files])
    settle(page)
    page.get_by_role("button", name="Add them").click()
    settle(page)
    expect(page.get_by_text("Version 2: 3 new images added")).to_be_visible()
    expect(page.get_by_role("combobox", name="Dataset")).to_have_value("My images (version 2)")

    page.get_by_role("tab", name="Versions").click()
    settle(page)
    page.get_by_role("button", name="Train on this version").click()
    settle(page)
    expect(page.get_by_text("Version 2 is now the dataset to train on")).to_be_visible()
    expect(page.get_by_role("tab", name="Versions")).to_have_attribute("aria-selected", "true")
    expect(page.get_by_role("link", name="Go to 2. Train")).to_be_visible()  # on the tab the user is on


def test_a_started_job_is_in_the_address_bar_at_once(server, page):
    url, _, _ = server
    page.goto(url)
    settle(page)
    page.get_by_role("button", name="Use the sample dataset").click()
    settle(page)
    page.get_by_test_id("stSidebarNav").get_by_text("2. Train").click()
    settle(page)
    page.get_by_role("button", name="Start training").click()
    expect(page).to_have_url(re.compile(r"[?&]job=[0-9a-f]{32}"))
    expect(page.get_by_text("Finished:")).to_be_visible()
    assert "job=" in page.url  # still there when it ends: this address is the run's page to share


def test_the_runs_table_fits_beside_the_sidebar_on_a_laptop_screen(server, browser, trained_run):
    url, home, _ = server
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.set_default_timeout(120_000)
    page.goto(url)
    settle(page)
    for suffix in ("a", "b"):  # two runs, as a class compares them
        shutil.copytree(trained_run, home / "workspaces" / workspace_of(page) / "runs" / (trained_run.name[:-1] + suffix))
    page.goto(f"{url}/runs?ws={workspace_of(page)}")
    settle(page)
    table = page.get_by_test_id("stDataFrame").first
    expect(table).to_be_visible()
    scroller = table.locator(".dvn-scroller").first
    expect(scroller).to_be_attached()
    overflow = scroller.evaluate("element => element.scrollWidth - element.clientWidth")
    page.close()
    assert overflow <= 1, f"the table is {overflow} pixels wider than the page: its last columns are cut off"
