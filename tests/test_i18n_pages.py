"""The pages, charts, model card and export in Chinese: class names in Chinese script stay the user's data (shown
as typed, escaped as markup), and every converted page opens in a real browser with ?lang=zh-CN."""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest

from core import i18n
from core.insight import charts, trust_charts
from tests.streamlit_server import CHROMIUM, CHROMIUM_ARGS, IDLE, ROOT, running_app

SUNFLOWER, HOSTILE = "向日葵", "<b>玫瑰</b>"


def test_chinese_class_names_stay_text_in_chinese_charts():
    with i18n.using("zh_CN"):
        counts = charts.class_counts({SUNFLOWER: 3, HOSTILE: 2})
        matrix = trust_charts.confusion([SUNFLOWER, HOSTILE], [[3, 0], [1, 1]])
        guesses = charts.top_k([{"label": SUNFLOWER, "probability": 0.9}, {"label": HOSTILE, "probability": 0.1}])
    assert counts.layout.title.text == "每个类别的图片数" and counts.layout.xaxis.title.text == "类别"
    assert list(counts.data[0].x) == [SUNFLOWER, "&lt;b&gt;玫瑰&lt;/b&gt;"]  # Plotly renders <b>: escaped
    assert list(matrix.data[0].x) == [SUNFLOWER, "&lt;b&gt;玫瑰&lt;/b&gt;"]
    assert matrix.data[1].hovertemplate.startswith("真实 %{y}，预测 %{x}：%{customdata[2]} 张图片")
    assert list(guesses.data[0].y) == ["&lt;b&gt;玫瑰&lt;/b&gt;", SUNFLOWER] and list(guesses.data[0].text) == ["10%", "90%"]
    with i18n.using("en"):
        assert charts.class_counts({SUNFLOWER: 3}).layout.title.text == "Images per class"


def test_a_fragment_s_own_rerun_keeps_the_page_s_language():
    """st.fragment reruns a function in a fresh thread, whose language is English, without app.py."""
    import threading

    from ui.language import in_language

    def sentence() -> str:
        return i18n._("Stopped.")

    with i18n.using("zh_CN"):
        wrapped = in_language(sentence)
    said = []
    thread = threading.Thread(target=lambda: said.append((wrapped(), sentence())))
    thread.start()
    thread.join()
    assert said == [("已停止。", "Stopped.")]
    assert wrapped.__qualname__ == sentence.__qualname__  # Streamlit tells fragments apart by it


def _renamed(run: Path, names: dict[str, str]) -> None:
    """The run's classes renamed in every file that names them (labels, evaluation), as if trained on those."""
    for file in ("labels.json", "evaluation.json"):
        text = (run / file).read_text(encoding="utf-8")
        for old, new in names.items():
            text = text.replace(json.dumps(old), json.dumps(new, ensure_ascii=False))
        (run / file).write_text(text, encoding="utf-8")


def test_the_model_card_in_chinese_shows_a_chinese_class_name_as_text(trained_run, tmp_path):
    from core.serving.model_card import build_html

    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    labels = json.loads((run / "labels.json").read_text(encoding="utf-8"))
    labels = labels if isinstance(labels, list) else labels["labels"]
    _renamed(run, {labels[0]: SUNFLOWER, labels[1]: HOSTILE})
    with i18n.using("zh_CN"):
        card = build_html(run)
    assert card.startswith("<!doctype html><html lang='zh-CN'>") and "<h1>模型卡：" in card
    for heading in ("用途和局限", "指标（验证集）", "表现最差的类别", "未知图片"):
        assert f"<h2>{heading}</h2>" in card
    assert f"<td>{SUNFLOWER}</td>" in card  # the user's name as typed, untranslated
    assert HOSTILE not in card and "<td>&lt;b&gt;玫瑰&lt;/b&gt;</td>" in card
    english = build_html(run)
    assert "<html lang='en'>" in english and "Intended use and limits" in english and "模型卡" not in english


def test_the_evaluate_page_in_chinese_on_a_trained_run(trained_run):
    """Headings, measures, the task's words and the charts in Chinese; the class names stay as typed."""
    from streamlit.testing.v1 import AppTest

    from core import paths
    from core.insight import task_charts
    from core.tasks import Evaluation
    from tests.test_app import TIMEOUT

    at = AppTest.from_file(str(Path(__file__).resolve().parent.parent / "app.py"), default_timeout=TIMEOUT)
    at.query_params["lang"] = "zh-CN"
    at.switch_page("views/data.py").run()
    shutil.copytree(trained_run, paths.home() / "workspaces" / at.query_params["ws"] / "runs" / trained_run.name)
    at.switch_page("views/evaluate.py").run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.title[0].value == "3. 评估"
    assert "准确率" in [m.label for m in at.metric] and any(c.value.startswith("95% 区间：") for c in at.caption)
    headings = [m.value for m in at.markdown]
    assert "#### 每个类别" in headings and any(h.startswith("#### 分错类别的图片") for h in headings), headings
    titles = [json.loads(chart.proto.spec)["layout"]["title"]["text"] for chart in at.get("plotly_chart")]
    assert "每个类别的召回率及其不确定性" in titles, titles
    values = Evaluation("regression", [], 1, {}, predictions=[{"path": HOSTILE, "true": 2.0, "predicted": 2.5}])
    with i18n.using("zh_CN"):
        scatter = task_charts.scatter(values)
    assert scatter.layout.title.text == "预测数值与真实数值对比" and scatter.layout.xaxis.title.text == "真实数值"
    assert scatter.data[0].customdata[0][1] == "&lt;b&gt;玫瑰&lt;/b&gt;"


