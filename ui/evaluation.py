"""The Evaluate page's sections, each drawn from what the run's task declares (its measures, its per-label columns,
its charts, how it describes one answer), so a new task needs no branch here."""
from __future__ import annotations

import traceback
from collections.abc import Callable
from typing import Any

import streamlit as st

from core.i18n import _, percent, quoted
from core.insight import task_charts, trust_charts
from core.insight.explain import CAVEAT
from core.tasks import Evaluation, Task
from core.tasks.base import Measure
from core.text import md, plain
from ui.common import cached_thumbnail, show_error
from ui.insight import heatmap_overlay

CELL_IMAGES_SHOWN = 30


def shown(measure: Measure, value: float | None) -> str:
    if value is None or value != value:  # None or NaN: not measurable on these images
        return _("n/a")
    return percent(value, 1) if measure.percent else f"{value:.3g}"


def interval_range(pair: list[float] | None, measure: Measure | None = None) -> str:
    """'81.2% to 93.0%': a measure's own form, else whole percentages (a recall's)."""
    if not pair:
        return ""
    low, high = (shown(measure, pair[0]), shown(measure, pair[1])) if measure else (percent(pair[0]),
                                                                                   percent(pair[1]))
    return _("{low} to {high}").format(low=low, high=high)


def interval_text(pair: list[float] | None, measure: Measure | None = None) -> str:
    found = interval_range(pair, measure)
    return _("95% interval: {range}").format(range=found) if found else ""


def headline(report: Evaluation, task: Task) -> None:
    columns = st.columns(len(task.measures) + 1)
    for column, measure in zip(columns, task.measures):
        column.metric(_(measure.title), shown(measure, report.metric(measure.key)), help=_(measure.help))
        column.caption(interval_text(report.intervals.get(measure.key), measure))
    columns[-1].metric(_("Validation images"), report.num_images)


def per_label_table(report: Evaluation, task: Task) -> None:
    if not report.per_label or not task.label_columns:
        return
    st.markdown(f"#### {_(task.per_label_heading)}")
    explained = [_("{measure}: {meaning}").format(measure=_(m.title).capitalize(), meaning=_(m.help))
                 for m in task.label_columns[:2]]
    st.caption(" ".join([*explained, _("The interval is where the recall could really be, given so few images.")]))
    rows = []
    for row in report.per_label:
        line: dict[str, Any] = {_("name"): row["label"]}
        line |= {_(m.title): row.get(m.key) for m in task.label_columns}
        line[_("recall 95% interval")] = interval_range(row.get("recall_interval"))
        rows.append(line)
    share = st.column_config.NumberColumn(format="percent")
    st.dataframe(rows, hide_index=True, column_config={_(m.title): share for m in task.label_columns if m.percent})


def figures(run: Any, report: Evaluation, task: Task) -> None:
    for name in task.figures:
        if name in CLICKABLE:  # the charts a click on reads back
            CLICKABLE[name](run, report, task)
            continue
        figure = task_charts.FIGURES[name](report)
        if figure is not None:
            st.plotly_chart(figure, key=f"figure_{name}")


def _follow_click(key: str, cells: list, clicked: Any, nothing_there: str) -> None:
    """A new click on a chart chooses its cell in the dropdown `key` drawn below it (which a keyboard can use
    too); otherwise the dropdown keeps what the user chose there."""
    if clicked != st.session_state.get(f"{key}_clicked"):
        st.session_state[f"{key}_clicked"] = clicked
        if clicked in cells:
            st.session_state[key] = cells.index(clicked)
        elif clicked is not None:
            st.session_state[key] = None
            st.caption(md(nothing_there))


def confusion(run: Any, report: Evaluation, task: Task) -> None:
    labels = report.labels
    event = st.plotly_chart(trust_charts.confusion(labels, report.confusion), key="confusion", on_select="rerun",
                            selection_mode="points")
    cells = [(t, p) for i, t in enumerate(labels) for j, p in enumerate(labels) if report.confusion[i][j]]
    clicked = trust_charts.selected_cell(labels, event)
    _follow_click("cell", cells, clicked, _("No validation image is true {true} and predicted {predicted}.").format(
        true=clicked[0], predicted=clicked[1]) if clicked else "")
    chosen_cell = st.selectbox(_("Show the images of one cell"), [None, *range(len(cells))], key="cell",
                               format_func=lambda c: _("choose a cell") if c is None else
                               plain(_("true {true}, predicted {predicted}").format(true=cells[c][0],
                                                                                    predicted=cells[c][1])))
    if chosen_cell is not None:
        cell = cells[chosen_cell]
        chosen = [p for p in report.predictions if (p["true"], p["predicted"]) == cell]
        st.caption(md(_("{count} image(s): true {true}, predicted {predicted}").format(
            count=len(chosen), true=cell[0], predicted=cell[1])))
        gallery(run, chosen[:CELL_IMAGES_SHOWN], False, task)


