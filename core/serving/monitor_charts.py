"""Plotly figures for the Monitor page (pure: numbers in, go.Figure out), worded in the reader's language. Class
names go through plot_text."""
from __future__ import annotations

import datetime as dt
from typing import Any

import plotly.graph_objects as go

from core.i18n import N_, _, language
from core.text import plot_text

_LAYOUT = {"height": 300, "margin": {"l": 10, "r": 10, "t": 40, "b": 10}}
# (seconds, name, tick format): the coarsest unit that still gives the period a few bars; never finer than a minute
_UNITS = ((60, "minute", "%H:%M"), (3600, "hour", "%d %b %H:00"), (86400, "day", "%d %b"))
# The chart's title per unit, and its tick formats in Chinese (month and day as numbers: 12月2日)
_TITLES = {"minute": N_("Images answered per minute"), "hour": N_("Images answered per hour"),
           "day": N_("Images answered per day")}
_CHINESE_TICKS = {"%H:%M": "%H:%M", "%d %b %H:00": "%-m月%-d日 %H:00", "%d %b": "%-m月%-d日"}
_MAX_BARS = 60
_JUST_BELOW_1 = 1.0 - 1e-9


def time_unit(span_s: float) -> tuple[int, str, str]:
    """A bar per minute for up to an hour of traffic, per hour up to two days, then per day."""
    for seconds, name, ticks in _UNITS:
        if span_s / seconds <= _MAX_BARS:
            return seconds, name, ticks
    return _UNITS[-1]


def per_unit(timeline: list[tuple[float, int]]) -> tuple[list[tuple[float, int]], tuple[int, str, str]]:
    """The monitor's evenly spaced buckets re-counted per whole minute, hour or day (a bucket counts where it
    starts): three requests a few milliseconds apart are one bar 'this minute', not ticks in milliseconds."""
    nonempty = [(start, count) for start, count in timeline if count]
    if not nonempty:
        return [], _UNITS[0]
    unit = time_unit(nonempty[-1][0] - nonempty[0][0])
    seconds = unit[0]
    counts: dict[float, int] = {}
    for start, count in nonempty:
        unit_start = start - start % seconds
        counts[unit_start] = counts.get(unit_start, 0) + count
    return sorted(counts.items()), unit


def requests_over_time(timeline: list[tuple[float, int]]) -> go.Figure:
    bars, (seconds, unit, ticks) = per_unit(timeline)
    if language() == "zh_CN":
        ticks = _CHINESE_TICKS[ticks]
    times = [dt.datetime.fromtimestamp(start) for start, _count in bars]
    # Translators: the hover text of a bar of the Monitor's traffic chart; keep %{x|...} and %{y} as they are.
    hover = _("{time}<br>{count} images").format(time=f"%{{x|{ticks}}}", count="%{y}")
    figure = go.Figure(go.Bar(x=times, y=[count for _start, count in bars], marker_color="#4c78a8",
                              width=[seconds * 1000 * 0.9] * len(bars), offset=0,
                              hovertemplate=f"{hover}<extra></extra>"))
    figure.update_xaxes(tickformat=ticks, dtick=seconds * 1000 if len(bars) <= 12 else None)
    figure.update_yaxes(rangemode="tozero", tickformat="d")
    return figure.update_layout(title=_(_TITLES[unit]), yaxis_title=_("images"), **_LAYOUT)


def class_distribution(classes: list[dict[str, Any]]) -> go.Figure:
    labels = [plot_text(c["label"]) for c in classes]
    figure = go.Figure([
        go.Bar(name=_("training data"), x=labels, y=[c["training"] for c in classes], marker_color="#bab0ac"),
        go.Bar(name=_("answers given"), x=labels, y=[c["served"] for c in classes], marker_color="#4c78a8"),
    ])
    return figure.update_layout(title=_("Predicted classes against the training data"), barmode="group",
                                yaxis_tickformat=".0%", **_LAYOUT)


