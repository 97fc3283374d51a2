"""The export's README lists class names as data: one line each, whatever characters they hold."""
from __future__ import annotations

from types import SimpleNamespace

from core.data.preprocessing import Preprocessing
from core.serving.export import USAGE, _usage


def test_class_names_with_line_breaks_and_invisible_characters_keep_the_readme_intact():
    labels = ["cat", "line\nbreak", "ca\u200bt", "rtl\u202eevil", "café", 'quote"d']
    predictor = SimpleNamespace(labels=labels, config=SimpleNamespace(backbone="efficientnet_lite0"),
                                preprocessing=Preprocessing(256, 224, (0.5,) * 3, (0.5,) * 3, "bicubic"))
    text = _usage(predictor, onnx_included=False)
    assert len(text.splitlines()) == len(USAGE.format(labels="x", backbone="b", resize=1, crop=1, mean=[], std=[], n=1,
                                                      onnx="").splitlines())
    classes_line = next(line for line in text.splitlines() if line.startswith("Classes"))
    assert classes_line.endswith('"cat", "line\\nbreak", "ca\\u200bt", "rtl\\u202eevil", "café", "quote\\"d"')


def test_the_readme_is_written_in_the_language_the_user_exported_in():
    from core import i18n

    predictor = SimpleNamespace(labels=["向日葵", "rose"], config=SimpleNamespace(backbone="efficientnet_lite0"),
                                preprocessing=Preprocessing(256, 224, (0.5,) * 3, (0.5,) * 3, "bicubic"))
    english = _usage(predictor, onnx_included=True)
    with i18n.using("zh_CN"):
        chinese = _usage(predictor, onnx_included=True)
    assert english.startswith("TransferLab model export") and chinese.startswith("TransferLab 导出的模型")
    assert len(chinese.splitlines()) == len(english.splitlines())  # the same layout, one class line
    assert next(line for line in chinese.splitlines() if line.startswith("类别")).endswith('"向日葵", "rose"')
    assert "python predict.py photo.jpg" in chinese and "ONNX：model.onnx" in chinese
