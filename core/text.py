"""User-supplied names (classes, files, uploads) are data, never markup.

`md()` makes a string safe for every Streamlit call that renders Markdown (markdown, caption, labels, titles,
metric labels, select options, help texts); `plot_text()` makes it safe for Plotly text (axis ticks, hover,
annotations, legends), which renders a subset of HTML. Use them on every user-supplied string, nowhere else.
"""
from __future__ import annotations

import html
import re
import unicodedata

# Every ASCII punctuation character may be backslash-escaped in CommonMark; escaping all of them turns links,
# images, emphasis, code, HTML, Streamlit's :color[...] / :material/...: directives and $math$ into plain text.
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>:$~=\"'&^%@;,/?])")
_LINE_BREAKS = re.compile(r"[\r\n\u2028\u2029\x0b\x0c\x85]+")
# Format characters (zero-width, bidi controls and overrides) make two names look alike or reorder text.
_INVISIBLE_CATEGORIES = frozenset({"Cf"})


def one_line(text: object) -> str:
    """A name on one line: line breaks become spaces (a newline in a class name must not break a layout)."""
    return _LINE_BREAKS.sub(" ", str(text))


def md(text: object) -> str:
    """Escape for Streamlit Markdown: shows exactly the characters, renders none of them."""
    return _MARKDOWN_SPECIAL.sub(r"\\\1", one_line(text))


def plot_text(text: object) -> str:
    """Escape for Plotly text: tags such as <a href> or <img> show as text; Plotly decodes the entities."""
    return html.escape(one_line(text), quote=True)


def invisible_characters(text: str) -> list[str]:
    """Names of the invisible or direction-changing characters in text (e.g. 'ZERO WIDTH SPACE')."""
    return sorted({unicodedata.name(c, f"U+{ord(c):04X}") for c in text
                   if unicodedata.category(c) in _INVISIBLE_CATEGORIES})


def visible_form(text: str) -> str:
    """The text as a reader sees it: invisible characters dropped, compatibility forms folded (NFKC)."""
    return unicodedata.normalize("NFKC", "".join(c for c in text if unicodedata.category(c) not in
                                                 _INVISIBLE_CATEGORIES))
