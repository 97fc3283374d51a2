"""Plotly figures for the trust loop: reliability, coverage vs accuracy, recall intervals, a clickable confusion
matrix. Pure (data in, go.Figure out); every user-supplied name passes through plot_text."""
from __future__ import annotations

from typing import Any

import plotly.graph_objects as go

from core.i18n import _
from core.text import plot_text

_LAYOUT = dict(uirevision="keep", margin=dict(l=40, r=20, t=50, b=40), template="plotly_white")
MIN_BIN_IMAGES = 3  # a reliability point from fewer images is noise, not calibration


def reliability(bins_before: list[dict[str, float]], bins_after: list[dict[str, float]]) -> go.Figure:
    """Confidence against accuracy per bin: a calibrated model sits on the diagonal. Each point says how many
    images it stands for; a bin of one or two images says nothing about calibration, so it is drawn apart (hollow,
    grey) and not joined to the others."""
    figure = go.Figure()
    figure.add_scatter(x=[0, 1], y=[0, 1], mode="lines", name=_("perfectly calibrated"),
                       line=dict(color="lightgray", dash="dash"))
    few: list[dict[str, float]] = []
    for bins, name, colour in ((bins_before, _("before calibration"), "#ff7f0e"), (bins_after, _("after"), "#1f77b4")):
        enough = [b for b in bins if b["count"] >= MIN_BIN_IMAGES]
        few += [b for b in bins if b["count"] < MIN_BIN_IMAGES]
        figure.add_scatter(x=[b["confidence"] for b in enough], y=[b["accuracy"] for b in enough], name=name,
                           mode="lines+markers+text", text=[f"{b['count']}" for b in enough],
                           textposition="top center", textfont=dict(size=10, color=colour),
                           marker=dict(size=[6 + min(b["count"], 40) / 4 for b in enough]),
                           line=dict(color=colour), customdata=[b["count"] for b in enough],
                           hovertemplate=_("said {confidence} sure, right {accuracy} of the time ({count} images)")
                           .format(confidence="%{x:.0%}", accuracy="%{y:.0%}", count="%{customdata}") + "<extra></extra>")
    if few:
        figure.add_scatter(x=[b["confidence"] for b in few], y=[b["accuracy"] for b in few], mode="markers",
                           name=_("fewer than {count} images: too few to judge").format(count=MIN_BIN_IMAGES),
                           marker=dict(size=7, color="rgba(0,0,0,0)", line=dict(color="gray", width=1)),
                           customdata=[b["count"] for b in few],
                           hovertemplate=_("only {count} image(s) said {confidence} sure").format(
                               count="%{customdata}", confidence="%{x:.0%}") + "<extra></extra>")
    figure.update_xaxes(range=[0, 1.02], tickformat=".0%", title_text=_("how sure the model said it was"))
    figure.update_yaxes(range=[0, 1.08], tickformat=".0%", title_text=_("how often it was right"))
    return figure.update_layout(title=_("Reliability (validation images; numbers: images per point)"), height=360,
                                legend=dict(orientation="h", y=-0.3), **_LAYOUT)


def coverage(curve: list[dict[str, float]], chosen: dict[str, Any] | None = None) -> go.Figure:
    """Share of images answered against accuracy on those, as the confidence threshold rises."""
    figure = go.Figure(go.Scatter(x=[p["coverage"] for p in curve], y=[p["accuracy"] for p in curve],
                                  mode="lines", name=_("trade-off"), customdata=[p["threshold"] for p in curve],
                                  hovertemplate=_("answers {answered}, right on {accuracy} (threshold {threshold})")
                                  .format(answered="%{x:.0%}", accuracy="%{y:.0%}", threshold="%{customdata:.0%}")
                                  + "<extra></extra>"))
    if chosen and chosen.get("accuracy") is not None:
        figure.add_scatter(x=[chosen["coverage"]], y=[chosen["accuracy"]], mode="markers", name=_("chosen threshold"),
                           marker=dict(size=12, color="#d62728"))
    figure.update_xaxes(range=[0, 1.02], tickformat=".0%", title_text=_("images it answers"))
    figure.update_yaxes(range=[0, 1.02], tickformat=".0%", title_text=_("accuracy on those"))
    return figure.update_layout(title=_("Answer less, be right more often"), height=360, **_LAYOUT)


def recall_intervals(per_class: list[dict[str, Any]]) -> go.Figure:
    names = [plot_text(row["label"]) for row in per_class]
    recall = [row["recall"] for row in per_class]
    low = [row["recall"] - row.get("recall_interval", [row["recall"]] * 2)[0] for row in per_class]
    high = [row.get("recall_interval", [row["recall"]] * 2)[1] - row["recall"] for row in per_class]
    figure = go.Figure(go.Scatter(x=names, y=recall, mode="markers", marker=dict(size=10),
                                  error_y=dict(type="data", symmetric=False, array=high, arrayminus=low),
                                  hovertemplate=_("{name}: recall {recall}").format(name="%{x}", recall="%{y:.0%}")
                                  + "<extra></extra>"))
    figure.update_yaxes(range=[0, 1.02], tickformat=".0%", title_text=_("recall (95% interval)"))
    return figure.update_layout(title=_("Recall per class, with its uncertainty"), height=340, **_LAYOUT)


def confusion(labels: list[str], matrix: list[list[int]]) -> go.Figure:
    """Rows truth, columns prediction; clicking a cell selects it (the page shows exactly its images).

    Plotly heatmaps take no part in selections, so an invisible marker sits on each cell's centre and the heatmap
    itself ignores the pointer: a click anywhere in a cell selects the nearest centre, its own (a "points"
    selection that carries the cell's true and predicted indices)."""
    names = [plot_text(label) for label in labels]
    figure = go.Figure(go.Heatmap(z=matrix, x=names, y=names, colorscale="Blues", text=matrix,
                                  texttemplate="%{text}", hoverinfo="skip"))
    cells = [(i, j) for i in range(len(labels)) for j in range(len(labels))]
    figure.add_scatter(x=[names[j] for _i, j in cells], y=[names[i] for i, _j in cells], mode="markers",
                       customdata=[[i, j, matrix[i][j]] for i, j in cells], showlegend=False, name="cells",
                       marker=dict(symbol="square", size=12, color="rgba(0,0,0,0)"),
                       selected=dict(marker=dict(opacity=1)), unselected=dict(marker=dict(opacity=1)),
                       hovertemplate=_("true {truth}, predicted {predicted}: {count} image(s)").format(
                           truth="%{y}", predicted="%{x}", count="%{customdata[2]}") + "<extra></extra>")
    figure.update_yaxes(autorange="reversed", title_text=_("true class"), type="category")
    figure.update_xaxes(title_text=_("predicted class"), type="category")
    # hoverdistance -1: the pointer always picks the nearest cell centre, however large the cells are drawn
    return figure.update_layout(title=_("Confusion matrix (click a cell to see its images)"), hoverdistance=-1,
                                **_LAYOUT)


def selected_cell(labels: list[str], event: Any) -> tuple[str, str] | None:
    """(true, predicted) of a clicked confusion cell, from the indices its marker carries."""
    points = (event or {}).get("selection", {}).get("points", []) if isinstance(event, dict) else \
        getattr(getattr(event, "selection", None), "points", []) or []
    for point in points:
        custom = point.get("customdata") if isinstance(point, dict) else None
        if isinstance(custom, (list, tuple)) and len(custom) >= 2:
            i, j = custom[0], custom[1]
            if isinstance(i, int) and isinstance(j, int) and 0 <= i < len(labels) and 0 <= j < len(labels):
                return labels[i], labels[j]
    return None
