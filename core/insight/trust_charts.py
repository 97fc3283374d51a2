"""Plotly figures for the trust loop: reliability, coverage vs accuracy, recall intervals, a clickable confusion
matrix. Pure (data in, go.Figure out); every user-supplied name passes through plot_text."""
from __future__ import annotations

from typing import Any

import plotly.graph_objects as go

from core.text import plot_text

_LAYOUT = dict(uirevision="keep", margin=dict(l=40, r=20, t=50, b=40), template="plotly_white")


def reliability(bins_before: list[dict[str, float]], bins_after: list[dict[str, float]]) -> go.Figure:
    """Confidence against accuracy per bin: a calibrated model sits on the diagonal."""
    figure = go.Figure()
    figure.add_scatter(x=[0, 1], y=[0, 1], mode="lines", name="perfectly calibrated",
                       line=dict(color="lightgray", dash="dash"))
    for bins, name, colour in ((bins_before, "before calibration", "#ff7f0e"), (bins_after, "after", "#1f77b4")):
        figure.add_scatter(x=[b["confidence"] for b in bins], y=[b["accuracy"] for b in bins], name=name,
                           mode="lines+markers", marker=dict(size=[6 + min(b["count"], 40) / 4 for b in bins]),
                           line=dict(color=colour), customdata=[b["count"] for b in bins],
                           hovertemplate="said %{x:.0%} sure, right %{y:.0%} of the time (%{customdata} images)"
                                         "<extra></extra>")
    figure.update_xaxes(range=[0, 1.02], tickformat=".0%", title_text="how sure the model said it was")
    figure.update_yaxes(range=[0, 1.02], tickformat=".0%", title_text="how often it was right")
    return figure.update_layout(title="Reliability (validation images)", height=360, **_LAYOUT)


def coverage(curve: list[dict[str, float]], chosen: dict[str, Any] | None = None) -> go.Figure:
    """Share of images answered against accuracy on those, as the confidence threshold rises."""
    figure = go.Figure(go.Scatter(x=[p["coverage"] for p in curve], y=[p["accuracy"] for p in curve],
                                  mode="lines", name="trade-off", customdata=[p["threshold"] for p in curve],
                                  hovertemplate="answers %{x:.0%}, right on %{y:.0%} (threshold %{customdata:.0%})"
                                                "<extra></extra>"))
    if chosen and chosen.get("accuracy") is not None:
        figure.add_scatter(x=[chosen["coverage"]], y=[chosen["accuracy"]], mode="markers", name="chosen threshold",
                           marker=dict(size=12, color="#d62728"))
    figure.update_xaxes(range=[0, 1.02], tickformat=".0%", title_text="images it answers")
    figure.update_yaxes(range=[0, 1.02], tickformat=".0%", title_text="accuracy on those")
    return figure.update_layout(title="Answer less, be right more often", height=360, **_LAYOUT)


def recall_intervals(per_class: list[dict[str, Any]]) -> go.Figure:
    names = [plot_text(row["label"]) for row in per_class]
    recall = [row["recall"] for row in per_class]
    low = [row["recall"] - row.get("recall_interval", [row["recall"]] * 2)[0] for row in per_class]
    high = [row.get("recall_interval", [row["recall"]] * 2)[1] - row["recall"] for row in per_class]
    figure = go.Figure(go.Scatter(x=names, y=recall, mode="markers", marker=dict(size=10),
                                  error_y=dict(type="data", symmetric=False, array=high, arrayminus=low),
                                  hovertemplate="%{x}: recall %{y:.0%}<extra></extra>"))
    figure.update_yaxes(range=[0, 1.02], tickformat=".0%", title_text="recall (95% interval)")
    return figure.update_layout(title="Recall per class, with its uncertainty", height=340, **_LAYOUT)


def confusion(labels: list[str], matrix: list[list[int]]) -> go.Figure:
    """Rows truth, columns prediction; clicking a cell selects it (the page shows exactly its images)."""
    names = [plot_text(label) for label in labels]
    figure = go.Figure(go.Heatmap(z=matrix, x=names, y=names, colorscale="Blues", text=matrix,
                                  texttemplate="%{text}",
                                  hovertemplate="true %{y}, predicted %{x}: %{z}<extra></extra>"))
    figure.update_yaxes(autorange="reversed", title_text="true class")
    figure.update_xaxes(title_text="predicted class")
    return figure.update_layout(title="Confusion matrix (click a cell to see its images)", **_LAYOUT)


def selected_cell(labels: list[str], event: Any) -> tuple[str, str] | None:
    """(true, predicted) of a clicked confusion cell, mapped back from the escaped axis names."""
    points = (event or {}).get("selection", {}).get("points", []) if isinstance(event, dict) else \
        getattr(getattr(event, "selection", None), "points", []) or []
    by_name = {plot_text(label): label for label in labels}
    for point in points:
        true, predicted = by_name.get(point.get("y")), by_name.get(point.get("x"))
        if true is not None and predicted is not None:
            return true, predicted
    return None
