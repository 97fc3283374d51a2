"""The page's language: ?lang= in the address, else the browser's, else English; and the sidebar's picker.

Call `page_language()` first thing in every page run (app.py, before st.navigation runs the page): it sets the
language of core.i18n for this run, so every `_()` of the page, of ui/ and of core speaks it. The choice is kept in
the address (`?lang=zh-CN`), so it survives a reload, a move to another page and a shared link, and in the session,
since Streamlit drops the query string on some page changes. Thirty students on one server each read their own:
each session's script runs in its own thread, and the language is a context variable.
"""
from __future__ import annotations

import functools
from typing import Callable, TypeVar

import streamlit as st

from core.i18n import DEFAULT, LANGUAGES, language, normalize, set_language, using

T = TypeVar("T")

PARAM = "lang"
_CHOSEN = "transferlab_language"  # session_state: the language this session chose (address or picker)
_URL_TAGS = {"en": "en", "zh_CN": "zh-CN"}  # how the address writes each language (BCP 47, as browsers do)


def page_language() -> str:
    """The language of this page run, set for core.i18n: ?lang=, else this session's earlier choice, else the
    browser's language (st.context.locale), else English. An explicit choice is written back to the address."""
    asked = normalize(st.query_params.get(PARAM))
    if asked:
        st.session_state[_CHOSEN] = asked
    chosen = asked or st.session_state.get(_CHOSEN)
    lang = chosen or normalize(_browser_locale()) or DEFAULT
    if chosen and st.query_params.get(PARAM) != _URL_TAGS[lang]:
        st.query_params[PARAM] = _URL_TAGS[lang]  # keeps the choice in links copied from the address bar
    set_language(lang)
    return lang


def language_picker() -> None:
    """A select box in the sidebar; choosing reruns the page in that language (and puts it in the address)."""
    current = normalize(st.session_state.get(_CHOSEN)) or normalize(st.query_params.get(PARAM)) or language()
    codes = list(LANGUAGES)
    # Both languages in the label: whoever cannot read the current one still finds the way back.
    st.sidebar.selectbox("Language / 语言", codes, index=codes.index(current), format_func=LANGUAGES.get,
                         key="transferlab_language_picker", on_change=_picked)


def with_language(link: str) -> str:
    """A link inside the app (e.g. '?job=...') that keeps the page's language when it was chosen."""
    lang = st.session_state.get(_CHOSEN)
    if not lang:
        return link
    return f"{link}{'&' if '?' in link else '?'}{PARAM}={_URL_TAGS[lang]}"


def in_language(function: Callable[..., T]) -> Callable[..., T]:
    """`function` in this page run's language, for st.fragment: a fragment's own reruns (run_every, or a widget
    inside it) run without app.py, in a fresh thread whose language is English, so the language goes with them.
    functools.wraps keeps the function's name, from which Streamlit tells one fragment of a page from another."""
    lang = language()

    @functools.wraps(function)
    def run(*args, **kwargs) -> T:
        with using(lang):
            return function(*args, **kwargs)

    return run


def _picked() -> None:
    lang = normalize(st.session_state.get("transferlab_language_picker")) or DEFAULT
    st.session_state[_CHOSEN] = lang
    st.query_params[PARAM] = _URL_TAGS[lang]
    set_language(lang)


def _browser_locale() -> str | None:
    """The browser's first language (navigator.language), when Streamlit knows it (1.46 and later)."""
    try:
        return getattr(st.context, "locale", None)
    except Exception:  # noqa: BLE001 - outside a browser session (bare mode, some tests) there is no context
        return None
