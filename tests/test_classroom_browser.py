"""A lesson in a real browser: Playwright drives Debian's Chromium against `streamlit run` on localhost.

A visitor in no class sees today's menu; the teacher creates a class; two students join (one by the board's
link, and finds their workspace again from a new tab of the same browser; one by typing the code after a wrong
guess), each in a browser context of their own (own cookies); the teacher pushes a zip; both train (one epoch of
the bundled backbone's head on 24 images); the dashboard shows both; the second student publishes; the first
tries that model; the "try it" link opens on a phone-sized screen with no menu; a student's key opens neither the
dashboard nor anything of a classmate.
"""
from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from playwright.sync_api import expect, sync_playwright

from core.data import sample
from tests.streamlit_server import CHROMIUM, CHROMIUM_ARGS, IDLE, running_app

pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian's chromium is not installed")
expect.set_options(timeout=120_000)  # training happens between steps; a slow shared core must not fail the test


def settle(page) -> None:
    page.wait_for_selector(IDLE)


def open_step(page, title: str) -> None:
    page.get_by_test_id("stSidebarNav").get_by_text(title).click()
    settle(page)


def workspace_key(page) -> str:
    return parse_qs(urlsplit(page.url).query)["ws"][0]


def train(page) -> None:
    open_step(page, "2. Train")
    expect(page.get_by_text(re.compile(r"^Dataset: lesson\.zip")).first).to_be_visible()
    expect(page.get_by_text("Advanced settings")).to_have_count(0)  # the class keeps the defaults (and its caps)
    page.get_by_role("button", name="Start training").click()


