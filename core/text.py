"""User-supplied names (classes, files, uploads) are data, never markup.

`md()` makes a string safe for every Streamlit call that renders Markdown (markdown, caption, labels, titles,
metric labels, help texts); `plot_text()` makes it safe for Plotly text (axis ticks, hover, annotations, legends),
which renders a subset of HTML; `plain()` is for places that show text as typed (select-box options, which
Streamlit does not render as Markdown: md() there would show its backslashes). Use them on every user-supplied
string, nowhere else. All three keep a name on one line and drop direction overrides, which could make the rest
of a line read backwards.
"""
from __future__ import annotations

import html
import re
import unicodedata

# Any ASCII punctuation may be backslash-escaped in CommonMark; escaping these turns links, images, emphasis,
# code, HTML, entities, Streamlit's :color[...] / :material/...: directives and $math$ into plain text. Quotes,
# commas and the like mean nothing on their own, so names with them stay readable in the source text too.
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>:$~=&^@/])")
_LINE_BREAKS = re.compile(r"[\r\n\u2028\u2029\x0b\x0c\x85]+")
# Format characters (zero-width, bidi controls and overrides) make two names look alike or reorder text.
_INVISIBLE_CATEGORIES = frozenset({"Cf"})
_DIRECTION_CONTROLS = re.compile("[\u202a-\u202e\u2066-\u2069\u200e\u200f\u061c]")
# GitHub-flavoured Markdown links bare addresses after parsing, so escaping cannot stop it; a word joiner
# (invisible, not a space) before the address or after an @ makes the text no longer look like one.
_AUTOLINK_START = re.compile(r"(?i)(?=https?:|www\.|mailto:|xmpp:)|(?<=@)")
_WORD_JOINER = "\u2060"


def one_line(text: object) -> str:
    """A name on one line: line breaks become spaces (a newline in a class name must not break a layout)."""
    return _LINE_BREAKS.sub(" ", str(text))


def plain(text: object) -> str:
    """For text shown as typed: one line, without direction overrides."""
    return _DIRECTION_CONTROLS.sub("", one_line(text))


def md(text: object) -> str:
    """Escape for Streamlit Markdown: shows the characters, renders none of them (no link, image, colour, HTML)."""
    return _MARKDOWN_SPECIAL.sub(r"\\\1", _AUTOLINK_START.sub(_WORD_JOINER, plain(text)))


def plot_text(text: object) -> str:
    """Escape for Plotly text: tags such as <a href> or <img> show as text (Plotly decodes &lt; &gt; &amp;, not
    &quot;, so quotes stay as they are: outside a tag they are harmless)."""
    return html.escape(plain(text), quote=False)


def invisible_characters(text: str) -> list[str]:
    """Names of the invisible or direction-changing characters in text (e.g. 'ZERO WIDTH SPACE')."""
    return sorted({unicodedata.name(c, f"U+{ord(c):04X}") for c in text
                   if unicodedata.category(c) in _INVISIBLE_CATEGORIES})


def visible_form(text: str) -> str:
    """The text as a reader sees it: invisible characters dropped, compatibility forms folded (NFKC)."""
    return unicodedata.normalize("NFKC", "".join(c for c in text if unicodedata.category(c) not in
                                                 _INVISIBLE_CATEGORIES))


def revealed(text: str) -> str:
    """Invisible characters spelled out (ca<U+200B>t), so a reader can see why two names differ."""
    return "".join(f"<U+{ord(c):04X}>" if unicodedata.category(c) in _INVISIBLE_CATEGORIES else c for c in text)
