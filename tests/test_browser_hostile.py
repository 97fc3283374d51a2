"""Names are data, in a real browser: a zip whose class and file names hold Markdown, HTML, Plotly tags,
zero-width and direction characters must not make any page show a link, an image or coloured text from them,
nor make the browser fetch the outside address they name.

To cover another page, add a `Step` to STEPS (its navigation title and a text that shows it has loaded, plus
what to do there first, e.g. train); `assert_no_markup` then checks it like the Data page.
"""
from __future__ import annotations

import re
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.conftest import jpeg_bytes
from tests.test_browser import CHROMIUM, browser_page, open_step, server, settle  # noqa: F401 - shared fixtures

pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian's chromium is not installed")

OUTSIDE = "evil.invalid"  # a reserved name: nothing answers, but a request for it would still be seen
# Folder and file names cannot hold "/", so the addresses are written "http:evil.invalid" (a browser reads it as
# http://evil.invalid/). Each class gets six distinct images.
CLASSES = {
    f"[click me](http:{OUTSIDE}?md-link)": "markdown link",
    f"![pixel](http:{OUTSIDE}?md-image)": "markdown image",
    ":red[alarm]": "streamlit colour directive",
    f"<a href=http:{OUTSIDE}?html-link>html link": "html / plotly link tag",
    f"<img src=http:{OUTSIDE}?html-img>": "html image tag",
    f"www.{OUTSIDE}": "bare address",
    "cat": "plain",
    "ca\u200bt": "zero-width look-alike",
    "\u202egnp.exe": "right-to-left override",
}
FILE_NAMES = [f"![f](http:{OUTSIDE}?file-image).jpg", f"<img src=http:{OUTSIDE}?file-img>.jpg", "**bold**.jpg",
              "plain_1.jpg", "plain_2.jpg", "plain_3.jpg"]


@dataclass
class Step:
    nav_title: str
    loaded_text: str
    prepare: Callable[[Page], None] = field(default=lambda page: None)
    shows_names: bool = False  # the page lists the class names as text (checked: shown as typed)


def train_two_epochs(page: Page) -> None:
    page.get_by_text("Advanced settings").click()
    epochs = page.get_by_label("Epochs (passes over the data)")
    epochs.fill("2")
    epochs.press("Enter")
    settle(page)
    page.get_by_role("button", name="Start training").click()


def predict_one(page: Page, image: Path) -> None:
    page.locator("input[type='file']").first.set_input_files(str(image))


STEPS = [
    Step("1. Data", "Your data is ready", shows_names=True),
    Step("2. Train", "Finished:", train_two_epochs),
    Step("3. Evaluate", "Confusion matrix"),
    Step("Review labels", "Review your labels"),
    Step("5. Export", "5. Export"),
    Step("6. Monitor", "6. Monitor"),
    Step("Runs", "Compare the curves of"),
]


def hostile_zip(folder: Path) -> Path:
    target = folder / "hostile <b>[names] :blue[zip].zip"
    with zipfile.ZipFile(target, "w") as archive:
        for c, label in enumerate(CLASSES):
            for i, name in enumerate(FILE_NAMES):
                archive.writestr(f"{label}/{name}", jpeg_bytes((c * 25 % 256, i * 40, 90)))
    return target


def outside_references(page: Page) -> list[str]:
    """Every link or image address in the document (HTML and SVG, Plotly's included) that names the outside host."""
    return page.evaluate("""outside => [...document.querySelectorAll('a, img, image, source, iframe, link')]
        .map(e => [e.getAttribute('href'), e.getAttribute('xlink:href'), e.getAttribute('src')].join(' '))
        .filter(v => v.includes(outside))""", OUTSIDE)


def coloured_alarm(page: Page) -> list[str]:
    """Elements whose whole text is 'alarm': what `:red[alarm]` becomes when it is rendered, not shown."""
    return page.evaluate("""() => [...document.querySelectorAll('span, font, mark')]
        .filter(e => e.textContent.trim() === 'alarm').map(e => e.outerHTML)""")


def assert_no_markup(page: Page, requested: list[str], shows_names: bool = True) -> None:
    assert outside_references(page) == []
    assert coloured_alarm(page) == []
    if shows_names:
        assert page.locator("text=:red[alarm]").count() > 0  # the name is shown, as typed
    assert [url for url in requested if OUTSIDE in url] == []


def test_hostile_names_stay_text_on_every_page(server, browser_page, tmp_path):  # noqa: F811 - fixtures
    page = browser_page
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    page.goto(server)
    settle(page)
    page.locator("input[type='file']").first.set_input_files(str(hostile_zip(tmp_path)))
    expect(page.get_by_text("Your data is ready")).to_be_visible()
    expect(page.locator("[data-testid='stPlotlyChart'] .xtick").first).to_be_attached()
    expect(page.get_by_text("look the same but differ by invisible characters (ZERO WIDTH SPACE)")).to_be_visible()
    expect(page.get_by_text("RIGHT-TO-LEFT OVERRIDE").first).to_be_visible()
    for step in STEPS:
        open_step(page, step.nav_title)
        step.prepare(page)
        expect(page.get_by_text(step.loaded_text).first).to_be_visible()
        page.wait_for_timeout(500)  # charts and images finish drawing
        assert_no_markup(page, requested, step.shows_names)
        if step.nav_title == "1. Data":
            ticks = page.locator("[data-testid='stPlotlyChart'] .xtick text").all_text_contents()
            assert f"<a href=http:{OUTSIDE}?html-link>html link" in ticks  # Plotly shows the tag as text
    open_step(page, "4. Predict")
    (tmp_path / "probe.jpg").write_bytes(jpeg_bytes((40, 200, 90), (96, 96)))
    predict_one(page, tmp_path / "probe.jpg")
    expect(page.get_by_text(re.compile(r"sure\)|Best guess")).first).to_be_visible()  # the answer's verdict
    page.wait_for_timeout(500)
    assert_no_markup(page, requested, shows_names=False)