def test_a_lesson_from_creating_a_class_to_trying_a_classmates_model(tmp_path):
    image = sorted(sample.write_folder(tmp_path / "photos", per_class=1, size=160, seed=9).rglob("*.jpg"))[0]
    lesson = sample.write_zip(tmp_path / "lesson.zip", per_class=8, size=96, seed=3)  # small: seconds to train
    with running_app(tmp_path / "home") as server, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        teacher, fox, owl = (browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
                             for _ in range(3))
        for page in (teacher, fox, owl):
            page.set_default_timeout(120_000)

        teacher.goto(server)  # a visitor in no class: today's pages, and the teachers' page last
        settle(teacher)
        menu = teacher.get_by_test_id("stSidebarNav")
        expect(menu.get_by_text("6. Monitor")).to_be_visible()
        expect(menu.get_by_text("Class gallery")).to_have_count(0)
        menu.get_by_text("Classroom (teachers)").click()
        settle(teacher)
        teacher.get_by_label("Class name").fill("Year 7 <b>science</b>")
        teacher.get_by_role("button", name="Create the class").click()
        expect(teacher.get_by_text(re.compile(r"^Code: [A-Z]{3}-[A-Z]{3}$"))).to_be_visible()
        expect(teacher.get_by_role("heading", name="Year 7 <b>science</b>")).to_be_visible()  # text, not markup
        code = re.search(r"Code: ([A-Z]{3}-[A-Z]{3})", teacher.inner_text("body")).group(1)
        teacher_url = teacher.url
        assert "teacher=" in teacher_url
        expect(teacher.locator("[data-testid='stImage'] img").first).to_be_visible()  # the QR code

        fox.goto(f"{server}/join?code={code.replace('-', '')}")  # the board's link carries the code
        settle(fox)
        fox.get_by_role("textbox", name="Your nickname").fill("Fox")
        fox.get_by_role("button", name="Join the class").click()
        expect(fox.get_by_text("Welcome, Fox!")).to_be_visible()
        fox_key = workspace_key(fox)
        again = fox.context.new_page()  # the same browser later: a new tab, the board's link, no key in it
        again.goto(f"{server}/join?code={code.replace('-', '')}")
        settle(again)
        again.get_by_role("button", name="Continue as Fox").click()
        settle(again)
        expect(again.get_by_role("heading", name="1. Your images")).to_be_visible()
        assert workspace_key(again) == fox_key
        again.close()

        owl.goto(f"{server}/join")
        settle(owl)
        owl.get_by_label("Class code (it is on the board)").fill("AAA-AAA" if code != "AAA-AAA" else "CCC-CCC")
        owl.get_by_role("button", name="Next").click()
        expect(owl.get_by_text("does not open a class")).to_be_visible()
        owl.get_by_label("Class code (it is on the board)").fill(code.lower())
        owl.get_by_role("button", name="Next").click()
        owl.get_by_role("textbox", name="Your nickname").fill("fox")
        owl.get_by_role("button", name="Join the class").click()
        expect(owl.get_by_text("already taken")).to_be_visible()
        owl.get_by_role("textbox", name="Your nickname").fill("Owl")
        owl.get_by_role("button", name="Join the class").click()
        expect(owl.get_by_text("Welcome, Owl!")).to_be_visible()
        owl_key = workspace_key(owl)
        assert owl_key != fox_key

        teacher.get_by_role("tab", name="Data and rules").click()
        teacher.locator("input[type='file']").first.set_input_files(str(lesson))
        teacher.get_by_role("button", name="Give my zip to every student").click()
        expect(teacher.get_by_text("Every student has it now")).to_be_visible()

        for page in (fox, owl):
            page.get_by_text("Start with 1. Data").click()
            settle(page)
            expect(page.get_by_text("lesson.zip").first).to_be_visible()
            expect(page.get_by_test_id("stSidebarNav").get_by_text("6. Monitor")).to_have_count(0)  # hidden
            expect(page.get_by_test_id("stSidebarNav").get_by_text("Class gallery")).to_be_visible()
        train(fox)
        train(owl)
        for page in (fox, owl):
            expect(page.get_by_text("Finished:")).to_be_visible()

        teacher.get_by_role("tab", name="Students").click()
        expect(teacher.get_by_text("2 students · refreshed")).to_be_visible()
        teacher.get_by_text("Leaderboard (best finished run").click()
        expect(teacher.get_by_text(re.compile(r"1\. (Fox|Owl): \d+%"))).to_be_visible()
        expect(teacher.get_by_text(re.compile(r"2\. (Fox|Owl): \d+%"))).to_be_visible()
        teacher.get_by_text("Show this run on the projector (read-only)").click(timeout=5000)
        expect(teacher.get_by_text("Validation images")).to_be_visible()

        open_step(owl, "Class gallery")
        owl.get_by_label("Title").fill("Shape spotter")
        owl.get_by_role("button", name="Publish to the class").click()
        expect(owl.get_by_text("Shape spotter by Owl")).to_be_visible()

        open_step(fox, "Class gallery")
        expect(fox.get_by_text("Shape spotter by Owl")).to_be_visible()
        assert owl_key not in fox.content()  # nothing of the gallery names a classmate's workspace
        fox.get_by_role("link", name="Try it").click()
        settle(fox)
        fox.locator("input[type='file']").first.set_input_files(str(image))
        expect(fox.get_by_text(re.compile(r"\d+% sure"))).to_be_visible()
        try_url = fox.url
        assert "model=" in try_url and owl_key not in try_url

        phone = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True).new_page()
        phone.set_default_timeout(120_000)
        phone.goto(f"{server}/try?model={parse_qs(urlsplit(try_url).query)['model'][0]}")
        settle(phone)
        expect(phone.get_by_role("heading", name="Shape spotter")).to_be_visible()
        expect(phone.get_by_test_id("stSidebarNav")).to_have_count(0)  # the try link opens that page only
        phone.locator("input[type='file']").first.set_input_files(str(image))
        expect(phone.get_by_text(re.compile(r"\d+% sure"))).to_be_visible()
        assert fox_key not in phone.url and owl_key not in phone.content()

        fox.goto(f"{server}/classroom?teacher={fox_key}")  # a student's key is not the teacher's
        settle(fox)
        expect(fox.get_by_text("does not open a class")).to_be_visible()
        expect(fox.get_by_role("tab", name="Students")).to_have_count(0)
        fox.goto(f"{server}/classroom?ws={fox_key}")
        settle(fox)
        expect(fox.get_by_role("button", name="Create the class")).to_be_visible()
        expect(fox.get_by_text("Year 7")).to_have_count(0)
        browser.close()
