"""The Monitor for tags and scores: summaries of a real SQLite prediction log (rows as the service writes them,
from the tasks' own answers), a moved distribution flagged and a steady one not; and the page for a trained tag
run and a trained score run, served by the real service."""
from __future__ import annotations

import json
import shutil
import threading
import uuid
from pathlib import Path

import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient
from streamlit.testing.v1 import AppTest

from core import paths
from core.data import sample
from core.data.report import ImageRecord
from core.runs import folder as runs
from core.runs import pipeline
from core.serving import monitor
from core.serving.predlog import PredictionLog
from core.serving.service import create_app
from core.tasks.multi import MultiLabel
from core.tasks.regression import Regression
from core.training.config import TrainConfig
from core.training.events import EventLog

APP = str(Path(__file__).resolve().parent.parent / "app.py")
TAGS = ["circle", "square", "triangle"]


def logged(answers: list[dict], model: str = "run1") -> list[dict]:
    """Log rows from a task's answers, shaped as core.serving.service writes them (top_k apart, the rest in
    `answer`, the tags ';'-joined in `label`, no label for a number)."""
    rows = []
    for n, answer in enumerate(answers):
        answer = dict(answer)
        top, unsure = answer.pop("predictions")[:3], answer.pop("unsure")
        label = ";".join(answer["labels"]) if "labels" in answer else top[0]["label"] if top else None
        rows.append({"id": uuid.uuid4().hex, "time": 1000.0 + n, "model": model, "content_hash": "0" * 64,
                     "top_k": top, "answer": answer or None, "label": label,
                     "confidence": top[0]["probability"] if top else None, "unsure": unsure, "unknown": False,
                     "ood_score": None, "latency_ms": 5.0, "replica": "host:1"})
    return rows


def write_read(tmp_path: Path, rows: list[dict], feedback: dict[int, str] = {}) -> list[dict]:  # noqa: B006
    log = PredictionLog(f"sqlite:///{tmp_path / f'{uuid.uuid4().hex}.sqlite'}")
    log.write(rows)
    for position, label in feedback.items():
        assert log.add_feedback(rows[position]["id"], label) == label
    return log.rows(model="run1")


def run_folder(tmp_path: Path, task: str, labels: list[str], evaluation) -> Path:
    folder = tmp_path / "runs" / uuid.uuid4().hex
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps({"task": task}))
    (folder / "labels.json").write_text(json.dumps(labels))
    (folder / "evaluation.json").write_text(json.dumps(evaluation.to_json()))
    return folder


def tags_of(n: int) -> tuple[str, ...]:
    """Half circles, half squares, a triangle on every fifth: 50%, 50%, 20%, 1.2 tags per image."""
    return (("circle",) if n % 2 == 0 else ("square",)) + (("triangle",) if n % 5 == 0 else ())


def tag_answers(tag_sets: list[tuple[str, ...]]) -> list[dict]:
    scores = torch.tensor([[0.9 if tag in tags else 0.1 for tag in TAGS] for tags in tag_sets])
    return MultiLabel().answer(scores, TAGS, {"thresholds": [0.5] * 3}, top_k=3)


def test_tag_shares_per_image_and_feedback_from_a_real_log_flag_only_the_tags_that_moved(tmp_path):
    records = [ImageRecord(f"{n}.jpg", ";".join(tags_of(n)), None, f"{n:064x}", 8, 8, tags_of(n)) for n in range(40)]
    truth = torch.tensor([[0.9 if t in tags_of(n) else 0.1 for t in TAGS] for n in range(40)])
    evaluation = MultiLabel().evaluate(TAGS, records, truth)
    reference = monitor.run_reference(run_folder(tmp_path, "multi", TAGS, evaluation))
    assert reference.task == "tags" and reference.answers.shares == {"circle": 0.5, "square": 0.5, "triangle": 0.2}
    assert reference.answers.tags_per_image == pytest.approx(1.2)

    steady_rows = logged(tag_answers([tags_of(n) for n in range(60)]))
    steady_read = write_read(tmp_path, steady_rows)
    steady = monitor.summarize(steady_read, reference)
    assert steady == monitor.summarize(steady_rows, reference)  # the answer column survives the database
    assert not any(t["moved"] for t in steady.answers.tags)
    assert steady.answers.verdict.startswith("No tag is given clearly") and steady.answers.tags_per_image == 1.2
    [panel] = monitor.panels(steady, reference)
    assert panel.heading == "Tags given, against the training data" and not panel.notes[0].warn

    moved_rows = logged(tag_answers([("square", "triangle")] * 60))
    feedback = {0: "square;triangle", 1: "square", 2: "circle;square;triangle", 3: "square;triangle"}
    moved = monitor.summarize(write_read(tmp_path, moved_rows, feedback), reference).answers
    directions = {t["label"]: t["moved"] for t in moved.tags}
    assert directions == {"circle": "less", "square": "more", "triangle": "more"}
    assert moved.verdict.startswith("'triangle' is given much more often than in the training data: to 100% of "
                                    "the images sent, against 20% of the training images.")
    assert moved.tags_per_image == 2.0
    per_tag = {row["tag"]: row for row in moved.feedback["per_tag"]}
    assert moved.feedback["images"] == 4 and moved.feedback["exact"] == 0.5
    assert (per_tag["circle"]["right"], per_tag["circle"]["missed"]) == ("75%", 1)
    assert (per_tag["triangle"]["right"], per_tag["triangle"]["given wrongly"]) == ("75%", 1)
    [panel] = monitor.panels(monitor.summarize(moved_rows, reference), reference)
    assert panel.notes[0].warn and tuple(panel.figures[0].layout.yaxis.range) == (0, 1.05)


