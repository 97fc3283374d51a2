"""The label audit for tags and values: planted mistakes rank on top with a reason a newcomer reads, and the
corrections land in the dataset's own metadata file (on synthetic features and tiny images: no backbone)."""
from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest

from core import tasks
from core.data import sample
from core.data.datasets import inspect_data
from core.data.report import ImageRecord
from core.insight.audit import AuditImpossible, audit_features
from core.insight.audit_corrections import corrected_copy, corrected_metadata_zip
from core.insight.audit_tasks import AUDITS

TAGS = ["cloudy", "rain", "sunny"]


def _records(n: int, labels=None, values=None) -> list[ImageRecord]:
    return [ImageRecord(f"img_{i:03d}.jpg", ";".join(labels[i]) if labels else "", None, f"{i:064x}", 8, 8,
                        tuple(labels[i]) if labels else (), None if values is None else float(values[i]))
            for i in range(n)]


def _separable(n: int, k: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(multi-hot truth (n, k), features where each tag adds its own direction)."""
    rng = np.random.default_rng(seed)
    truth = (rng.random((n, k)) < 0.4).astype(int)
    features = truth @ (4.0 * rng.normal(size=(k, 16))) + rng.normal(size=(n, 16))
    return truth, features.astype(np.float32)


def test_every_task_of_the_registry_has_an_audit():
    assert set(AUDITS) == set(tasks.NAMES)


def test_wrong_tags_rank_on_top_and_the_reason_names_them():
    truth, features = _separable(90, len(TAGS), seed=0)
    given = truth.copy()
    planted = {5: 0, 21: 1, 38: 2, 52: 0, 77: 1}  # image -> the tag flipped on it (added or dropped)
    for i, k in planted.items():
        given[i, k] ^= 1
    records = _records(90, [[TAGS[k] for k in np.flatnonzero(row)] for row in given])

    result = audit_features(features, records, TAGS, folds=5, seed=0, task="multi")

    top = result.ranking()[:len(planted) + 2]
    assert set(planted) <= set(top), (top, planted)
    assert set(result.flagged[:len(planted)]) <= set(planted)
    for i, k in planted.items():
        tag, verb = TAGS[k], "adds" if truth[i, k] else "doubts"
        assert f"{verb} '{tag}'" in result.reason(i), result.reason(i)
        assert result.reason(i).startswith("A model that never saw this image")
        assert result.suggested(i) == [TAGS[j] for j in np.flatnonzero(truth[i])]
    entry = next(e for e in result.to_json()["label_issues"] if e["path"] == records[5].path)
    assert entry["add" if truth[5, 0] else "remove"] == ["cloudy"]


def test_a_tag_on_one_image_is_not_judged_and_one_usable_tag_is_refused():
    truth, features = _separable(40, 2, seed=1)
    two = ["cloudy", "sunny"]
    tags = [[two[k] for k in np.flatnonzero(row)] + (["rain"] if i == 3 else []) for i, row in enumerate(truth)]

    result = audit_features(features, _records(40, tags), TAGS, folds=5, seed=0, task="multi")

    assert "'rain' is on only one of the images checked, so the audit cannot judge it." in result.notes
    assert 3 not in result.flagged or "'rain'" not in result.reason(3)
    with pytest.raises(AuditImpossible, match="at least two tags"):
        audit_features(features, _records(40, [["cloudy"] if row[0] else [] for row in truth]), ["cloudy"],
                       folds=5, task="multi")


def test_outlying_values_rank_on_top_and_the_reason_gives_both_numbers():
    rng = np.random.default_rng(2)
    features = rng.normal(size=(80, 12)).astype(np.float32)
    values = 5.0 + features[:, :3] @ np.array([1.5, -1.0, 0.8]) + 0.1 * rng.normal(size=80)
    planted = [4, 30, 61]
    given = values.copy()
    given[planted] += np.array([9.0, -8.0, 10.0])

    result = audit_features(features, _records(80, values=given), [], folds=5, seed=0, task="regression")

    assert set(result.ranking()[:len(planted)]) == set(planted)
    assert set(planted) <= set(result.flagged) and len(result.flagged) <= 2 * len(planted)
    i = planted[0]
    assert result.reason(i) == (f"Given {given[i]:.1f}, a model that never saw this image predicts "
                                f"{result.predictions[i]:.1f}.")
    assert abs(result.suggested(i) - values[i]) < 1.5  # the suggestion is near the true value
    with pytest.raises(AuditImpossible, match="same value"):
        audit_features(features, _records(80, values=np.ones(80)), [], folds=5, task="regression")


def test_corrected_copy_rewrites_the_tags_in_metadata_csv_and_leaves_the_original(tmp_path):
    folder = sample.write_tagged_folder(tmp_path / "tagged", 6, size=32, seed=1)
    original = (folder / "metadata.csv").read_text(encoding="utf-8")
    report = inspect_data(folder, tmp_path / "work")
    first, second = sorted(r.path for r in report.images)[:2]
    marks = {first: {"action": "relabel", "labels": ["triangle", "circle"]}, second: {"action": "remove"}}

    copy = corrected_copy(report, marks, tmp_path / "ws" / "corrected")

    again = inspect_data(copy, tmp_path / "work")
    tags = {r.path: r.labels for r in again.images}
    assert again.task == "multi" and len(again.images) == 5 and second not in tags
    assert tags[first] == ("circle", "triangle")
    assert all(tags[r.path] == r.labels for r in report.images if r.path not in (first, second))
    assert (folder / "metadata.csv").read_text(encoding="utf-8") == original and (folder / second).exists()


def test_corrected_zip_of_values_in_metadata_jsonl(tmp_path):
    folder = sample.write_scored_folder(tmp_path / "scored", 5, size=32, seed=1)
    rows = [dict(zip(("file_name", "value"), line.split(","))) for line in
            (folder / "metadata.csv").read_text().splitlines()[1:]]
    (folder / "metadata.csv").unlink()
    (folder / "metadata.jsonl").write_text("".join(json.dumps({"file_name": r["file_name"], "value": float(
        r["value"]), "note": "kept"}) + "\n" for r in rows), encoding="utf-8")
    report = inspect_data(folder, tmp_path / "work")
    name = rows[0]["file_name"]

    archive = corrected_metadata_zip(report, {name: {"action": "relabel", "value": 3.25}}, tmp_path / "fixed.zip")

    again = inspect_data(archive, tmp_path / "work")
    assert again.task == "regression" and len(again.images) == 5
    assert {r.path: r.value for r in again.images}[name] == 3.25
    first = json.loads(zipfile.ZipFile(archive).read("metadata.jsonl").decode().splitlines()[0])
    assert first == {"file_name": name, "value": 3.25, "note": "kept"}
