"""Kept images of a service into the labelling pool: a real SQLite log, real kept PNG/JPEG files, a real store."""
from __future__ import annotations

import hashlib
import io
import json
import time
import uuid

from PIL import Image

from core.data.checkout import materialize
from core.data.intake import import_labelled
from core.data.store import DatasetStore, Edit
from core.serving.keep import ImageKeeper, kept_images_for_review
from core.serving.predlog import PredictionLog, predictions
from core.serving.to_labelling import SERVED_PREFIX, labelling_dataset, labels_to_feedback, send_for_labelling
from tests.conftest import class_members, jpeg_bytes, write_zip


def png_bytes(colour: tuple[int, int, int]) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (50, 30), colour).save(buffer, "PNG")
    return buffer.getvalue()


def served(tmp_path, log_url: str, inputs: list[tuple[bytes, str, dict]]) -> tuple[PredictionLog, ImageKeeper]:
    """A log (SQLite, PostgreSQL) and a kept-images folder filled the way the service fills them: a row per input."""
    log, keeper = PredictionLog(log_url), ImageKeeper(tmp_path / "kept")
    rows = []
    for position, (data, image_format, answer) in enumerate(inputs):
        prediction = uuid.uuid4().hex
        rows.append({"id": prediction, "time": time.time() + position, "model": "run1", "content_hash": "0" * 64,
                     "top_k": [], "latency_ms": 3.0, "kept_file": keeper.keep(prediction, data, image_format),
                     "label": "cat", "confidence": 0.3, "unsure": False, "unknown": False, **answer})
    log.write(rows)
    return log, keeper


def test_doubtful_kept_images_enter_the_pool_once_and_bad_ones_are_skipped_with_a_reason(tmp_path, log_url):
    red, blue = jpeg_bytes((200, 30, 30), (80, 60)), png_bytes((20, 40, 220))
    log, keeper = served(tmp_path, log_url, [
        (red, "JPEG", {"unsure": True, "confidence": 0.55}),
        (blue, "PNG", {"unknown": True, "confidence": 0.9}),
        (red, "JPEG", {"confidence": 0.4}),  # the same picture sent again: one image in the pool
        (red[: len(red) // 3], "JPEG", {"confidence": 0.2}),  # truncated upload
        (jpeg_bytes((0, 200, 0)), "JPEG", {"confidence": 0.99}),  # sure: not for review
    ])
    store = DatasetStore(tmp_path / "datasets")
    pool = store.create("served", ["cat", "dog"])
    review = kept_images_for_review(log, keeper.folder, model="run1")
    assert len(review) == 4

    first = send_for_labelling(store, pool.dataset, review, tmp_path / "work")

    assert (first.added, first.already_there, len(first.skipped)) == (2, 1, 1)
    assert "not a readable image" in first.skipped[0].reason
    version = store.version(pool.dataset)
    assert len(version.pool()) == 2 and version.counts() == {"cat": 0, "dog": 0}  # unlabelled, no guess as label
    assert all(entry["name"].startswith(SERVED_PREFIX) for entry in version.images.values())
    assert {store.object_path(d).read_bytes() for d in version.pool()} == {red, blue}
    assert first.summary().startswith("2 images added to the unlabelled pool of 'served'")

    again = send_for_labelling(store, pool.dataset, review, tmp_path / "work")
    assert (again.added, again.already_there, again.version) == (0, 3, version.number)  # nothing added twice


def test_a_kept_file_the_service_dropped_meanwhile_is_skipped_not_fatal(tmp_path, log_url):
    log, keeper = served(tmp_path, log_url, [(png_bytes((1, 2, 3)), "PNG", {}), (png_bytes((9, 9, 9)), "PNG", {})])
    review = kept_images_for_review(log, keeper.folder, model="run1")
    review[0]["path"].unlink()
    store = DatasetStore(tmp_path / "datasets")
    result = send_for_labelling(store, store.create("served").dataset, review, tmp_path / "work")
    assert result.added == 1 and "no longer kept" in result.skipped[0].reason


def test_the_target_is_the_dataset_the_model_trained_on_else_its_data_imported_once(tmp_path):
    store, work = DatasetStore(tmp_path / "datasets"), tmp_path / "work"
    archive = write_zip(tmp_path / "pets.zip", class_members("", {"cat": 3, "dog": 3}))
    versioned = import_labelled(store, archive, "pets", work).version
    folder = materialize(store, versioned.dataset, versioned.number)
    assert labelling_dataset(store, tmp_path, {"data": str(folder)}, work).dataset == versioned.dataset

    from_zip = labelling_dataset(store, tmp_path, {"data": str(archive), "data_name": "pets.zip"}, work)
    assert from_zip.dataset != versioned.dataset and from_zip.counts() == {"cat": 3, "dog": 3}
    assert labelling_dataset(store, tmp_path, {"data": str(archive), "data_name": "pets.zip"}, work) == from_zip

    (tmp_path / "labels.json").write_text(json.dumps(["circle", "square"]))
    gone = labelling_dataset(store, tmp_path, {"data": str(tmp_path / "deleted.zip")}, work)
    assert gone.classes == ["circle", "square"] and not gone.images
    assert len(store.datasets()) == 3


def test_labels_given_to_served_images_become_feedback_for_every_answer_to_that_picture(tmp_path, log_url):
    red, blue = jpeg_bytes((200, 30, 30), (80, 60)), png_bytes((20, 40, 220))
    log, keeper = served(tmp_path, log_url, [(red, "JPEG", {"unsure": True}), (blue, "PNG", {"unknown": True}),
                                    (red, "JPEG", {"confidence": 0.4})])
    with log.engine.begin() as connection:  # the service logs each input's sha256; `served` wrote placeholders
        for row, data in zip(log.rows(model="run1"), (red, blue, red)):
            connection.execute(predictions.update().where(predictions.c.id == row["id"])
                               .values(content_hash=hashlib.sha256(data).hexdigest()))
    store = DatasetStore(tmp_path / "datasets")
    pool = store.create("served", ["cat", "dog"])
    send_for_labelling(store, pool.dataset, kept_images_for_review(log, keeper.folder, model="run1"), tmp_path / "w")
    assert labels_to_feedback(store, log) == 0  # nothing labelled yet

    red_digest = hashlib.sha256(red).hexdigest()
    store.commit(pool.dataset, store.head(pool.dataset), Edit(set_label={red_digest: "dog"}))
    assert labels_to_feedback(store, log) == 2  # both answers to the red picture
    feedback = {row["content_hash"]: row["feedback_label"] for row in log.rows(model="run1")}
    assert feedback == {red_digest: "dog", hashlib.sha256(blue).hexdigest(): None}
    assert labels_to_feedback(store, log) == 0  # already counted: nothing rewritten on the next visit

    store.commit(pool.dataset, store.head(pool.dataset), Edit(set_label={red_digest: "cat"}))  # relabelled
    assert labels_to_feedback(store, log) == 2
    rows = log.rows(model="run1")
    assert {row["feedback_label"] for row in rows if row["content_hash"] == red_digest} == {"dog"}  # the first counts
    history = [log.feedback_history(row["id"]) for row in rows if row["content_hash"] == red_digest]
    assert [[(h["label"], h["source"]) for h in entries] for entries in history] == [
        [("dog", "label page"), ("cat", "label page")]] * 2
    assert labels_to_feedback(store, log) == 0
