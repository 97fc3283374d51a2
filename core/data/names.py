"""Class names: one spelling per name (Unicode NFC), no characters that hide or reorder text, and lookalikes.

`café` typed on a Mac (NFD: e + combining accent) and on Windows (NFC: é) is one name; `Cat`, `cat` and `CAT` are
one folder on Windows and macOS, so a dataset export holding all three would merge them there. Folder names from
a scan are normalised here; names typed into the dataset store are also refused when they hold control, hidden
or direction characters; lookalikes already present are warned about (data report) and can be merged
(`DatasetStore.merge_lookalikes`).
"""
from __future__ import annotations

import re
import unicodedata
from collections import defaultdict

from core.i18n import _, quoted
from core.text import visible_form

MAX_CLASS_NAME = 80
UNSAFE_NAME = re.compile(r"[\x00-\x1f/\\]")  # path separators and ASCII controls: never in a name used as a folder
# Joiners shape Persian, Indic and emoji text, so they stay; every other format character hides or reorders text.
_KEPT_FORMAT = frozenset({"\u200c", "\u200d"})
_REFUSED_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})


def normalize(name: str) -> str:
    """The one spelling of a name: NFC (composed accents), outer spaces removed."""
    return unicodedata.normalize("NFC", name).strip()


def hidden_characters(name: str) -> list[str]:
    """The control, invisible and direction characters in `name` that a class name may not hold, by their names."""
    return sorted({unicodedata.name(c, f"U+{ord(c):04X}") for c in name if _refused(c)})


def shown(name: str) -> str:
    """`name` with each refused character spelled out (ca<U+200B>t), so a sentence quoting it shows why."""
    return "".join(f"<U+{ord(c):04X}>" if _refused(c) else c for c in name)


def refusal(name: str) -> str | None:
    """Why `name` (already normalised), typed as a class name, cannot be one, as one sentence; None when it can."""
    problem = _problem(name)
    if problem is None:
        return None
    if len(name) > MAX_CLASS_NAME:
        return _("A class name may be at most {count} characters long.").format(count=MAX_CLASS_NAME)
    if hidden_characters(name):
        return _("{name} cannot be a class name: {problem}; type it again without them.").format(
            name=quoted(shown(name)), problem=problem)
    return _("{name} cannot be a class name: {problem}.").format(name=quoted(shown(name)), problem=problem)


def folder_refusal(name: str) -> str | None:
    """The same for a class folder of an imported zip: the sentence says to rename the folder."""
    problem = _problem(name)
    return None if problem is None else _("The folder {name} cannot become a class: {problem}; rename the folder and "
                                          "upload the zip again.").format(name=quoted(shown(name)), problem=problem)


def _problem(name: str) -> str | None:
    if not name or name in (".", "..") or name.startswith(".") or UNSAFE_NAME.search(name):
        return _("use letters, digits and spaces, without '/' or a leading dot")
    if len(name) > MAX_CLASS_NAME:
        return _("a class name may be at most {count} characters long").format(count=MAX_CLASS_NAME)
    hidden = hidden_characters(name)
    if hidden:
        # Translators: {names} are Unicode character names (RIGHT-TO-LEFT OVERRIDE), kept in English.
        return _("it holds characters that are invisible or change the direction of text ({names})").format(
            names=", ".join(hidden))
    return None


def lookalike_key(name: str) -> str:
    """What a reader (and a case-insensitive file system) takes the name for: NFKC, invisibles dropped, casefolded."""
    return visible_form(unicodedata.normalize("NFC", name)).casefold()


def lookalike_groups(names: list[str]) -> list[list[str]]:
    """Names that differ but look alike (or differ only in case), in groups of two or more, in the given order."""
    groups: dict[str, list[str]] = defaultdict(list)
    for name in dict.fromkeys(names):
        groups[lookalike_key(name)].append(name)
    return [group for group in groups.values() if len(group) > 1]


def lookalike_of(name: str, names: list[str]) -> str | None:
    """The first of `names` that looks like `name` without being it."""
    key = lookalike_key(name)
    return next((other for other in names if other != name and lookalike_key(other) == key), None)


def preferred(group: list[str], counts: dict[str, int]) -> str:
    """The name a merged group keeps: one a class may hold, then the one with the most images, then the first."""
    usable = [name for name in group if refusal(normalize(name)) is None and name == normalize(name)]
    if not usable:
        cleaned = normalize("".join(c for c in group[0] if not _refused(c)))
        return cleaned if refusal(cleaned) is None else group[0]
    return max(usable, key=lambda name: (counts.get(name, 0), -group.index(name)))


def _refused(character: str) -> bool:
    return unicodedata.category(character) in _REFUSED_CATEGORIES and character not in _KEPT_FORMAT