def value_reference(tmp_path: Path) -> monitor.Reference:
    rng = np.random.default_rng(4)
    truth = rng.normal(5.0, 1.0, 200)
    records = [ImageRecord(f"{n}.jpg", "", None, f"{n:064x}", 8, 8, value=float(v)) for n, v in enumerate(truth)]
    predicted = torch.tensor(truth + rng.normal(0.0, 0.3, 200), dtype=torch.float32).reshape(-1, 1)
    evaluation = Regression().evaluate([], records, predicted)
    return monitor.run_reference(run_folder(tmp_path, "regression", [], evaluation))


def value_answers(values: np.ndarray, half_width: float | None = 0.5) -> list[dict]:
    return Regression().answer(torch.tensor(values, dtype=torch.float32).reshape(-1, 1), [],
                               {"coverage": 0.9, "half_width": half_width}, top_k=1)


def test_served_values_against_the_validation_values_from_a_real_log(tmp_path):
    reference = value_reference(tmp_path)
    assert reference.task == "values" and len(reference.answers.values) == 200 and reference.answers.mae > 0
    rng = np.random.default_rng(5)

    steady_rows = logged(value_answers(rng.normal(5.0, 1.0, 300)))
    steady = monitor.summarize(write_read(tmp_path, steady_rows, {0: "5.5", 1: "4"}), reference).answers
    assert not steady.drift.shift and steady.drift.verdict.startswith("Stable")
    assert "Served values: median" in steady.drift.verdict and "higher" not in steady.drift.verdict
    assert steady.wide == 0.0  # a range of 1 is narrower than the middle half of the training values (about 1.35)
    expected = np.mean([abs(5.5 - steady_rows[0]["answer"]["value"]), abs(4.0 - steady_rows[1]["answer"]["value"])])
    assert steady.feedback["images"] == 2 and steady.feedback["mae"] == pytest.approx(expected)
    [panel] = monitor.panels(monitor.summarize(steady_rows, reference), reference)
    assert panel.heading == "Numbers given, against the training data" and not panel.notes[0].warn

    higher = monitor.summarize(write_read(tmp_path, logged(value_answers(rng.normal(7.2, 1.0, 300)))), reference)
    assert higher.answers.drift.shift and higher.answers.drift.psi > 0.25
    assert "Served values are higher than for the validation images" in higher.answers.drift.verdict
    [panel] = monitor.panels(higher, reference)
    assert panel.notes[0].warn and "PSI" in panel.notes[0].title
    assert [trace.name for trace in panel.figures[0].data] == ["validation images (the model's answers)", "images sent"]
    assert panel.figures[0].data[0].xbins == panel.figures[0].data[1].xbins  # one set of bins for both

    wide = logged(value_answers(rng.normal(5.0, 1.0, 10), half_width=2.0) + value_answers(rng.normal(5.0, 1.0, 10), None))
    assert monitor.summarize(wide, reference).answers.wide == 1.0  # too wide to say much, or no range at all


def _train(data: Path, task: str, tmp_path: Path) -> Path:
    config = TrainConfig(data=str(data), task=task, image_size=64, epochs=1, early_stopping=0, batch_size=16)
    run = runs.create(tmp_path / "runs", config)
    assert pipeline.execute(config, run.path, EventLog(run.metrics_file), threading.Event(), tmp_path) == "finished"
    return run.path


