"""Class and run names reach Plotly as text, never as its HTML subset."""
from __future__ import annotations

import json

from core.insight import charts

HOSTILE = "<a href='http://evil.example'>x</a>"
SAFE = "&lt;a href='http://evil.example'&gt;x&lt;/a&gt;"


def no_raw_tag(figure) -> bool:
    return "<a href" not in json.dumps(figure.to_plotly_json()["data"])


def test_every_chart_escapes_user_names():
    figures = [charts.class_counts({HOSTILE: 3, "b": 4}), charts.class_counts({HOSTILE: 3}, {"train": {HOSTILE: 3}}),
               charts.confusion([HOSTILE, "b"], [[1, 0], [0, 1]]),
               charts.top_k([{"label": HOSTILE, "probability": 0.9}]),
               charts.compare_runs({HOSTILE: [{"epoch": 1, "val_accuracy": 0.5}]})]
    for figure in figures:
        assert no_raw_tag(figure)
        assert SAFE in json.dumps(figure.to_plotly_json()["data"], ensure_ascii=False)


def test_numeric_class_names_stay_categories():
    figure = charts.class_counts({"1": 3, "10": 4, "2": 5})
    assert figure.layout.xaxis.type == "category" and list(figure.data[0].x) == ["1", "10", "2"]
