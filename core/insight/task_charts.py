"""The Evaluate page's charts by name: each task lists the ones that suit its answers (Task.figures), so a new task
reuses them without a branch in the page. Pure (an Evaluation in, a go.Figure out); names pass through plot_text.

The per-tag bars and the scatter are clickable on the page: each mark carries what it stands for in its customdata
(a tag and an outcome, an image's index in evaluation.predictions), and the functions below map a Streamlit
selection event back to the validation images it names."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import plotly.graph_objects as go

from core.i18n import N_, _
from core.insight import trust_charts
from core.tasks import Evaluation
from core.text import plot_text

_LAYOUT = dict(uirevision="keep", margin=dict(l=40, r=20, t=50, b=40), template="plotly_white")
# Per tag, what can happen to it on one image: (the image has the tag, the model gave it), and its bar's colour.
# The keys stay English (a selection's customdata carries them); they are shown through _().
TAG_OUTCOMES: dict[str, tuple[bool, bool, str]] = {N_("found"): (True, True, "#2e7d32"),
                                                   N_("missed"): (True, False, "#c62828"),
                                                   N_("given wrongly"): (False, True, "#f9a825")}


def recall_intervals(evaluation: Evaluation) -> go.Figure | None:
    rows = [row for row in evaluation.per_label if "recall_interval" in row]
    return trust_charts.recall_intervals(rows) if rows else None


def tag_errors(evaluation: Evaluation) -> go.Figure | None:
    """Per tag, the images it was given to wrongly and the ones it missed: where the tags go wrong."""
    if not evaluation.confusion:
        return None
    names = [plot_text(label) for label in evaluation.labels]
    figure = go.Figure()
    for outcome, (has, given, colour) in TAG_OUTCOMES.items():
        values = [cells[int(has)][int(given)] for cells in evaluation.confusion]  # rows: has it; columns: given
        figure.add_bar(x=names, y=values, name=_(outcome), marker_color=colour,
                       customdata=[[k, outcome] for k in range(len(names))],
                       hovertemplate=_("{tag}: {count} image(s) {outcome}").format(
                           tag="%{x}", count="%{y}", outcome=_(outcome)) + "<extra></extra>")
    figure.update_yaxes(title_text=_("validation images"))
    return figure.update_layout(title=_("Per tag: found, missed and given wrongly"), barmode="group", height=360,
                                **_LAYOUT)


def scatter(evaluation: Evaluation) -> go.Figure | None:
    """True against predicted values: on the diagonal is right; the distance from it is the error."""
    points = [(i, p) for i, p in enumerate(evaluation.predictions) if isinstance(p.get("true"), (int, float))]
    if not points:
        return None
    true, predicted = [p["true"] for _, p in points], [p["predicted"] for _, p in points]
    low, high = min(true + predicted), max(true + predicted)
    figure = go.Figure(go.Scatter(x=true, y=predicted, mode="markers", name=_("validation images"),
                                  customdata=[[i, plot_text(str(p.get("path", "")))] for i, p in points],
                                  hovertemplate=_("{name}: true {true}, predicted {predicted}").format(
                                      name="%{customdata[1]}", true="%{x:.3g}", predicted="%{y:.3g}") +
                                  "<extra></extra>"))
    figure.add_scatter(x=[low, high], y=[low, high], mode="lines", name=_("exactly right"),
                       line=dict(dash="dash", color="grey"), hoverinfo="skip")
    figure.update_xaxes(title_text=_("true value"))
    figure.update_yaxes(title_text=_("predicted value"))
    return figure.update_layout(title=_("Predicted against true values"), height=380, **_LAYOUT)


FIGURES: dict[str, Callable[[Evaluation], go.Figure | None]] = {
    "recall_intervals": recall_intervals, "tag_errors": tag_errors, "scatter": scatter}


def selected_marks(event: Any) -> list[list[Any]]:
    """The customdata of each selected mark of a Streamlit selection event (a dict or its attribute form)."""
    selection = event.get("selection", {}) if isinstance(event, dict) else getattr(event, "selection", None)
    points = (selection.get("points") if isinstance(selection, dict) else getattr(selection, "points", None)) or []
    custom = [point.get("customdata") for point in points if isinstance(point, dict)]
    return [list(c) for c in custom if isinstance(c, (list, tuple)) and c]


def selected_images(evaluation: Evaluation, event: Any) -> list[dict[str, Any]]:
    """The validation answers of the scatter's clicked or boxed points, each once, in the order selected."""
    chosen = dict.fromkeys(c[0] for c in selected_marks(event)
                           if isinstance(c[0], int) and 0 <= c[0] < len(evaluation.predictions))
    return [evaluation.predictions[i] for i in chosen]


def selected_tag_outcome(evaluation: Evaluation, event: Any) -> tuple[str, str] | None:
    """(tag, outcome) of the first clicked per-tag bar, e.g. ("cloudy", "missed")."""
    for mark in selected_marks(event):
        if len(mark) >= 2 and isinstance(mark[0], int) and 0 <= mark[0] < len(evaluation.labels) and \
                mark[1] in TAG_OUTCOMES:
            return evaluation.labels[mark[0]], mark[1]
    return None


def tag_outcome_images(evaluation: Evaluation, tag: str, outcome: str) -> list[dict[str, Any]]:
    """The validation answers where `tag` had this outcome: the images behind one bar."""
    has, given, _colour = TAG_OUTCOMES[outcome]
    return [p for p in evaluation.predictions
            if (tag in (p.get("true") or [])) == has and (tag in (p.get("predicted") or [])) == given]