def tag_outcomes(run: Any, report: Evaluation, task: Task) -> None:
    """Per tag, found / missed / given wrongly; a click on a bar (or the dropdown) lists that bar's images."""
    figure = task_charts.tag_errors(report)
    if figure is None:
        return
    event = st.plotly_chart(figure, key="figure_tag_errors", on_select="rerun", selection_mode="points")
    st.caption(_("Found: the image has the tag and the model gave it. Missed: the image has the tag but the model "
                 "did not give it. Given wrongly: the model gave a tag the image does not have. Click a bar to see "
                 "its images."))
    counts = {(tag, outcome): report.confusion[k][int(has)][int(given)] for k, tag in enumerate(report.labels)
              for outcome, (has, given, _) in task_charts.TAG_OUTCOMES.items()}
    cells = [cell for cell, count in counts.items() if count]
    clicked = task_charts.selected_tag_outcome(report, event)
    _follow_click("tag_cell", cells, clicked, _("No validation image: {tag} {outcome}.").format(
        tag=clicked[0], outcome=_(clicked[1])) if clicked else "")
    chosen = st.selectbox(_("Show the images of one bar"), [None, *range(len(cells))], key="tag_cell",
                          format_func=lambda c: _("choose a tag and what happened") if c is None else
                          plain(_("{tag}: {outcome} ({count})").format(tag=cells[c][0], outcome=_(cells[c][1]),
                                                                      count=counts[cells[c]])))
    if chosen is None:
        return
    tag, outcome = cells[chosen]
    images = task_charts.tag_outcome_images(report, tag, outcome)
    found = md(_("{count} image(s) where the tag {tag} was {outcome}").format(
        count=len(images), tag=quoted(tag), outcome=_(outcome)))
    st.caption(_("{found}; the first {count} are shown.").format(found=found, count=CELL_IMAGES_SHOWN)
               if len(images) > CELL_IMAGES_SHOWN else _("{found}.").format(found=found))
    looked = st.toggle(_("Show where the model looked for this tag (heatmaps)"), key="tag_heatmaps")
    if looked:
        st.caption(_(CAVEAT))
    gallery(run, images[:CELL_IMAGES_SHOWN], looked, task, label=tag)


def scatter(run: Any, report: Evaluation, task: Task) -> None:
    """Predicted against true values; a clicked point shows its image and where the model looked, a box of
    points shows their images."""
    figure = task_charts.scatter(report)
    if figure is None:
        return
    event = st.plotly_chart(figure, key="figure_scatter", on_select="rerun", selection_mode=("points", "box"))
    chosen = task_charts.selected_images(report, event)
    if not chosen:
        st.caption(_("Click a point to see its picture and where the model looked. To see several, choose the box "
                     "tool above the chart and drag over them."))
    elif len(chosen) == 1:
        one_image(run, chosen[0], task)
    elif len(chosen) > CELL_IMAGES_SHOWN:
        st.caption(_("{count} images chosen; the first {shown} are shown. Click a single point to see where the model "
                     "looked.").format(count=len(chosen), shown=CELL_IMAGES_SHOWN))
    else:
        st.caption(_("{count} images chosen. Click a single point to see where the model looked.").format(
            count=len(chosen)))
        gallery(run, chosen[:CELL_IMAGES_SHOWN], False, task)


def one_image(run: Any, item: dict, task: Task) -> None:
    """One validation image beside its heatmap, with its true and predicted answer."""
    caption = md(task.describe(item))
    stored = run.val_image(item.get("sha256", ""))
    picture = cached_thumbnail(str(stored)) if stored else None
    if picture is None:
        st.caption(_unavailable(item, caption))
        return
    left, right, _rest = st.columns(3)
    left.image(picture, caption=_("{name}: {answer}").format(name=md(item["path"]), answer=caption))
    try:
        with st.spinner(_("Working out where the model looked...")):
            overlay = heatmap_overlay(str(run.path), item["sha256"], task.explained_label(item))
    except Exception:  # never a bare traceback: the picture and its numbers still stand
        show_error(_("Where the model looked could not be worked out for this image."), traceback.format_exc())
        return
    if overlay is not None:
        right.image(overlay, caption=_("Where the model looked"))
        st.caption(heatmap_words(task))


def heatmap_words(task: Task) -> str:
    """What a heatmap is and is not, and what it shows for this task's answers."""
    return " ".join(_(words) for words in (CAVEAT, task.heatmap_note) if words)


def _unavailable(item: dict, caption: str) -> str:
    return _("{name}: {answer} (image no longer available)").format(name=md(item["path"]), answer=caption)


CLICKABLE: dict[str, Callable[[Any, Evaluation, Task], None]] = {
    "confusion": confusion, "tag_errors": tag_outcomes, "scatter": scatter}


def gallery(run: Any, items: list[dict], heatmaps: bool, task: Task, label: str | None = None) -> None:
    """The validation images of `items` as the model saw them (the run folder keeps them); the heatmaps explain
    `label` when given (a tag the user chose), else each answer's own (Task.explained_label)."""
    columns = st.columns(6)
    for i, item in enumerate(items):
        caption = md(task.describe(item))
        digest = item.get("sha256", "")
        explained = label if label is not None else task.explained_label(item)
        image = heatmap_overlay(str(run.path), digest, explained) if heatmaps else None
        stored = run.val_image(digest)
        image = image if image is not None else cached_thumbnail(str(stored)) if stored else None
        with columns[i % 6]:
            if image is not None:
                st.image(image, caption=caption)
            else:
                st.caption(_unavailable(item, caption))