def compared_histogram(reference: list[float], served: list[float], title: str, axis: str) -> go.Figure:
    """Two normalised histograms over one axis: validation images against served images. Values that are all
    shares (confidences) stay on 0 to 1 in bins of 0.05: automatic bins reached past 1, to 'confidence 1.1'."""
    values = [*reference, *served]
    shares = bool(values) and all(0.0 <= v <= 1.0 for v in values)
    bins = dict(start=0.0, end=1.0, size=0.05) if shares else None
    if shares:  # a confidence of exactly 1 belongs in the last bin (95-100%), not in a bin of its own past the end
        reference, served = [min(v, _JUST_BELOW_1) for v in reference], [min(v, _JUST_BELOW_1) for v in served]
    figure = go.Figure([
        go.Histogram(name=_("validation images"), x=reference, histnorm="percent", opacity=0.6,
                     marker_color="#bab0ac", xbins=bins),
        go.Histogram(name=_("served images"), x=served, histnorm="percent", opacity=0.6, marker_color="#4c78a8",
                     xbins=bins),
    ])
    if shares:
        figure.update_xaxes(range=[0, 1])
    return figure.update_layout(title=title, barmode="overlay", xaxis_title=axis, yaxis_title=_("% of images"),
                                **_LAYOUT)


def tag_shares(tags: list[dict[str, Any]]) -> go.Figure:
    """Per tag: the share of images sent that were given it, against the share of training images that carry
    it. The axis runs to 100% (each bar is its own share of all images: they do not add up to 100%)."""
    labels = [plot_text(t["label"]) for t in tags]
    moved = [_("much more often") if t["moved"] == "more" else _("much less often") if t["moved"] == "less" else ""
             for t in tags]
    # Translators: hover texts of the tag chart; keep %{x}, %{y:.0%} and %{customdata} as they are.
    on_training = _("{tag}: on {share} of the training images").format(tag="%{x}", share="%{y:.0%}")
    on_sent = _("{tag}: given to {share} of the images sent {moved}").format(tag="%{x}", share="%{y:.0%}",
                                                                              moved="%{customdata}")
    figure = go.Figure([
        go.Bar(name=_("training images"), x=labels, y=[t["training"] for t in tags], marker_color="#bab0ac",
               hovertemplate=f"{on_training}<extra></extra>"),
        go.Bar(name=_("images sent"), x=labels, y=[t["served"] for t in tags], customdata=moved,
               marker_color=["#e45756" if m else "#4c78a8" for m in moved],
               hovertemplate=f"{on_sent}<extra></extra>"),
    ])
    figure.update_yaxes(range=[0, 1.05], tickvals=[0, 0.25, 0.5, 0.75, 1.0], tickformat=".0%",
                        title_text=_("share of images"))
    return figure.update_layout(title=_("How often each tag is given, against the training images"),
                                barmode="group", **_LAYOUT)


def values_histogram(reference: list[float], served: list[float]) -> go.Figure:
    """The numbers given to the images sent over the model's numbers for the validation images, on shared bins
    (each histogram choosing its own would make the two look different when they are not), about the square
    root of the count of them (5 to 30): eight validation images in twenty bins would be a comb."""
    values = [*reference, *served]
    bins = max(5, min(30, round(len(values) ** 0.5)))
    low, high = min(values), max(values)
    size = (high - low) / bins if high > low else 1.0
    shared = dict(start=low, end=high + size * 1e-6, size=size)
    figure = go.Figure([
        go.Histogram(name=_("validation images (the model's answers)"), x=reference, histnorm="percent",
                     opacity=0.6, marker_color="#bab0ac", xbins=shared),
        go.Histogram(name=_("images sent"), x=served, histnorm="percent", opacity=0.6, marker_color="#4c78a8",
                     xbins=shared),
    ])
    figure.update_yaxes(rangemode="tozero")
    return figure.update_layout(title=_("Numbers given, against the validation images"), barmode="overlay",
                                xaxis_title=_("predicted value"), yaxis_title=_("% of images"), **_LAYOUT)
