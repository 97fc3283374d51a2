"""The label audit's marks become a dataset version: the Review page's "Save the marks as a new version"."""
from __future__ import annotations

from core.data.checkout import apply_review_marks, materialize
from core.data.datasets import inspect_data
from core.data.store import DatasetStore
from tests.conftest import class_members, write_zip


def test_marks_on_a_plain_zip_become_a_new_dataset_with_the_changes(tmp_path):
    archive = write_zip(tmp_path / "photos.zip", class_members("", {"cat": 6, "dog": 6}))
    report = inspect_data(archive, tmp_path / "work")
    cat = sorted(r.path for r in report.images if r.label == "cat")
    marks = {cat[0]: {"action": "relabel", "label": "dog"}, cat[1]: {"action": "remove", "label": None},
             cat[2]: {"action": "keep", "label": None}}
    store = DatasetStore(tmp_path / "datasets")

    version = apply_review_marks(store, archive, report.images, marks, "photos", tmp_path / "work")

    assert version.counts() == {"cat": 4, "dog": 7}
    assert version.changes.get("relabelled") == 1 and version.changes.get("removed") == 1
    folder = materialize(store, version.dataset, version.number)
    assert inspect_data(folder, tmp_path / "work").classes == {"cat": 4, "dog": 7}


def test_marks_on_a_store_version_continue_that_dataset(tmp_path):
    archive = write_zip(tmp_path / "photos.zip", class_members("", {"cat": 6, "dog": 6}))
    store = DatasetStore(tmp_path / "datasets")
    first = apply_review_marks(store, archive, inspect_data(archive, tmp_path / "work").images, {}, "photos",
                               tmp_path / "work")
    folder = materialize(store, first.dataset, first.number)
    report = inspect_data(folder, tmp_path / "work")
    dog = sorted(r.path for r in report.images if r.label == "dog")

    second = apply_review_marks(store, folder, report.images, {dog[0]: {"action": "remove", "label": None}},
                                "photos", tmp_path / "work")

    assert (second.dataset, second.number) == (first.dataset, first.number + 1)
    assert second.counts() == {"cat": 6, "dog": 5}
    assert len(store.datasets()) == 1
