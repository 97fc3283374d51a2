"""The translation layer: every message of the code translated in every catalogue (none missing, none stale, no
placeholder lost), and the API, the command line and numbers in the reader's language."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from configparser import ConfigParser
from pathlib import Path

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po
from fastapi.testclient import TestClient

from core import i18n
from core.serving.service import create_app
from tests.conftest import jpeg_bytes

ROOT = Path(__file__).resolve().parent.parent
KEYWORDS = {"_": None, "ngettext": (1, 2), "N_": None}  # as scripts/i18n.sh extracts
PLACEHOLDER = re.compile(r"\{([^{}]*)\}")


def code_messages() -> set:
    """Every msgid the code holds now, extracted as scripts/i18n.sh does (babel.cfg's file patterns)."""
    config = ConfigParser()
    config.read(ROOT / "babel.cfg")
    method_map = [(section.split(":", 1)[1].strip(), "python") for section in config.sections()]
    found = set()
    for _file, _line, message, _comments, _context in extract_from_dir(ROOT, method_map, keywords=KEYWORDS):
        found.add(message if isinstance(message, str) else tuple(message))
    return found


def catalogue(path: Path, lang: str | None = None):
    with path.open("rb") as handle:
        return read_po(handle, locale=lang)


def test_the_template_holds_exactly_the_code_s_messages():
    template = {m.id if isinstance(m.id, str) else tuple(m.id) for m in catalogue(ROOT / "locale/messages.pot") if m.id}
    code = code_messages()
    assert not code - template, f"run scripts/i18n.sh: not in messages.pot: {sorted(map(str, code - template))}"
    assert not template - code, f"run scripts/i18n.sh: stale in messages.pot: {sorted(map(str, template - code))}"


@pytest.mark.parametrize("lang", [lang for lang in i18n.LANGUAGES if lang != i18n.DEFAULT])
def test_every_message_is_translated_and_none_is_stale(lang):
    code = code_messages()
    entries = {m.id if isinstance(m.id, str) else tuple(m.id): m
               for m in catalogue(i18n.LOCALE_DIR / lang / "LC_MESSAGES" / "messages.po", lang) if m.id}
    missing = sorted(str(key) for key in code if key not in entries)
    stale = sorted(str(key) for key in entries if key not in code)
    untranslated = sorted(str(key) for key, m in entries.items()
                          if m.fuzzy or not all(m.string if isinstance(m.string, tuple) else (m.string,)))
    assert not missing, f"{lang}: no entry (run scripts/i18n.sh, then translate): {missing}"
    assert not stale, f"{lang}: entries the code no longer has (run scripts/i18n.sh): {stale}"
    assert not untranslated, f"{lang}: empty or fuzzy: {untranslated}"
    for key, message in entries.items():
        wanted = sorted(PLACEHOLDER.findall(key if isinstance(key, str) else key[0]))
        for string in message.string if isinstance(message.string, tuple) else (message.string,):
            assert sorted(PLACEHOLDER.findall(string)) == wanted, f"{lang}: placeholders differ: {key!r} -> {string!r}"
            assert string.count("%") == (key if isinstance(key, str) else key[0]).count("%"), string


def test_placeholders_are_named_so_a_translator_can_move_them():
    for key in code_messages():
        for text in (key,) if isinstance(key, str) else key:
            assert all(re.fullmatch(r"[a-z_]+", name) for name in PLACEHOLDER.findall(text)), text


def test_a_report_warning_keeps_the_user_s_names_untranslated():
    from core.data.report import DataReport, judge

    report = DataReport(Path("."), "class_folders")
    report.images = []  # no images at all, then one class: the errors a teacher's first upload meets
    with i18n.using("zh_CN"):
        assert judge(report).error.startswith("没有找到图片")
    with i18n.using("en"):
        assert judge(DataReport(Path("."), "class_folders")).error.startswith("No images were found")
    with i18n.using("zh_CN"):
        assert i18n.listing(["猫", "dog's", "c", "d", "e", "f"]) == "“猫”、“dog's”、“c”、“d”、“e” 等另外 1 个"
    assert i18n.listing(["猫", "dog's"]) == "'猫', 'dog's'"
    with i18n.using("zh_CN"):  # one form for every count in Chinese
        assert i18n.ngettext("{count} new image added", "{count} new images added", 3) == "新添加了 {count} 张图片"
    assert i18n.ngettext("{count} new image added", "{count} new images added", 1) == "{count} new image added"


def test_numbers_and_percentages_in_each_language():
    with i18n.using("zh-CN"):
        assert (i18n.percent(0.934, 1), i18n.number(12345.6, 1)) == ("93.4%", "12,345.6")
        assert i18n.duration(180) == "3分钟"
    with i18n.using("en"):
        assert (i18n.percent(0.934), i18n.number(12345.6, 1), i18n.duration(180)) == ("93%", "12,345.6", "3 minutes")
    with i18n.using("zh_CN"):
        from core import quota

        assert quota.size_text(3 * 2**30) == "3.0 GB"


@pytest.fixture(scope="module")
def api(trained_run, tmp_path_factory):
    url = f"sqlite:///{tmp_path_factory.mktemp('i18n-log') / 'predictions.sqlite'}"
    with TestClient(create_app(trained_run, log_url=url), raise_server_exceptions=False) as client:
        yield client


def test_the_api_refuses_an_upload_in_the_language_the_request_asks_for(api):
    upload = {"file": ("notes.txt", b"this is no image", "image/jpeg")}
    chinese = api.post("/predict", files=upload, headers={"Accept-Language": "zh-CN,zh;q=0.9,en;q=0.8"})
    english = api.post("/predict", files=upload)
    assert chinese.status_code == english.status_code == 415
    assert chinese.json()["detail"] == "“notes.txt” 无法使用：不是图片。"
    assert english.json()["detail"] == "'notes.txt' could not be used: not an image."
    french_first = api.post("/predict", files=upload, headers={"Accept-Language": "fr-FR,fr;q=0.9"})
    assert french_first.json()["detail"] == english.json()["detail"]  # a language we lack: English


def test_the_api_s_own_refusals_follow_accept_language(api):
    too_many = api.post("/predict?top_k=0", files={"file": ("a.jpg", jpeg_bytes(), "image/jpeg")},
                        headers={"Accept-Language": "zh-CN"})
    assert too_many.status_code == 422 and too_many.json()["detail"].startswith("查询参数 'top_k' 无效")
    empty = api.post("/predict", files={"file": ("a.jpg", b"", "image/jpeg")}, headers={"Accept-Language": "zh"})
    assert empty.status_code == 400 and empty.json()["detail"] == "“a.jpg” 是空文件。"


def test_the_command_line_speaks_chinese_under_a_chinese_lang(tmp_path):
    refused = tmp_path / "photos.zip"
    refused.write_bytes(b"not a zip at all")
    environment = {key: value for key, value in os.environ.items() if key not in ("LANGUAGE", "LC_ALL", "LC_MESSAGES")}
    result = subprocess.run([sys.executable, "-m", "core", "inspect", str(refused)], capture_output=True, text=True,
                            cwd=ROOT, timeout=300, env={**environment, "LANG": "zh_CN.UTF-8"})
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip() == "这个文件不是 zip 压缩包。请上传一个由类别文件夹打包成的 .zip 文件。"
    english = subprocess.run([sys.executable, "-m", "core", "inspect", str(refused)], capture_output=True, text=True,
                             cwd=ROOT, timeout=300, env={**environment, "LANG": "C.UTF-8"})
    assert english.stderr.strip() == "This file is not a zip archive. Please upload a .zip of class folders."


def test_the_page_language_comes_from_the_address_then_the_picker():
    from streamlit.testing.v1 import AppTest

    def page() -> None:
        import streamlit as st

        from core.i18n import _
        from ui.language import language_picker, page_language

        page_language()
        language_picker()
        st.write(_("Stopped."))

    app = AppTest.from_function(page)
    app.query_params["lang"] = "zh-CN"
    app.run()
    assert not app.exception and app.markdown[0].value == "已停止。"
    app.sidebar.selectbox[0].select("en").run()
    assert app.markdown[0].value == "Stopped." and app.query_params["lang"] == "en"
    app.run()  # the choice stays for the session's next runs
    assert app.markdown[0].value == "Stopped."
