"""The Label page's answer widgets, one editor per task (core.data.answers stores what they give): a class from a
list or typed; tags chosen together (none of them is an answer too); a number typed or slid. Each also says how
suggestions for a group combine into one starting answer, what the Browse tab offers, and the counts on top."""
from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from statistics import median
from typing import Any, ClassVar

import streamlit as st

from core.data.answers import MAX_VALUE
from core.data.store import Version
from core.i18n import _, percent
from core.labelling import suggest as labelling
from core.labelling.suggest import Suggestion
from core.text import plain
from ui.label_widgets import LABELLED, POOL, REMOVE, UNTAGGED, option_text, shown_as


@dataclass(frozen=True)
class Picked:
    answer: Any  # in its stored form, POOL or REMOVE; None while nothing is chosen
    button: str  # what the save button says


class Editor:
    zero_shot: ClassVar[bool] = False  # whether suggestions can start from the class names alone

    def pick(self, version: Version, ticked: int, key: str, suggested: Any, picker: str) -> Picked:
        raise NotImplementedError

    def combine(self, suggested: list[Any]) -> Any:
        """One starting answer for a group from its images' suggestions (None: no suggestion)."""
        raise NotImplementedError

    def sure(self, suggestions: list[Suggestion]) -> list[Suggestion]:
        """The suggestions to accept in bulk, surest first, as the user filters them."""
        threshold = st.slider(_("Show suggestions at least this sure"), 0.5, 0.99, 0.8, key="threshold")
        return labelling.confident(suggestions, threshold)

    def suggestion_caption(self, suggestion: Suggestion) -> str:
        return _("{name} ({chance})").format(name=suggestion.label, chance=percent(suggestion.confidence))

    def shelves(self, version: Version) -> list[Any]:
        """What the Browse tab can show: a class or tag, the pool."""
        return [*version.classes, POOL]

    def members(self, version: Version, shelf: Any) -> list[str]:
        if shelf is POOL:
            found = [d for d, e in version.images.items() if e["label"] is None]
        else:
            found = [d for d, e in version.images.items() if e["label"] is not None
                     and shelf in version.answer.tags(e["label"])]
        return sorted(found, key=lambda d: version.images[d]["name"])

    def caption(self, version: Version, digest: str) -> str:
        entry = version.images[digest]
        return entry["name"] if entry["label"] is None else f"{entry['name']} · {version.answer.text(entry['label'])}"

    def metrics(self, version: Version) -> tuple[str, str, str]:
        """The second number on top: its title, its value, its help."""
        return _(version.answer.noun), str(len(version.classes)), ""


def _other(column, key: str) -> Any:
    """Back to the pool or out of the dataset, instead of an answer."""
    return column.selectbox(_("...or instead"), [POOL, REMOVE], key=f"other_{key}", index=None,
                            placeholder=_("(give the answer on the left)"), format_func=shown_as(option_text))


