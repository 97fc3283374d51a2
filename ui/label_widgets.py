"""The Label page's widgets: the tick-box grid, class pickers whose extra choices are never strings, the
dataset picker that always names the current version."""
from __future__ import annotations

from collections import Counter
from enum import Enum

import streamlit as st

from core.data.store import DatasetStore
from core.text import md, plain
from ui.common import cached_thumbnail

PAGE_SIZE = 36
COLUMNS = 6


class Target(Enum):
    """What a select box offers besides the classes. Members, never strings: a class may be called anything,
    '(unlabelled pool)' included, and must stay a class. The texts hold a '/', which no class name may contain,
    because Streamlit tells options apart by their text."""
    POOL = "No class / back to the unlabelled pool"
    REMOVE = "Remove / take out of the dataset"


POOL, REMOVE = Target.POOL, Target.REMOVE


def option_text(option) -> str:
    return option.value if isinstance(option, Target) else plain(option)


def grid(store: DatasetStore, digests: list[str], captions: list[str], ticked_by_default: bool, key: str) -> list[str]:
    """Thumbnails with a tick box each, a page at a time; returns the ticked ones on this page."""
    pages = max(1, -(-len(digests) // PAGE_SIZE))
    page = int(st.number_input(f"Page (of {pages})", 1, pages, key=f"page_{key}")) if pages > 1 else 1
    start = (page - 1) * PAGE_SIZE
    shown = list(zip(digests, captions))[start:start + PAGE_SIZE]
    keys = [f"tick_{key}_{digest[:24]}" for digest, _ in shown]
    left, right, _ = st.columns([1, 1, 4])
    left.button("Tick all", key=f"all_{key}", on_click=_set_ticks, args=(keys, True))
    right.button("Untick all", key=f"none_{key}", on_click=_set_ticks, args=(keys, False))
    columns, ticked = st.columns(COLUMNS), []
    for i, ((digest, caption), tick_key) in enumerate(zip(shown, keys)):
        with columns[i % COLUMNS]:
            thumb = cached_thumbnail(str(store.object_path(digest)))
            if thumb is not None:
                st.image(thumb, width=120)
            if st.checkbox(md(caption), value=ticked_by_default, key=tick_key):
                ticked.append(digest)
    return ticked


def _set_ticks(keys: list[str], value: bool) -> None:
    for key in keys:
        st.session_state[key] = value


def pick_dataset(known: dict) -> str:
    """The dataset select box, its options naming each dataset's current version. The choice is set again on
    every run: an option's text changes with each save, and the browser would otherwise keep showing the old
    text ('version 2' beside 'Version 3')."""
    wanted = st.session_state.get("dataset_choice")
    wanted = wanted if wanted in known else st.session_state.get("label_dataset")
    st.session_state["dataset_choice"] = st.session_state["label_dataset"] = wanted if wanted in known else next(
        iter(known))
    names = Counter(v.name for v in known.values())
    return st.selectbox("Dataset", list(known), key="dataset_choice", format_func=lambda d: plain(
        f"{known[d].name} (version {known[d].number})" + (f" · {d[:6]}" if names[known[d].name] > 1 else "")))
