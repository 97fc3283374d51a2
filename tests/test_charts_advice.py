"""Chart builders and the advice a newcomer sees next to the freeze-depth slider."""
from __future__ import annotations

import pytest

from core.insight import charts
from core.models import backbones
from core.training import advice

EPOCHS = [{"epoch": e, "train_loss": 1 / e, "val_loss": 1.2 / e, "train_accuracy": 0.5 + e / 10,
           "val_accuracy": 0.4 + e / 10} for e in (1, 2, 3)]


def test_training_curves_show_every_epoch_and_keep_the_users_zoom():
    figure = charts.training_curves(EPOCHS, [{"epoch": 1, "batch": 2, "batches": 4, "loss": 0.9}])
    traces = {trace.name: trace for trace in figure.data}
    assert list(traces["validation accuracy"].y) == pytest.approx([0.5, 0.6, 0.7])
    assert list(traces["batch loss"].x) == [0.5]  # batch 2 of 4 sits half-way through epoch 1
    assert figure.layout.uirevision == "keep"  # Plotly keeps zoom across refreshes with a constant uirevision
    # epochs are counted: whole-epoch ticks (a 2-epoch run showed 0.5 and 1.5), about ten at most on long runs
    assert (figure.layout.xaxis.dtick, figure.layout.xaxis2.dtick) == (1, 1)
    long_run = [dict(EPOCHS[0], epoch=e) for e in range(1, 51)]
    assert charts.training_curves(long_run).layout.xaxis.dtick == 5


def test_class_counts_stack_splits_and_confusion_labels_axes():
    figure = charts.class_counts({"a": 5, "b": 3}, {"train": {"a": 4, "b": 2}, "val": {"a": 1, "b": 1}})
    assert [list(bar.y) for bar in figure.data] == [[4, 2], [1, 1]] and figure.layout.barmode == "stack"
    heat = charts.confusion(["a", "b"], [[3, 1], [0, 2]])
    assert list(heat.data[0].x) == ["a", "b"] and heat.data[0].z[0][1] == 1


def test_trainable_parameter_count_matches_the_real_model():
    model = backbones.build("mobilenet_v3_small", num_outputs=5, pretrained=False)
    for depth in (0, 6, len(model.stages)):
        expected = sum(p.numel() for s in [*model.stages[depth:], model.head] for p in s.parameters())
        assert advice.trainable_parameters("mobilenet_v3_small", depth, 5) == (
            expected, sum(p.numel() for p in model.parameters()))


def test_less_data_is_advised_to_freeze_more():
    depths = [advice.recommend_freeze(n, 9)[0] for n in (50, 1000, 5000, 50000)]
    assert depths == sorted(depths, reverse=True) and depths[0] == 9 and depths[-1] == 0
    assert "50 images" in advice.recommend_freeze(50, 9)[1]
    assert advice.freeze_label("resnet18", 0).endswith("fine-tune everything")
    assert "layer2" in advice.freeze_label("resnet18", 3) and "retrain the last 2 stages" in advice.freeze_label("resnet18", 3)


def test_run_comparison_has_one_line_per_run_on_a_fixed_accuracy_scale():
    figure = charts.compare_runs({"run a": EPOCHS, "run b": EPOCHS[:2]}, "val_accuracy")
    assert [trace.name for trace in figure.data] == ["run a", "run b"] and len(figure.data[1].x) == 2
    assert tuple(figure.layout.yaxis.range) == (0, 1.02)


def test_small_data_is_recommended_the_backbone_that_measured_better_on_it():
    small, why = advice.recommend_backbone(25)
    assert small == "efficientnet_lite2" and "twice the computing time" in why
    assert advice.recommend_backbone(400)[0] == "efficientnet_lite0"
