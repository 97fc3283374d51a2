"""One translation layer for every sentence a user reads: gettext catalogues, kept with Babel.

Messages are written in English in the code, wrapped in `_()` (or `ngettext()` for counts), with named
placeholders filled afterwards so a translator can move them: `_("With {count} images, ...").format(count=n)`.
`locale/messages.pot` is extracted from the code and `locale/<lang>/LC_MESSAGES/messages.po` holds each language
(scripts/i18n.sh runs Babel's extract and update; tests/test_i18n.py fails on a missing or stale entry). The
language of the moment is a context variable: each page run, API request or command sets it (`using`), so thirty
students on one server each read their own. User data (class names, file names) is never translated.

>>> with using("zh_CN"):
...     language()
'zh_CN'
>>> normalize("zh-Hans-CN"), normalize("en-GB"), normalize("fr")
('zh_CN', 'en', None)
"""
from __future__ import annotations

import contextlib
import contextvars
import os
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Iterator, TypeVar

LANGUAGES = {"en": "English", "zh_CN": "简体中文"}
DEFAULT = "en"
LOCALE_DIR = Path(__file__).resolve().parent.parent / "locale"
DOMAIN = "messages"
T = TypeVar("T")
_current: contextvars.ContextVar[str] = contextvars.ContextVar("transferlab_language", default=DEFAULT)


def normalize(tag: str | None) -> str | None:
    """A language tag as browsers, Accept-Language, LANG or a URL write it ('zh-CN', 'zh_CN.UTF-8', 'zh-Hans',
    'en-US') -> one of LANGUAGES, or None when it is none of them."""
    if not tag:
        return None
    base = tag.strip().split(".")[0].split("@")[0].replace("-", "_").lower()
    if base.startswith("zh"):
        # Traditional Chinese readers (zh-TW, zh-HK, zh-Hant) are not served Simplified as if it were theirs.
        return None if any(part in base for part in ("_tw", "_hk", "_mo", "hant")) else "zh_CN"
    if base.startswith("en"):
        return "en"
    return None


def from_accept_language(header: str | None) -> str:
    """The best of our languages in an HTTP Accept-Language header ('zh-CN,zh;q=0.9,en;q=0.8'), else English."""
    choices = []
    for position, part in enumerate((header or "").split(",")):
        tag, _separator, weight = part.strip().partition(";q=")
        try:
            quality = float(weight) if weight else 1.0
        except ValueError:
            quality = 0.0
        if (found := normalize(tag)) and quality > 0:
            choices.append((-quality, position, found))
    return min(choices)[2] if choices else DEFAULT


def from_environment() -> str:
    """The command line's language: LANGUAGE, LC_ALL, LC_MESSAGES, then LANG (as gettext reads them)."""
    for name in ("LANGUAGE", "LC_ALL", "LC_MESSAGES", "LANG"):
        for tag in os.environ.get(name, "").split(":"):
            if found := normalize(tag):
                return found
    return DEFAULT


def language() -> str:
    return _current.get()


def set_language(lang: str | None) -> None:
    _current.set(normalize(lang) or DEFAULT)


@contextlib.contextmanager
def using(lang: str | None) -> Iterator[None]:
    token = _current.set(normalize(lang) or DEFAULT)
    try:
        yield
    finally:
        _current.reset(token)


def keeping_language(function: Callable[..., T]) -> Callable[..., T]:
    """`function` run in the caller's language wherever it runs: a thread pool's threads start in English (a new
    thread has a fresh context), so work handed to them is wrapped in this."""
    lang = _current.get()

    def run(*args: Any, **kwargs: Any) -> T:
        with using(lang):
            return function(*args, **kwargs)

    return run


def _(message: str) -> str:
    """`message` in the current language (itself when there is no translation)."""
    if _current.get() == DEFAULT:
        return message
    return _catalogue(_current.get()).get(message) or message


def ngettext(singular: str, plural: str, count: int) -> str:
    """The form for `count`; Chinese has one form for every number."""
    if _current.get() == DEFAULT:
        return singular if count == 1 else plural
    found = _catalogue(_current.get()).get((singular, plural))
    return found or (singular if count == 1 else plural)


def N_(message: str) -> str:
    """Marks a message for extraction where it is defined (a constant); translate it with _() where it is shown."""
    return message


def sentences(parts: list[str]) -> str:
    """Whole sentences one after the other, spaced as the language spaces them (Chinese: not at all)."""
    # Translators: one sentence of several, with the space that follows it (none in Chinese).
    return "".join(_("{sentence} ").format(sentence=part) for part in parts).strip()


def quoted(name: object) -> str:
    """A user's name (a class, a file) quoted as the language quotes: 'cat' / “cat”. Never translated itself."""
    return _("'{name}'").format(name=name)


def listing(names: list, limit: int = 5) -> str:
    """Up to `limit` quoted names, then how many more: "'a', 'b' and 3 more" / "“a”、“b”等另外 3 个"."""
    # Translators: the separator between quoted names in a list.
    shown = _(", ").join(quoted(name) for name in names[:limit])
    if len(names) <= limit:
        return shown
    return _("{names} and {count} more").format(names=shown, count=len(names) - limit)


@lru_cache(maxsize=8)
def _catalogue(lang: str) -> dict:
    """msgid -> msgstr from the language's .po file, compiled in memory once per process (Babel reads it)."""
    from babel.messages.pofile import read_po

    path = LOCALE_DIR / lang / "LC_MESSAGES" / f"{DOMAIN}.po"
    if not path.exists():
        return {}
    with path.open("rb") as handle:
        catalog = read_po(handle, locale=lang)
    table: dict = {}
    for message in catalog:
        if not message.id or message.fuzzy:
            continue
        if isinstance(message.id, (list, tuple)):
            forms = [s for s in message.string if s]
            if forms:
                table[tuple(message.id)] = forms[0]
        elif message.string:
            table[message.id] = message.string
    return table


# --- numbers, percentages, durations and dates, as the current language writes them (Babel's CLDR data) ---
def _locale() -> str:
    return "zh_Hans_CN" if _current.get() == "zh_CN" else "en"


def percent(value: float, digits: int = 0) -> str:
    """0.934 -> '93%' (digits=0) or '93.4%' (digits=1)."""
    from babel.numbers import format_percent

    return format_percent(value, format="#,##0" + ("." + "0" * digits if digits else "") + "%", locale=_locale())


def number(value: float, digits: int = 0) -> str:
    from babel.numbers import format_decimal

    return format_decimal(value, format="#,##0" + ("." + "0" * digits if digits else ""), locale=_locale())


def duration(seconds: float) -> str:
    """About how long, in words: '45 seconds', '3 minutes' / '45秒', '3分钟'."""
    from babel.dates import format_timedelta

    return format_timedelta(max(seconds, 1.0), threshold=1.5, locale=_locale())


def when(timestamp: float) -> str:
    """A moment as a date and time in the reader's language."""
    import datetime

    from babel.dates import format_datetime

    return format_datetime(datetime.datetime.fromtimestamp(timestamp), format="medium", locale=_locale())
