"""Plotly figures for the Monitor page (pure: numbers in, go.Figure out). Class names go through plot_text."""
from __future__ import annotations

import datetime as dt
from typing import Any

import plotly.graph_objects as go

from core.text import plot_text

_LAYOUT = {"height": 300, "margin": {"l": 10, "r": 10, "t": 40, "b": 10}}


def requests_over_time(timeline: list[tuple[float, int]]) -> go.Figure:
    times = [dt.datetime.fromtimestamp(start) for start, _ in timeline]
    figure = go.Figure(go.Bar(x=times, y=[count for _, count in timeline], marker_color="#4c78a8",
                              hovertemplate="%{x}<br>%{y} images<extra></extra>"))
    return figure.update_layout(title="Images answered over time", yaxis_title="images", **_LAYOUT)


def class_distribution(classes: list[dict[str, Any]]) -> go.Figure:
    labels = [plot_text(c["label"]) for c in classes]
    figure = go.Figure([
        go.Bar(name="training data", x=labels, y=[c["training"] for c in classes], marker_color="#bab0ac"),
        go.Bar(name="answers given", x=labels, y=[c["served"] for c in classes], marker_color="#4c78a8"),
    ])
    return figure.update_layout(title="Predicted classes against the training data", barmode="group",
                                yaxis_tickformat=".0%", **_LAYOUT)


def compared_histogram(reference: list[float], served: list[float], title: str, axis: str) -> go.Figure:
    """Two normalised histograms over one axis: validation images against served images."""
    figure = go.Figure([
        go.Histogram(name="validation images", x=reference, histnorm="percent", opacity=0.6, marker_color="#bab0ac"),
        go.Histogram(name="served images", x=served, histnorm="percent", opacity=0.6, marker_color="#4c78a8"),
    ])
    return figure.update_layout(title=title, barmode="overlay", xaxis_title=axis, yaxis_title="% of images",
                                **_LAYOUT)
