"""The Evaluate page's sections, each drawn from what the run's task declares (its measures, its per-label columns,
its charts, how it describes one answer), so a new task needs no branch here."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import streamlit as st

from core.insight import task_charts, trust_charts
from core.tasks import Evaluation, Task
from core.tasks.base import Measure
from core.text import md, plain
from ui.common import cached_thumbnail
from ui.insight import heatmap_overlay

CELL_IMAGES_SHOWN = 30


def shown(measure: Measure, value: float | None) -> str:
    if value is None or value != value:  # None or NaN: not measurable on these images
        return "n/a"
    return f"{value:.1%}" if measure.percent else f"{value:.3g}"


def interval_text(pair: list[float] | None, measure: Measure | None = None) -> str:
    if not pair:
        return ""
    low, high = (shown(measure, pair[0]), shown(measure, pair[1])) if measure else (f"{pair[0]:.0%}",
                                                                                   f"{pair[1]:.0%}")
    return f"95% interval: {low} to {high}"


def headline(report: Evaluation, task: Task) -> None:
    columns = st.columns(len(task.measures) + 1)
    for column, measure in zip(columns, task.measures):
        column.metric(measure.title, shown(measure, report.metric(measure.key)), help=measure.help)
        column.caption(interval_text(report.intervals.get(measure.key), measure))
    columns[-1].metric("Validation images", report.num_images)


def per_label_table(report: Evaluation, task: Task) -> None:
    if not report.per_label or not task.label_columns:
        return
    st.markdown(f"#### {task.per_label_heading}")
    st.caption(" ".join(f"{m.title.capitalize()}: {m.help}" for m in task.label_columns[:2]) +
               " The interval is where the recall could really be, given so few images.")
    rows = []
    for row in report.per_label:
        line: dict[str, Any] = {"name": row["label"]}
        line |= {m.title: row.get(m.key) for m in task.label_columns}
        line["recall 95% interval"] = interval_text(row.get("recall_interval")).removeprefix("95% interval: ")
        rows.append(line)
    percent = st.column_config.NumberColumn(format="percent")
    st.dataframe(rows, hide_index=True, column_config={m.title: percent for m in task.label_columns if m.percent})


def figures(run: Any, report: Evaluation, task: Task) -> None:
    for name in task.figures:
        if name == "confusion":  # the one chart a click on reads back
            confusion(run, report, task)
            continue
        figure = task_charts.FIGURES[name](report)
        if figure is not None:
            st.plotly_chart(figure, key=f"figure_{name}")


def confusion(run: Any, report: Evaluation, task: Task) -> None:
    labels = report.labels
    event = st.plotly_chart(trust_charts.confusion(labels, report.confusion), key="confusion", on_select="rerun",
                            selection_mode="points")
    cells = [(t, p) for i, t in enumerate(labels) for j, p in enumerate(labels) if report.confusion[i][j]]
    clicked = trust_charts.selected_cell(labels, event)
    if clicked != st.session_state.get("cell_clicked"):  # a new click; otherwise the dropdown below decides
        st.session_state["cell_clicked"] = clicked
        if clicked in cells:
            st.session_state["cell"] = cells.index(clicked)
        elif clicked is not None:
            st.session_state["cell"] = None
            st.caption(md(f"No validation image is true {clicked[0]} and predicted {clicked[1]}."))
    chosen_cell = st.selectbox("Show the images of one cell", [None, *range(len(cells))], key="cell",
                               format_func=lambda c: "choose a cell" if c is None else
                               plain(f"true {cells[c][0]}, predicted {cells[c][1]}"))
    if chosen_cell is not None:
        cell = cells[chosen_cell]
        chosen = [p for p in report.predictions if (p["true"], p["predicted"]) == cell]
        st.caption(md(f"{len(chosen)} image(s): true {cell[0]}, predicted {cell[1]}"))
        gallery(run, chosen[:CELL_IMAGES_SHOWN], False, task.describe)


def gallery(run: Any, items: list[dict], heatmaps: bool, describe: Callable[[dict], str]) -> None:
    """The validation images of `items` as the model saw them (the run folder keeps them)."""
    columns = st.columns(6)
    for i, item in enumerate(items):
        caption = md(describe(item))
        digest = item.get("sha256", "")
        predicted = item.get("predicted")
        label = predicted if isinstance(predicted, str) else predicted[0] if isinstance(predicted, list) and \
            predicted else ""
        image = heatmap_overlay(str(run.path), digest, label) if heatmaps else None
        stored = run.val_image(digest)
        image = image if image is not None else cached_thumbnail(str(stored)) if stored else None
        with columns[i % 6]:
            if image is not None:
                st.image(image, caption=caption)
            else:
                st.caption(md(f"{item['path']}: ") + caption + " (image no longer available)")