@pytest.fixture(scope="module")
def task_runs(tmp_path_factory) -> dict[str, tuple[Path, Path]]:
    """A trained tag run and a trained score run (tiny: 24 pictures, one epoch), with their pictures."""
    tagged = sample.write_tagged_folder(tmp_path_factory.mktemp("tagged"), 24, size=64, seed=2)
    scored = sample.write_scored_folder(tmp_path_factory.mktemp("scored"), 24, size=64, seed=3)
    return {"multi": (_train(tagged, "multi", tmp_path_factory.mktemp("tags")), tagged),
            "regression": (_train(scored, "regression", tmp_path_factory.mktemp("scores")), scored)}


def served(task_runs, task: str, truth: str | list[str]) -> tuple[str, Path, list[dict]]:
    """A workspace holding the run, whose log has 48 answers of the real service, the first with feedback."""
    trained, pictures = task_runs[task]
    key = paths.new_workspace_key()
    run_dir = paths.home() / "workspaces" / key / "runs" / trained.name
    shutil.copytree(trained, run_dir)
    files = [("file", (p.name, p.read_bytes(), "image/jpeg")) for p in sorted(pictures.glob("*.jpg"))]
    with TestClient(create_app(run_dir)) as client:
        results = client.post("/predict", files=files).json()["results"] + \
            client.post("/predict", files=files).json()["results"]
        sent = client.post("/feedback", json={"id": results[0]["id"], "label": truth})
        assert sent.status_code == 200, sent.text
    return key, run_dir, results


def monitor_page(key: str) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=120)
    at.query_params["ws"] = key
    at.switch_page("views/monitor.py")
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def metrics(at: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def test_the_monitor_of_a_tag_run_speaks_of_tags(task_runs):
    key, run_dir, results = served(task_runs, "multi", ["square", "circle"])  # the API takes the true tags
    at = monitor_page(key)
    headings = [h.value for h in at.subheader]
    assert "Tags given, against the training data" in headings and "Classes given, against the training data" not in headings
    shown = metrics(at)
    assert shown["Images answered"] == "48" and "Accuracy on feedback" not in shown
    assert shown["Tags per image"] == f"{np.mean([len(r['labels']) for r in results]):.1f}"
    given = set(results[0]["labels"])
    assert shown["All tags right on feedback"] == ("100%" if given == {"circle", "square"} else "0%")
    assert any("How often each tag is given" in chart.proto.spec for chart in at.get("plotly_chart"))
    assert any("Tag shares" in note.value for note in list(at.info) + list(at.warning))
    # The same log opened by its URL: no run to ask, the answers themselves say they are tags.
    at.radio(key="monitor_source").set_value("A prediction log database (URL)").run()
    at.text_input(key="monitor_url").set_value(f"sqlite:///serving/{run_dir.name}.sqlite").run()
    assert not at.exception and "Tags given, against the training data" in [h.value for h in at.subheader]


def test_the_monitor_of_a_score_run_speaks_of_numbers(task_runs):
    key, _, results = served(task_runs, "regression", "25.5")
    at = monitor_page(key)
    headings = [h.value for h in at.subheader]
    assert "Numbers given, against the training data" in headings
    shown = metrics(at)
    assert shown["Images answered"] == "48" and shown["Wide or no range"].endswith("%")
    assert shown["Typical error on feedback"] == f"{abs(25.5 - results[0]['value']):.3g}"
    assert shown["Median value"] == f"{np.median([r['value'] for r in results]):.3g}"
    assert any("Numbers given, against the validation images" in chart.proto.spec for chart in at.get("plotly_chart"))
    assert any(note.value.startswith("**Values") for note in list(at.info) + list(at.warning))


def test_feedback_takes_the_true_tags_of_a_tag_model_and_nothing_else():
    """A tag model's truth is a set of its tags (none is an answer too); an unknown tag or a number is refused."""
    from pydantic import ValidationError

    from core.serving import schemas

    feedback = schemas.feedback_model(["circle", "square"], "tags")
    assert feedback(id="a" * 32, label=["square", "circle"]).label == ["square", "circle"]
    assert feedback(id="a" * 32, label=[]).label == []
    for wrong in (["circle", "hexagon"], "circle", ["circle"] * 3):
        with pytest.raises(ValidationError):
            feedback(id="a" * 32, label=wrong)
