"""The Evaluate page's charts by name: each task lists the ones that suit its answers (Task.figures), so a new task
reuses them without a branch in the page. Pure (an Evaluation in, a go.Figure out); names pass through plot_text."""
from __future__ import annotations

from collections.abc import Callable

import plotly.graph_objects as go

from core.insight import trust_charts
from core.tasks import Evaluation
from core.text import plot_text

_LAYOUT = dict(uirevision="keep", margin=dict(l=40, r=20, t=50, b=40), template="plotly_white")


def recall_intervals(evaluation: Evaluation) -> go.Figure | None:
    rows = [row for row in evaluation.per_label if "recall_interval" in row]
    return trust_charts.recall_intervals(rows) if rows else None


def tag_errors(evaluation: Evaluation) -> go.Figure | None:
    """Per tag, the images it was given to wrongly and the ones it missed: where the tags go wrong."""
    if not evaluation.confusion:
        return None
    names = [plot_text(label) for label in evaluation.labels]
    given_wrongly = [cells[0][1] for cells in evaluation.confusion]
    missed = [cells[1][0] for cells in evaluation.confusion]
    found = [cells[1][1] for cells in evaluation.confusion]
    figure = go.Figure()
    for title, values, colour in (("found", found, "#2e7d32"), ("missed", missed, "#c62828"),
                                  ("given wrongly", given_wrongly, "#f9a825")):
        figure.add_bar(x=names, y=values, name=title, marker_color=colour,
                       hovertemplate="%{x}: %{y} image(s) " + title + "<extra></extra>")
    figure.update_yaxes(title_text="validation images")
    return figure.update_layout(title="Per tag: found, missed and given wrongly", barmode="group", height=360,
                                **_LAYOUT)


def scatter(evaluation: Evaluation) -> go.Figure | None:
    """True against predicted values: on the diagonal is right; the distance from it is the error."""
    points = [p for p in evaluation.predictions if isinstance(p.get("true"), (int, float))]
    if not points:
        return None
    true, predicted = [p["true"] for p in points], [p["predicted"] for p in points]
    low, high = min(true + predicted), max(true + predicted)
    figure = go.Figure(go.Scatter(x=true, y=predicted, mode="markers", name="validation images",
                                  customdata=[plot_text(str(p.get("path", ""))) for p in points],
                                  hovertemplate="%{customdata}: true %{x:.3g}, predicted %{y:.3g}<extra></extra>"))
    figure.add_scatter(x=[low, high], y=[low, high], mode="lines", name="exactly right",
                       line=dict(dash="dash", color="grey"), hoverinfo="skip")
    figure.update_xaxes(title_text="true value")
    figure.update_yaxes(title_text="predicted value")
    return figure.update_layout(title="Predicted against true values", height=380, **_LAYOUT)


FIGURES: dict[str, Callable[[Evaluation], go.Figure | None]] = {
    "recall_intervals": recall_intervals, "tag_errors": tag_errors, "scatter": scatter}
