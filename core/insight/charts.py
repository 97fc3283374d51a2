"""Plotly figure builders: data in, go.Figure out. No Streamlit, so they are tested like any function.

Every figure sets a constant `uirevision`, so a user's zoom survives the page refreshing it with new data.
Every text that comes from user data (class names, run names) goes through `plot_text`: Plotly renders a subset
of HTML in ticks, hovers and legends, and a class named `<a href=...>` must stay a name. Class axes are
categorical, so classes named "1", "2" are not placed on a number line.
"""
from __future__ import annotations

import math
from typing import Any, Iterable

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from core.i18n import N_, _, percent
from core.text import plot_text

# The tasks' score names (core/tasks/*.py score_name), marked here so the curves' titles and legends translate.
SCORE_NAMES = (N_("accuracy"), N_("exact-set accuracy"), N_("R²"))
_LAYOUT = dict(uirevision="keep", margin=dict(l=40, r=20, t=50, b=40), template="plotly_white")


def class_counts(classes: dict[str, int], splits: dict[str, dict[str, int]] | None = None) -> go.Figure:
    figure = go.Figure()
    names = _texts(classes)
    if splits:
        for split_name, counts in splits.items():
            figure.add_bar(name=plot_text(split_name), x=names, y=[counts.get(c, 0) for c in classes])
        figure.update_layout(barmode="stack")
    else:
        figure.add_bar(name=_("images"), x=names, y=list(classes.values()))
    figure.update_xaxes(type="category")
    return figure.update_layout(title=_("Images per class"), xaxis_title=_("class"), yaxis_title=_("images"), height=320,
                                **_LAYOUT)


def value_histogram(histogram: dict[str, list[float]]) -> go.Figure:
    """How the images' numbers spread: a model learns the range it is shown, and little beyond it."""
    edges, counts = histogram["edges"], histogram["counts"]
    centres = [(low + high) / 2 for low, high in zip(edges, edges[1:])]
    figure = go.Figure(go.Bar(x=centres, y=counts, width=[high - low for low, high in zip(edges, edges[1:])],
                              hovertemplate=_("around {value}: {count} image(s)").format(
                                  value="%{x:.3g}", count="%{y}") + "<extra></extra>"))
    return figure.update_layout(title=_("How the values spread"), xaxis_title=_("value"), yaxis_title=_("images"),
                                height=300, **_LAYOUT)


def training_curves(epochs: list[dict[str, Any]], batches: list[dict[str, Any]] | None = None,
                    score_name: str = "accuracy") -> go.Figure:
    """Loss (with per-batch loss when given) and the task's score per epoch (accuracy, exact-set accuracy, R²),
    side by side, each with its own legend under it: one legend for two charts left a reader guessing which line
    belongs where."""
    score = _(score_name)  # the task's score name, one of SCORE_NAMES (core.tasks keeps them in English)
    figure = make_subplots(rows=1, cols=2, horizontal_spacing=0.1,
                           subplot_titles=(_("Loss (lower is better)"), _("{score} (higher is better)").format(
                               score=score[:1].upper() + score[1:])))
    x = [e["epoch"] for e in epochs]
    if batches:
        figure.add_scatter(x=[_batch_position(b) for b in batches], y=[b["loss"] for b in batches],
                           name=_("batch loss"), mode="lines", line=dict(color="lightgray"), row=1, col=1)
    for key, name, colour in (("train_loss", _("train loss"), "#1f77b4"), ("val_loss", _("validation loss"), "#ff7f0e")):
        figure.add_scatter(x=x, y=[e[key] for e in epochs], name=name, mode="lines+markers",
                           line=dict(color=colour), row=1, col=1)
    for key, name, colour in (("train_accuracy", _("train {score}").format(score=score), "#1f77b4"),
                              ("val_accuracy", _("validation {score}").format(score=score), "#ff7f0e")):
        figure.add_scatter(x=x, y=[e[key] for e in epochs], name=name, mode="lines+markers",
                           line=dict(color=colour, dash="dot"), row=1, col=2, legend="legend2")
    figure.update_xaxes(title_text=_("epoch"), **_whole_epochs(x))
    if "accuracy" in score_name:  # a share; R² can fall below 0, so it keeps its own range
        figure.update_yaxes(range=[0, 1.02], tickformat=".0%", row=1, col=2)
    under = dict(orientation="h", yanchor="top", y=-0.22, xanchor="left")
    return figure.update_layout(height=420, legend=dict(under, x=0), legend2=dict(under, x=0.55), **_LAYOUT)


