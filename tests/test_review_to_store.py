"""The label audit's marks become a dataset version (one label per image) or a corrected copy of the dataset's
metadata file (tags, values): the Review page's save button."""
from __future__ import annotations

from pathlib import Path

from streamlit.testing.v1 import AppTest

from core.data import sample
from core.data.checkout import apply_review_marks, materialize
from core.data.datasets import inspect_data
from core.data.store import DatasetStore
from core.workspace import Workspace
from tests.conftest import class_members, write_zip

APP = str(Path(__file__).resolve().parent.parent / "app.py")


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


def test_review_page_writes_a_tag_correction_into_a_corrected_metadata_copy(tmp_path):
    folder = sample.write_tagged_folder(tmp_path / "tagged", 24, size=64, seed=4)
    rows = (folder / "metadata.csv").read_text(encoding="utf-8").splitlines()
    for n in (1, 2, 3):  # three pictures given the tags they do not show
        name, tags = rows[n].split(",")
        rows[n] = f"{name},{';'.join(s for s in sample.SHAPES if s not in tags.split(';')) or 'circle'}"
    (folder / "metadata.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    at = AppTest.from_file(APP, default_timeout=120)
    at.switch_page("views/data.py").run()
    ws = Workspace.of(at.query_params["ws"])
    ws.set_dataset(folder, "tagged pictures.zip")
    at.switch_page("views/review.py").run()
    at.button(key="run_audit").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert any("Probably wrong tags" in h.value for h in at.subheader)
    assert any("A model that never saw this image" in c.value and ("adds '" in c.value or "doubts '" in c.value)
               for c in at.caption)

    at.radio[0].set_value("relabel").run()
    assert any(m.value.startswith("Tagged ") and "looks like" in m.value for m in at.markdown)
    suggestion = at.multiselect[0].value  # the audit's suggestion, which differs from the given tags: accepted
    at.radio[1].set_value("remove").run()
    at.button(key="save_version").click().run()

    assert not at.exception, [e.value for e in at.exception]
    assert any("Saved as 'tagged pictures" in s.value and "now the dataset" in s.value for s in at.success)
    chosen = ws.dataset()
    assert chosen["path"] != str(folder) and chosen["name"] == "tagged pictures (corrected)"
    before = {r.path: r.labels for r in inspect_data(folder, tmp_path / "work").images}
    after = {r.path: r.labels for r in inspect_data(Path(chosen["path"]), tmp_path / "work").images}
    assert len(after) == len(before) - 1 and set(after) < set(before)  # one removed
    changed = [path for path in after if after[path] != before[path]]
    assert len(changed) == 1 and after[changed[0]] == tuple(sorted(suggestion)), (changed, suggestion)
    assert (folder / "metadata.csv").read_text(encoding="utf-8") == "\n".join(rows) + "\n"  # the original stays
