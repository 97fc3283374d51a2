"""What the charts say to a newcomer: axes that reach 100%, a legend per chart, points that say how many images they
stand for, a clickable confusion matrix, sensible time units, settings and depths in words."""
from __future__ import annotations

import time

import pytest

from core.insight import charts, trust_charts
from core.serving import monitor_charts
from core.serving.model_card import settings_in_words
from core.training import advice
from core.training.config import TrainConfig

EPOCHS = [{"epoch": e, "train_loss": 1 / e, "val_loss": 1.2 / e, "train_accuracy": 0.5 + e / 10,
           "val_accuracy": 0.4 + e / 10} for e in (1, 2, 3)]


def test_the_guesses_axis_ends_with_a_100_percent_tick():
    figure = charts.top_k([{"label": "dandelion", "probability": 1.0}, {"label": "rose", "probability": 0.0}])
    axis = figure.layout.xaxis
    assert tuple(axis.range) == (0, 1.0) and list(axis.tickvals)[-1] == 1.0 and axis.tickformat == ".0%"
    assert figure.data[0].cliponaxis is False  # the "100%" written at a full bar is not cut off


def test_each_training_chart_has_its_own_legend_under_it():
    figure = charts.training_curves(EPOCHS, [{"epoch": 1, "batch": 2, "batches": 4, "loss": 0.9}])
    legend_of = {trace.name: trace.legend or "legend" for trace in figure.data}
    assert {legend_of[n] for n in ("batch loss", "train loss", "validation loss")} == {"legend"}
    assert {legend_of[n] for n in ("train accuracy", "validation accuracy")} == {"legend2"}
    left, right = figure.layout.legend, figure.layout.legend2
    assert left.x < figure.layout.xaxis.domain[1] <= figure.layout.xaxis2.domain[0] <= right.x
    assert left.y < 0 and right.y < 0  # under the charts, not between them


def test_reliability_points_say_their_image_counts_and_single_images_stand_apart():
    bins = [{"confidence": 0.35, "accuracy": 1.0, "count": 1}, {"confidence": 0.65, "accuracy": 0.6, "count": 10},
            {"confidence": 0.95, "accuracy": 0.93, "count": 40}]
    figure = trust_charts.reliability(bins, bins)
    lines = [t for t in figure.data if t.name in ("before calibration", "after")]
    assert all(list(t.x) == [0.65, 0.95] and list(t.text) == ["10", "40"] for t in lines)
    few = [t for t in figure.data if "too few" in (t.name or "")]
    assert len(few) == 1 and list(few[0].customdata) == [1, 1] and "lines" not in few[0].mode


def test_confusion_cells_are_selectable_and_map_back_to_their_classes():
    names = ["<b>rose</b>", "tulip"]
    figure = trust_charts.confusion(names, [[3, 1], [0, 2]])
    heatmap, cells = figure.data
    assert heatmap.type == "heatmap" and heatmap.hoverinfo == "skip"  # the pointer goes to the cell markers
    assert cells.type == "scatter" and len(cells.x) == 4 and figure.layout.hoverdistance == -1
    clicked = {"selection": {"points": [{"x": cells.x[1], "y": cells.y[1], "customdata": list(cells.customdata[1])}]}}
    assert trust_charts.selected_cell(names, clicked) == ("<b>rose</b>", "tulip")
    assert trust_charts.selected_cell(names, {"selection": {"points": []}}) is None
    assert trust_charts.selected_cell(names, {"selection": {"points": [{"customdata": [5, 0]}]}}) is None


def test_three_requests_a_few_milliseconds_apart_are_one_bar_per_minute():
    start = time.time()
    timeline = [(start, 1), (start + 0.001, 1), (start + 0.002, 1), (start + 0.003, 0)]
    figure = monitor_charts.requests_over_time(timeline)
    assert list(figure.data[0].y) == [3] and "per minute" in figure.layout.title.text
    assert figure.data[0].width[0] == pytest.approx(60_000 * 0.9) and figure.layout.xaxis.tickformat == "%H:%M"
    day = [(start + hour * 3600, 2) for hour in range(30)]
    assert "per hour" in monitor_charts.requests_over_time(day).layout.title.text


def test_confidence_histograms_stay_between_0_and_1():
    figure = monitor_charts.compared_histogram([0.9, 1.0, 1.0, 0.97], [1.0, 0.6], "Confidence", "top probability")
    assert tuple(figure.layout.xaxis.range) == (0, 1)
    assert all(trace.xbins.end == 1.0 and max(trace.x) < 1.0 for trace in figure.data)  # 1.0 in the last bin
    distances = monitor_charts.compared_histogram([0.5, 1.7], [2.4], "Distance", "distance")
    assert distances.layout.xaxis.range is None


def test_freeze_depths_in_words():
    total = len(advice.stage_table("resnet18").names)
    words = [advice.freeze_words("resnet18", d) for d in (total, "all", total - 1, total - 2, 0)]
    assert words == ["only the new last layer", "only the new last layer", "the last stage", "the last two stages",
                     "everything"]


def test_model_card_settings_are_words_not_a_config_dump():
    config = TrainConfig(data="/srv/x/materialized/v000003", data_name="Flowers (version 3)",
                         dataset_version="ab12@3").to_dict()
    rows = dict(settings_in_words(config))
    assert rows["learning rate"] == "chosen automatically" and rows["what was retrained"] == "only the new last layer"
    assert rows["data"] == "Flowers (version 3)" and rows["pretrained network (backbone)"] == "EfficientNet-Lite0"
    shown = " ".join(" ".join(row) for row in settings_in_words(config))
    assert "None" not in shown and "ab12@3" not in shown and "/srv" not in shown and "freeze_depth" not in shown
