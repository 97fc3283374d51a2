"""Labelling beyond one class per image: tags and values stored in dataset versions, written out as the metadata.csv
the data side reads, read back from an exported zip, and the task's own doubts choosing what to label next."""
from __future__ import annotations

import numpy as np
import pytest

from core import tasks
from core.data import answers, checkout, intake, metadata
from core.data.datasets import inspect_data
from core.data.store import DatasetStore, Edit, StoreError
from core.labelling import heads, propose, uncertainty
from tests.conftest import jpeg_bytes

ANSWERS = {"single": ["cat", "dog", "cat"], "multi": [["sky", "tree"], [], ["water"]],
           "regression": [6.25, -0.125, 1e-7]}


def pool_of(store: DatasetStore, task: str, count: int = 3):
    created = store.create("photos", [], task=task)
    images = [(f"img{i}.jpg", jpeg_bytes((40 * i, 200 - 30 * i, 90))) for i in range(count)]
    added = intake.add_uploads(store, created.dataset, created.number, images, None)
    by_name = {entry["name"]: digest for digest, entry in added.version.images.items()}
    return added.version, [by_name[f"img{i}.jpg"] for i in range(count)]


def read_back(folder) -> dict[str, object]:
    """Each image's answer as core's metadata reader and data scan see it (by file name)."""
    report = inspect_data(folder, folder.parent)
    column = answers.of(report.task).column
    rows = metadata.read(folder / "metadata.csv", folder).targets if column != "label" else {}
    out = {}
    for record in report.images:
        name = record.path.rsplit("/", 1)[-1]
        out[name] = record.label if column == "label" else list(rows[record.path].labels) if column == "labels" \
            else rows[record.path].value
    return {"task": report.task, "answers": out}


@pytest.mark.parametrize("task", list(ANSWERS))
def test_each_tasks_answers_survive_a_version_its_training_folder_and_an_exported_zip(task, tmp_path):
    store = DatasetStore(tmp_path / "datasets")
    version, digests = pool_of(store, task)
    given = dict(zip(digests, ANSWERS[task]))
    saved = store.commit(version.dataset, version.number, Edit(set_label=given, message="labelled"))
    assert saved.task == task and saved.labelled() == 3 and saved.pool() == []
    assert {d: saved.images[d]["label"] for d in digests} == given
    expected = {"task": task, "answers": {f"img{i}.jpg": a for i, a in enumerate(ANSWERS[task])}}
    assert read_back(checkout.materialize(store, saved.dataset, saved.number)) == expected
    exported = checkout.export_zip(store, saved.dataset, saved.number)
    copy = intake.import_labelled(store, exported, "copy", tmp_path / "work").version
    assert copy.task == task and {e["name"]: e["label"] for e in copy.images.values()} == expected["answers"]


def test_tags_and_values_are_checked_when_given(tmp_path):
    store = DatasetStore(tmp_path / "datasets")
    tagged, (first, second, _) = pool_of(store, "multi")
    v = store.commit(tagged.dataset, tagged.number, Edit(set_label={first: ["tree", " sky", "tree"], second: []}))
    assert v.images[first]["label"] == ["sky", "tree"] and v.images[second]["label"] == []  # none: an answer
    assert sorted(v.classes) == ["sky", "tree"] and v.counts() == {"sky": 1, "tree": 1} and v.summary() == "2 labelled, +2 tags"
    with pytest.raises(StoreError, match="^A tag cannot contain ';'"):
        store.commit(v.dataset, v.number, Edit(set_label={first: ["sky;tree"]}))
    renamed = store.commit(v.dataset, v.number, Edit(rename={"tree": "forest"}))
    assert renamed.images[first]["label"] == ["forest", "sky"] and sorted(renamed.classes) == ["forest", "sky"]
    valued, (image, *_) = pool_of(store, "regression")
    for typo in ("six", float("nan"), 1e12):
        with pytest.raises(StoreError) as refused:
            store.commit(valued.dataset, valued.number, Edit(set_label={image: typo}))
        assert str(refused.value).count(".") <= 3 and "\n" not in str(refused.value)  # one sentence
    assert store.commit(valued.dataset, valued.number, Edit(set_label={image: "2,5"})).images[image]["label"] == 2.5


def test_every_task_has_a_stored_answer_and_a_labelling_head():
    assert set(answers.ANSWERS) == set(heads.HEADS) == set(tasks.NAMES)


def _features(rows: list[list[float]]) -> np.ndarray:
    """A constant column keeps unit-length rows apart (the heads normalise rows), plus small fixed noise."""
    x = np.array([[1.0, *row] for row in rows])
    return x + np.random.default_rng(0).normal(0, 0.02, x.shape)


def test_tags_next_are_the_images_the_tag_heads_doubt_and_their_guesses_are_the_tags():
    combos = [[0, 0], [1, 0], [0, 1], [1, 1]] * 4
    labelled = _features(combos)
    tags = [[t for t, on in zip(("sky", "tree"), c) if on] for c in combos]
    pool = _features([[1, 0], [0, 1], [1, 1], [0, 0], [0.5, 1], [1, 0.5]])
    chosen = propose.choose(np.vstack([labelled, pool]), tags, ["sky", "tree"], batch=2, task="multi")
    assert chosen.stage == "uncertain"
    assert {p.index for p in chosen.picks} == {4, 5}  # half sky, half tree: the two images worth asking about
    assert chosen.guesses.answers[:4] == [["sky"], ["tree"], ["sky", "tree"], []]  # these prefill the tag picker
    probabilities = heads._tag_probabilities(labelled / np.linalg.norm(labelled, axis=1, keepdims=True),
                                             np.array([[t in g for t in ("sky", "tree")] for g in tags]),
                                             pool / np.linalg.norm(pool, axis=1, keepdims=True), 0)
    assert np.allclose(chosen.guesses.unsure, uncertainty.multi_label(probabilities))
    reason, caption = chosen.guesses.explain(4)
    assert reason.startswith("The model cannot tell whether these tags apply: sky") and caption.startswith("sky?")


def test_values_next_are_where_the_ridge_heads_disagree_and_their_guess_is_a_number():
    a = np.linspace(0, 1, 10)
    labelled, values = _features([[x, 0] for x in a]), (10 * a).tolist()
    pool = _features([[0.5, 0], [0.2, 0], [0.5, 4.0]])  # the last is unlike every labelled image
    chosen = propose.choose(np.vstack([labelled, pool]), values, [], batch=1, task="regression")
    assert chosen.stage == "uncertain" and [p.index for p in chosen.picks] == [2]
    assert 2 < chosen.guesses.answers[0] < 8 and chosen.guesses.answers[1] < chosen.guesses.answers[0]
    assert chosen.guesses.explain(2)[0].startswith("The model's guesses for it range from")
    few = propose.choose(np.vstack([labelled[:4], pool]), values[:4], [], batch=2, task="regression")
    assert few.stage == "typical" and few.guesses is None  # too few values for the heads' doubts to mean much