def _whole_epochs(x: list[float]) -> dict[str, Any]:
    """Epochs are counted: ticks on whole epochs (a 2-epoch run showed 0.5 and 1.5), at most about ten of them."""
    return dict(tick0=0, dtick=max(1, math.ceil(max(x, default=1) / 10)))


def _batch_position(batch: dict[str, Any]) -> float:
    """Place a batch within its epoch: epoch e spans (e-1, e]."""
    return batch["epoch"] - 1 + batch["batch"] / max(batch["batches"], 1)


CURVE_TITLES = {"val_accuracy": N_("validation accuracy"), "val_loss": N_("validation loss"),
                "train_loss": N_("train loss"), "train_accuracy": N_("train accuracy")}


def compare_runs(curves: dict[str, list[dict[str, Any]]], metric: str = "val_accuracy") -> go.Figure:
    figure = go.Figure()
    for name, epochs in curves.items():
        figure.add_scatter(x=[e["epoch"] for e in epochs], y=[e[metric] for e in epochs], name=plot_text(name),
                           mode="lines+markers")
    if metric.endswith("accuracy"):
        figure.update_yaxes(range=[0, 1.02], tickformat=".0%")
    title = _(CURVE_TITLES[metric]) if metric in CURVE_TITLES else metric.replace("val_", "validation ").replace("_", " ")
    figure.update_xaxes(**_whole_epochs([e["epoch"] for epochs in curves.values() for e in epochs]))
    return figure.update_layout(title=title, xaxis_title=_("epoch"), showlegend=True,
                                legend=dict(orientation="h", y=-0.25), **_LAYOUT)


def confusion(labels: list[str], matrix: list[list[int]]) -> go.Figure:
    names = _texts(labels)
    figure = go.Figure(go.Heatmap(z=matrix, x=names, y=names, colorscale="Blues", text=matrix,
                                  texttemplate="%{text}", hovertemplate=_("true {truth}, predicted {predicted}: {count}").format(
                                      truth="%{y}", predicted="%{x}", count="%{z}") + "<extra></extra>"))
    figure.update_yaxes(autorange="reversed", title_text=_("true class"), type="category")
    figure.update_xaxes(title_text=_("predicted class"), type="category")
    return figure.update_layout(title=_("Confusion matrix (rows: truth, columns: prediction)"), **_LAYOUT)


def top_k(predictions: list[dict[str, Any]]) -> go.Figure:
    """The guesses as bars on a 0-100% axis whose last tick, 100%, is always drawn (a bar of 100% beside an axis
    ending at 80% reads as a mistake); the share is written outside short bars and inside long ones."""
    labels = _texts(p["label"] for p in predictions)[::-1]
    values = [p["probability"] for p in predictions][::-1]
    figure = go.Figure(go.Bar(x=values, y=labels, orientation="h", text=[percent(v) for v in values],
                              textposition=["inside" if v > 0.8 else "outside" for v in values],
                              cliponaxis=False, hovertemplate="%{y}: %{x:.1%}<extra></extra>"))
    figure.update_xaxes(range=[0, 1.0], tickvals=[0, 0.25, 0.5, 0.75, 1.0], tickformat=".0%", automargin=True)
    figure.update_yaxes(type="category", automargin=True)
    return figure.update_layout(height=90 + 40 * len(values), margin=dict(l=10, r=30, t=10, b=30),
                                template="plotly_white")


def _texts(names: Iterable[Any]) -> list[str]:
    return [plot_text(name) for name in names]
