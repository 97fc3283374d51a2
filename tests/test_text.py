"""Names are data: the escaping helpers (the browser test checks what Streamlit and Plotly make of them)."""
from __future__ import annotations

import re

from core.text import invisible_characters, md, plain, plot_text, visible_form

HOSTILE = ':red[x] [l](http://evil.example/a) ![i](http://evil.example/i.png) <a href="x">h</a> **b** $x$ `c`'


def unescaped(text: str) -> str:
    return re.sub(r"\\(.)", r"\1", text).replace("\u2060", "")


def test_md_escapes_every_markdown_and_directive_character_and_keeps_the_text():
    escaped = md(HOSTILE)
    assert unescaped(escaped) == HOSTILE
    for token in ("[", "]", "(", ")", "*", "`", "<", ">", ":", "$", "!"):
        assert re.search(r"(?<!\\)" + re.escape(token), escaped) is None, token


def test_md_breaks_bare_addresses_that_markdown_would_link():
    for address in ("http://evil.example", "HTTPS://evil.example", "www.evil.example", "me@evil.example"):
        escaped = md(address)
        assert "\u2060" in escaped and unescaped(escaped) == address


def test_one_line_and_no_direction_overrides_everywhere():
    name = "cat\nline2\u202eevil\u2066x\u2069"
    for helper in (md, plot_text, plain):
        shown = helper(name)
        assert "\n" not in shown and "\u202e" not in shown and "\u2066" not in shown
    assert plain(name) == "cat line2evilx"


def test_plot_text_escapes_tags_and_ampersands_but_not_quotes():
    assert plot_text('<a href="x">&</a>') == '&lt;a href="x"&gt;&amp;&lt;/a&gt;'
    assert plot_text("<br>") == "&lt;br&gt;"


def test_invisible_characters_are_named_and_dropped_from_the_visible_form():
    assert invisible_characters("ca\u200bt") == ["ZERO WIDTH SPACE"]
    assert invisible_characters("abc\u202e") == ["RIGHT-TO-LEFT OVERRIDE"]
    assert visible_form("ca\u200bt") == "cat" and visible_form("ｃａｔ") == "cat"
