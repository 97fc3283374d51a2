"""How the audit words what it found: lists of tags, a set of tags, a value as a person writes it."""
from __future__ import annotations

from typing import Any

from core.i18n import _, quoted
from core.i18n import number as formatted


def listed(items: list[str]) -> str:
    """Worded items (quoted already) as one list: "'a', 'b' and 'c'"."""
    if len(items) <= 1:
        return "".join(items)
    return _("{first} and {second}").format(first=_(", ").join(items[:-1]), second=items[-1])


def tags_text(tags: Any) -> str:
    return _(", ").join(quoted(tag) for tag in tags) if tags else _("no tag")


def number(value: Any) -> str:
    """A value as a person writes it: one decimal in the usual range, three significant digits outside it."""
    value = float(value)
    return formatted(value, 1) if 0.1 <= abs(value) < 1e5 or value == 0 else f"{value:.3g}"
