"""Each task turns raw outputs into the answers a user reads, trains with its own loss, and judges itself honestly.
On arrays and tiny tensors: no training needed to check the arithmetic."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from core import tasks
from core.data.report import ImageRecord


def _tagged(tags: list[tuple[str, ...]]) -> list[ImageRecord]:
    return [ImageRecord(f"{i}.jpg", ";".join(t), None, f"{i:064d}", 9, 9, labels=t) for i, t in enumerate(tags)]


def _scored(values: list[float]) -> list[ImageRecord]:
    return [ImageRecord(f"{i}.jpg", "", None, f"{i:064d}", 9, 9, value=v) for i, v in enumerate(values)]


def test_every_task_is_an_entry_with_the_whole_contract():
    for name, task in tasks.TASKS.items():
        assert task.name == name and task.title and task.score_name
        assert tasks.get(name) is task


def test_multi_label_weights_rare_labels_and_answers_with_every_label_above_its_threshold():
    task, labels = tasks.get("multi"), ["cat", "dog", "hat"]
    records = _tagged([("cat",), ("cat", "hat"), ("dog",), ("cat",), ()])
    targets = task.targets(records, labels)
    assert targets.tolist() == [[1, 0, 0], [1, 0, 1], [0, 1, 0], [1, 0, 0], [0, 0, 0]]
    weight = task.criterion(targets).pos_weight
    assert weight[2] > weight[0]  # 'hat' is on one image of five, 'cat' on three
    answers = torch.tensor([[0.9, 0.2, 0.7], [0.1, 0.55, 0.05]])
    given = task.answer(answers, labels, {"thresholds": [0.5, 0.6, 0.5]}, top_k=3)
    assert given[0]["labels"] == ["cat", "hat"] and given[1]["labels"] == []  # 0.55 < dog's 0.6
    assert given[1]["unsure"] and not given[0]["unsure"]  # 0.55 is within 0.1 of 0.6


def test_multi_label_metrics_are_cross_fitted_and_have_intervals():
    rng = np.random.default_rng(0)
    labels = ["a", "b"]
    tags = [tuple(label for label in labels if rng.random() < 0.4) for _ in range(80)]
    records = _tagged(tags)
    truth = tasks.get("multi").targets(records, labels).numpy()
    noisy = np.clip(truth * 0.7 + rng.normal(0.15, 0.15, truth.shape), 0, 1)
    evaluation = tasks.get("multi").evaluate(labels, records, torch.from_numpy(noisy).float())
    assert set(evaluation.metrics) == {"micro_f1", "macro_f1", "map", "exact_match"}
    low, high = evaluation.intervals["micro_f1"]
    assert low <= evaluation.metrics["micro_f1"] <= high
    assert evaluation.per_label[0]["label"] == "a" and len(evaluation.confusion) == 2
    assert sum(map(sum, evaluation.confusion[0])) == 80


def test_regression_learns_the_standardised_value_and_answers_in_the_users_units():
    task = tasks.get("regression")
    model = nn.Sequential(nn.Identity())
    model.head = nn.Sequential(nn.Linear(4, 1))
    task.adapt_head(model)
    values = torch.tensor([100.0, 200.0, 300.0])
    task.prepare_head(model.head[-1], values)
    with torch.no_grad():
        model.head[-1].weight.zero_()
        model.head[-1].bias.zero_()
    assert model.head(torch.zeros(2, 4)).flatten().tolist() == [200.0, 200.0]  # starts at the training mean
    loss = task.criterion(values)(torch.tensor([[300.0]]), torch.tensor([200.0]))
    assert loss.item() == pytest.approx(0.5, abs=0.01)  # one standard deviation off: the same loss in any unit
    assert "mean" in model.head[-1].state_dict()  # the scale travels with the weights


def test_regression_intervals_cover_held_out_values_and_its_metrics_have_intervals():
    rng = np.random.default_rng(1)
    task, covered = tasks.get("regression"), []
    for _ in range(40):  # the promise is on average over validation sets like a user's (here 100 images)
        truth = rng.normal(5, 2, 200)
        predicted = truth + rng.normal(0, 0.5, 200)
        trust = task.calibrate(predicted[:100].reshape(-1, 1), truth[:100])
        answers = task.answer(torch.from_numpy(predicted[100:]).reshape(-1, 1), [], trust["predict"], 1)
        covered.append(np.mean([a["interval"][0] <= t <= a["interval"][1] for a, t in zip(answers, truth[100:])]))
    assert 0.87 <= np.mean(covered) <= 0.94 and answers[0]["coverage"] == 0.9
    assert 0.8 <= trust["report"]["conformal"]["measured_coverage"] <= 1.0
    evaluation = task.evaluate([], _scored(truth[100:].tolist()), torch.from_numpy(predicted[100:]).reshape(-1, 1))
    assert evaluation.metrics["mae"] == pytest.approx(np.abs(truth[100:] - predicted[100:]).mean(), rel=1e-4)
    assert evaluation.intervals["r2"][0] <= evaluation.metrics["r2"] <= evaluation.intervals["r2"][1]
    assert evaluation.mistakes()[0]["error"] == max(p["error"] for p in evaluation.predictions)


def test_single_label_answers_carry_a_prediction_set_with_its_coverage():
    rng = np.random.default_rng(2)
    logits = rng.normal(0, 2, (300, 3))
    probabilities = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    targets = np.array([rng.choice(3, p=p) for p in probabilities])
    task = tasks.get("single")
    trust = task.calibrate(probabilities, targets)
    assert trust["report"]["conformal"]["coverage"] == 0.9
    assert 0.85 <= trust["report"]["conformal"]["measured_coverage"] <= 0.95
    (answer,) = task.answer(torch.tensor([[0.45, 0.44, 0.11]]), ["rose", "tulip", "daisy"], trust["predict"], 3)
    assert {"rose", "tulip"} <= set(answer["set"]) and answer["set_coverage"] == 0.9


def test_no_page_compares_a_task_name_to_a_literal():
    """What a page offers for a task is a capability of its registry entry (core/tasks), so adding a task touches
    only the registry: no `task.name == "single"` (nor `in ("multi", ...)`) under views/ or ui/."""
    import ast
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    found = []
    for path in sorted([*root.glob("views/*.py"), *root.glob("ui/*.py")]):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.Compare):
                continue
            operands = [node.left, *node.comparators]
            literals = [o for side in operands for o in (side.elts if isinstance(side, (ast.Tuple, ast.List,
                                                                                     ast.Set)) else [side])]
            if any(isinstance(o, ast.Constant) and o.value in tasks.NAMES for o in literals):
                found.append(f"{path.relative_to(root)}:{node.lineno}")
    assert not found, f"ask the Task entry instead: {found}"