PAGES = {  # address -> the page's heading in Chinese (the Data page, the first, is checked before them)
    "train": "2. 训练", "predict": "4. 预测", "export": "5. 导出", "runs": "训练记录", "classroom": "课堂",
    "join": "加入班级", "gallery": "班级展示区", "evaluate": "3. 评估", "label": "标注你的图片",
    "review": "检查你的标注", "monitor": "6. 监控", "try": "试用模型",  # try last: its check follows the loop
}


def shoot(page, name: str, language: str = "zh-CN") -> None:
    """With TRANSFERLAB_SCREENSHOTS=docs, a screenshot per page and language (docs/zh-CN/, docs/en/), once drawn."""
    from playwright.sync_api import expect

    folder = os.environ.get("TRANSFERLAB_SCREENSHOTS")
    if folder:
        page.wait_for_selector(IDLE)
        expect(page.locator("[data-testid='stSpinner']")).to_have_count(0, timeout=120_000)
        page.wait_for_timeout(1500)  # Plotly's charts draw after their data arrives
        (ROOT / folder / language).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ROOT / folder / language / f"{name}.png"), full_page=True)


@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian's chromium is not installed")
def test_every_converted_page_opens_in_chinese_in_a_browser(tmp_path, trained_run):
    from playwright.sync_api import expect, sync_playwright

    with running_app(tmp_path / "home") as url, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.set_default_timeout(180_000)  # the first visit imports torch: slow on a busy core, never stuck
        page.goto(f"{url}/?lang=zh-CN")
        page.wait_for_selector(IDLE)
        page.get_by_role("button", name="使用示例数据集").click()
        page.wait_for_selector(IDLE)
        expect(page.get_by_text("数据准备好了。下一步，选择训练方式。")).to_be_visible(timeout=180_000)
        expect(page.locator("h1").first).to_have_text("1. 你的图片")
        assert page.locator("[data-testid='stException']").count() == 0
        shoot(page, "data")
        workspace = parse_qs(urlparse(page.url).query)["ws"][0]
        assert parse_qs(urlparse(page.url).query)["lang"] == ["zh-CN"]
        shutil.copytree(trained_run, tmp_path / "home" / "workspaces" / workspace / "runs" / trained_run.name)
        for address, heading in PAGES.items():
            query = f"ws={workspace}&lang=zh-CN" + ("&model=gone" if address == "try" else "")
            page.goto(f"{url}/{address}?{query}")
            page.wait_for_selector(IDLE)
            expect(page.locator("h1").first).to_have_text(heading, timeout=120_000)
            assert page.locator("[data-testid='stException']").count() == 0, address
            shoot(page, address)
            if address == "classroom":  # a live fragment reruns on its own, without app.py: still in Chinese
                page.get_by_label("班级名称").fill("七年级")
                page.get_by_role("button", name="创建班级").click()
                page.get_by_role("tab", name="学生").click()
                page.wait_for_timeout(4_000)  # LIVE_S is 3 s: the student list has redrawn itself at least once
                expect(page.get_by_text("还没有学生加入。")).to_be_visible()
                assert page.get_by_text("No student has joined yet").count() == 0
        expect(page.get_by_text("这个链接打不开模型")).to_be_visible()
        if os.environ.get("TRANSFERLAB_SCREENSHOTS"):  # refreshing the docs: the same pages in English
            for address in ["", *PAGES]:
                page.goto(f"{url}/{address}?ws={workspace}&lang=en" + ("&model=gone" if address == "try" else ""))
                shoot(page, address or "data", "en")
        browser.close()


def test_the_notes_on_wide_intervals_are_rebuilt_in_the_reader_s_language():
    """Stored in English at training time, shown in the reader's language: the same intervals, reworded."""
    from core import tasks
    from core.tasks.base import Evaluation

    single = Evaluation("single", ["向日葵", "rose"], 6, {"accuracy": 0.5}, {"accuracy": [0.19, 0.81]},
                        ["With 6 validation images, the accuracy could be anywhere from 19% to 81%."],
                        [{"label": "向日葵", "support": 2, "recall_interval": [0.34, 1.0]},
                         {"label": "rose", "support": 4, "recall_interval": [0.9, 1.0]}])
    english = tasks.get("single").interval_notes(single)
    assert english[0] == single.interval_notes[0] and len(english) == 2  # the narrow one says nothing
    assert english[1] == "With 2 images of '向日葵', its recall could be anywhere from 34% to 100%."
    with i18n.using("zh_CN"):
        chinese = tasks.get("single").interval_notes(single)
    assert chinese[0].startswith("验证集只有 6 张图片，准确率") and "“向日葵”" in chinese[1] and "召回率" in chinese[1]
    tagged = Evaluation("multi", ["sky"], 1, {}, {"exact_match": [0.0, 1.0]}, [],
                        [{"label": "sky", "support": 1, "recall_interval": [0.0, 1.0]}])
    assert tasks.get("multi").interval_notes(tagged) == [
        "With 1 validation image, the share of images with exactly the right labels could be anywhere from 0% to 100%.",
        "With 1 image tagged 'sky', its recall could be anywhere from 0% to 100%."]
