"""Monitor computations over prediction-log rows: pure functions, checked against hand-made logs."""
from __future__ import annotations

import json

import numpy as np
import pytest

from core.serving import monitor
from core.serving.monitor_classes import ClassReference
from core.tasks import Evaluation


def row(label="cat", confidence=0.9, time=0.0, latency=10.0, unsure=False, unknown=False, ood=None, feedback=None):
    return {"label": label, "confidence": confidence, "time": time, "latency_ms": latency, "unsure": unsure,
            "unknown": unknown, "ood_score": ood, "feedback_label": feedback}


def test_psi_is_near_zero_for_the_same_distribution_and_large_for_a_shifted_one():
    rng = np.random.default_rng(0)
    reference = rng.normal(0, 1, 2000).tolist()
    assert monitor.population_stability_index(reference, rng.normal(0, 1, 2000).tolist()) < 0.05
    assert monitor.population_stability_index(reference, rng.normal(1.5, 1, 2000).tolist()) > 0.25
    with pytest.raises(ValueError):
        monitor.population_stability_index([], [1.0])


def test_drift_verdicts_in_words():
    rng = np.random.default_rng(1)
    reference = rng.uniform(0.8, 1.0, 500).tolist()
    stable = monitor.drift(reference, rng.uniform(0.8, 1.0, 300).tolist(), "confidence")
    assert stable.psi is not None and stable.psi < 0.1 and stable.verdict.startswith("Stable")
    shifted = monitor.drift(reference, rng.uniform(0.3, 0.6, 300).tolist(), "confidence")
    assert shifted.psi > 0.25 and "large shift" in shifted.verdict
    assert monitor.drift(reference, [0.9] * 5, "confidence").psi is None  # too few served answers
    assert "No validation" in monitor.drift([], [0.9] * 100, "confidence").verdict


def test_latency_trust_shares_and_feedback_accuracy():
    rows = [row(latency=float(v)) for v in range(1, 101)]
    rows[0] |= {"unsure": True, "feedback_label": "cat"}
    rows[1] |= {"unknown": True, "unsure": True, "feedback_label": "dog"}
    latency = monitor.latency_percentiles(rows)
    assert latency["p50"] == pytest.approx(50.5) and latency["p95"] == pytest.approx(95.05)
    assert monitor.trust_shares(rows) == {"unsure": 0.02, "unknown": 0.01}
    assert monitor.feedback_accuracy(rows) == {"images": 2, "correct": 1, "accuracy": 0.5}
    assert monitor.latency_percentiles([]) == {"p50": None, "p95": None}
    assert monitor.feedback_accuracy([])["accuracy"] is None


def test_class_distribution_against_training_and_requests_over_time():
    rows = [row("cat")] * 3 + [row("dog")] + [row("zebra")]
    shares = {c["label"]: c for c in monitor.class_distribution(rows, {"cat": 5, "dog": 5})}
    assert list(shares) == ["cat", "dog", "zebra"]
    assert shares["cat"]["served"] == pytest.approx(0.6) and shares["cat"]["training"] == 0.5
    assert shares["zebra"]["training"] == 0.0
    timeline = monitor.requests_over_time([row(time=t) for t in (0, 0, 5, 10)], buckets=2)
    assert timeline == [(0.0, 2), (5.0, 2)]
    assert monitor.requests_over_time([]) == []


def test_run_reference_reads_the_evaluation(tmp_path):
    evaluation = Evaluation("single", ["cat", "dog"], 2, {"accuracy": 1.0, "macro_f1": 1.0},
                            per_label=[{"label": "cat", "support": 4}, {"label": "dog", "support": 2}],
                            predictions=[{"confidence": 0.9}, {"confidence": 0.7}],
                            trust={"ood": {"validation_scores": [1.5]}})
    (tmp_path / "evaluation.json").write_text(json.dumps(evaluation.to_json()))
    reference = monitor.run_reference(tmp_path)
    assert reference.task == "classes" and reference.answers.training_counts == {"cat": 4, "dog": 2}
    assert reference.answers.confidences == [0.9, 0.7] and reference.ood_scores == [1.5]
    summary = monitor.summarize([row("cat", 0.9)] * 40, reference)
    assert summary.images == 40 and summary.answers.confidence_drift.psi is None  # 2 validation images: nothing to judge


def test_the_figures_and_drift_read_from_a_real_log_equal_those_of_the_rows_written(log_url):
    """SQLite and PostgreSQL give back the same figures: types (bool, float, JSON) and order survive the database."""
    import uuid

    from core.serving.predlog import PredictionLog

    rng = np.random.default_rng(2)
    written = [row(label=("cat", "dog")[i % 2], confidence=float(c), time=1000.0 + i, latency=float(5 + i % 7),
                   unsure=bool(c < 0.5), unknown=i % 10 == 0, ood=float(o), feedback=("cat" if i % 3 == 0 else None))
               | {"id": uuid.uuid4().hex, "model": "run1", "content_hash": "0" * 64, "top_k": [{"label": "cat",
                                                                                                "probability": float(c)}],
                  "replica": f"host:{100 + i % 3}"}
               for i, (c, o) in enumerate(zip(rng.uniform(0.3, 1.0, 60), rng.uniform(0.0, 0.5, 60)))]
    log = PredictionLog(log_url)
    log.write(written)
    read = log.rows(model="run1")
    assert [r["id"] for r in read] == [r["id"] for r in written]
    reference = monitor.Reference("classes", ClassReference({"cat": 5, "dog": 5}, rng.uniform(0.3, 1.0, 200).tolist()),
                                  rng.uniform(0.0, 0.5, 200).tolist())
    assert monitor.summarize(read, reference) == monitor.summarize(written, reference)
    summary = monitor.summarize(read, reference)
    assert summary.answers.confidence_drift.psi is not None and summary.answers.feedback["images"] == 20
    assert summary.replicas == [{"replica": "host:100", "images": 20}, {"replica": "host:101", "images": 20},
                                {"replica": "host:102", "images": 20}]
    assert log.rows(model="run1", since=1050.0) == read[50:]