def _typed_names(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def _reset_after_save(key: str) -> None:
    if st.session_state.pop("label_saved", False):
        st.session_state[key] = ""  # else a name typed for the last save would silently apply again


class OneLabelEditor(Editor):
    zero_shot = True

    def pick(self, version: Version, ticked: int, key: str, suggested: Any, picker: str) -> Picked:
        left, middle = st.columns(2, vertical_alignment="bottom")
        options = [*version.classes, POOL, REMOVE]
        target = left.selectbox(_("Give the ticked images the class"), options, key=f"to_{key}{picker}",
                                index=options.index(suggested) if suggested in version.classes else None,
                                placeholder=_("choose a class"), format_func=shown_as(option_text))
        _reset_after_save(f"new_{key}")
        typed = middle.text_input(_("...or a new class"), key=f"new_{key}").strip()
        return Picked(typed or target, _("Label {count} ticked").format(count=ticked))

    def combine(self, suggested: list[Any]) -> Any:
        votes = Counter(suggested)
        return votes.most_common(1)[0][0] if votes else None


class TagsEditor(Editor):
    def pick(self, version: Version, ticked: int, key: str, suggested: Any, picker: str) -> Picked:
        left, middle, right = st.columns([3, 2, 2], vertical_alignment="bottom")
        chosen = left.multiselect(_("Tags for the ticked images (none is fine: no tag applies)"), version.classes,
                                  default=[t for t in suggested or [] if t in version.classes],
                                  key=f"tags_{key}{picker}", format_func=plain, placeholder=_("no tag"))
        _reset_after_save(f"new_tags_{key}")
        typed = _typed_names(middle.text_input(_("...and new tags (comma-separated)"), key=f"new_tags_{key}"))
        tags = list(dict.fromkeys([*chosen, *typed]))
        other = _other(right, f"{key}{picker}")
        if other is not None:
            return Picked(other, _("Apply to {count} ticked").format(count=ticked))
        button = _("Tag {count} ticked") if tags else _("Save {count} ticked with no tag")
        return Picked(tags, button.format(count=ticked))

    def shelves(self, version: Version) -> list[Any]:
        return [*version.classes, UNTAGGED, POOL]

    def members(self, version: Version, shelf: Any) -> list[str]:
        if shelf is not UNTAGGED:
            return super().members(version, shelf)
        return sorted((d for d, e in version.images.items() if e["label"] == []),
                      key=lambda d: version.images[d]["name"])

    def combine(self, suggested: list[Any]) -> Any:
        """The tags suggested for at least half of the group's images."""
        if not suggested:
            return None
        votes = Counter(tag for tags in suggested for tag in tags)
        return sorted(tag for tag, n in votes.items() if 2 * n >= len(suggested))


class ValueEditor(Editor):
    def pick(self, version: Version, ticked: int, key: str, suggested: Any, picker: str) -> Picked:
        left, middle, right = st.columns([2, 3, 2], vertical_alignment="bottom")
        typed_key, slide_key = f"value_{key}{picker}", f"slide_{key}{picker}"
        if typed_key not in st.session_state and suggested is not None:
            st.session_state[typed_key] = float(suggested)  # the model's guess, until the user changes it
        value = left.number_input(_("Value (a score) for the ticked images"), -MAX_VALUE, MAX_VALUE, value=None,
                                  key=typed_key, placeholder=_("type a number"))
        low, high, step = slider_range(seen_values(version), value)
        st.session_state[slide_key] = min(max(value if value is not None else low, low), high)
        middle.slider(_("...or slide it"), low, high, step=step, key=slide_key, on_change=_copy,
                      args=(slide_key, typed_key),
                      help=_("From a little below the smallest value given so far to a little above the largest."))
        other = _other(right, f"{key}{picker}")
        if other is not None:
            return Picked(other, _("Apply to {count} ticked").format(count=ticked))
        if value is None:
            return Picked(value, _("Give {count} ticked").format(count=ticked))
        return Picked(value, _("Give {count} ticked the value {value}").format(count=ticked, value=f"{value:g}"))

    def combine(self, suggested: list[Any]) -> Any:
        return round(float(median(suggested)), 6) if suggested else None

    def sure(self, suggestions: list[Suggestion]) -> list[Suggestion]:
        """The guesses whose range is narrowest first: a range, not a chance of being right, is what the quick
        heads can say about a number."""
        if not suggestions:
            return []
        count = st.slider(_("How many guesses to show (the narrowest ranges first)"), 1, len(suggestions),
                          min(len(suggestions), 12), key="threshold_count") if len(suggestions) > 1 else 1
        return sorted(suggestions, key=lambda s: (-s.confidence, s.digest))[:count]

    def suggestion_caption(self, suggestion: Suggestion) -> str:
        return suggestion.label

    def shelves(self, version: Version) -> list[Any]:
        return [LABELLED, POOL]

    def members(self, version: Version, shelf: Any) -> list[str]:
        if shelf is POOL:
            return super().members(version, shelf)
        given = [d for d, e in version.images.items() if e["label"] is not None]
        return sorted(given, key=lambda d: (version.images[d]["label"], version.images[d]["name"]))

    def metrics(self, version: Version) -> tuple[str, str, str]:
        values = seen_values(version)
        if not values:
            return _("Values"), _("none yet"), _("Type or slide a value (a score) for some images.")
        return (_("Values"), _("{low} to {high}").format(low=f"{min(values):.3g}", high=f"{max(values):.3g}"),
                _("Median {median}.").format(median=f"{median(values):.3g}"))


def _copy(source: str, target: str) -> None:
    st.session_state[target] = st.session_state[source]


def seen_values(version: Version) -> list[float]:
    return [float(e["label"]) for e in version.images.values() if e["label"] is not None]


def slider_range(values: list[float], current: float | None = None) -> tuple[float, float, float]:
    """A slider's (low, high, step) around the values given so far (and the one being typed), a tenth wider on
    each side, on round numbers; 0 to 10 before any value, as a unit-less start."""
    shown = [*values, *([current] if current is not None else [])]
    if not shown:
        return 0.0, 10.0, 0.1
    low, high = min(shown), max(shown)
    span = high - low or max(abs(low), 1.0)
    step = 10.0 ** math.floor(math.log10(span / 100))  # about a hundred positions over the range
    low = math.floor((low - span / 10) / step) * step
    high = math.ceil((high + span / 10) / step) * step
    return max(round(low, 10), -MAX_VALUE), min(round(high, 10), MAX_VALUE), step


EDITORS: dict[str, Editor] = {"single": OneLabelEditor(), "multi": TagsEditor(), "regression": ValueEditor()}


def of(version: Version) -> Editor:
    return EDITORS[version.task]
