"""Class names that collide: one spelling per name (NFC) in the store and in scans, hidden and direction characters
refused when typed, case-only twins refused when typed and merged on request, lookalikes warned about."""
from __future__ import annotations

import unicodedata
import zipfile

import pytest

from core.data import checkout, intake
from core.data.datasets import inspect_data
from core.data.store import DatasetStore, Edit, StoreError, check_class_name
from tests.conftest import jpeg_bytes, write_zip

NFC, NFD = unicodedata.normalize("NFC", "café"), unicodedata.normalize("NFD", "café")


def images(prefix: str, count: int, shade: int) -> dict[str, bytes]:
    return {f"{prefix}/img_{i}.jpg": jpeg_bytes((shade, i * 20, 90)) for i in range(count)}


@pytest.fixture
def pool(tmp_path) -> tuple[DatasetStore, str]:
    store = DatasetStore(tmp_path / "store")
    return store, intake.new_pool(store, "pool", ["cat", NFC]).dataset


def test_a_name_typed_in_either_unicode_form_is_one_class(pool):
    store, dataset = pool
    assert NFC != NFD and check_class_name(NFD) == NFC
    added = intake.add_uploads(store, dataset, 1, [("a.jpg", jpeg_bytes((1, 1, 1)))], NFD, store.root / "work")
    assert added.version.classes == ["cat", NFC] and added.version.counts() == {"cat": 0, NFC: 1}


@pytest.mark.parametrize("name, character", [("\u202egnp.exe", "RIGHT-TO-LEFT OVERRIDE"),
                                             ("ca\u200bt", "ZERO WIDTH SPACE"), ("dog\u2066", "LEFT-TO-RIGHT ISOLATE")])
def test_hidden_and_direction_characters_are_refused_with_a_sentence(pool, name, character):
    store, dataset = pool
    for edit in (Edit(add_classes=[name]), Edit(rename={"cat": name})):
        with pytest.raises(StoreError) as refused:
            store.commit(dataset, 1, edit)
        message = str(refused.value)
        assert message.endswith(f"cannot be a class name: it holds characters that are invisible or change the "
                                f"direction of text ({character}); type it again without them.")
        assert "<U+" in message and not any(unicodedata.category(c) == "Cf" for c in message)
    assert store.head(dataset) == 1


def test_joiners_that_shape_words_are_kept():
    persian = "می\u200cخواهم"  # a zero-width non-joiner belongs inside this word
    assert check_class_name(persian) == persian


def test_a_case_twin_of_a_class_is_refused_when_typed_but_a_class_may_change_its_case(pool):
    store, dataset = pool
    for edit in (Edit(add_classes=["Cat"]), Edit(set_label={}, add_classes=["CAT"]), Edit(rename={NFC: "CAT"})):
        with pytest.raises(StoreError, match=r"^There is already a class 'cat': '(Cat|CAT)' differs from it only in "
                                             "letter case or lookalike characters, and the two would become one folder "
                                             "on Windows and macOS; use 'cat', or a clearly different name.$"):
            store.commit(dataset, 1, edit)
    renamed = store.commit(dataset, 1, Edit(rename={"cat": "Cat"}))
    assert renamed.classes == [NFC, "Cat"]


def test_folders_in_both_unicode_forms_are_one_class_in_a_scan(tmp_path):
    members = images(NFC, 3, 10) | images(NFD, 2, 200) | images("dog", 4, 100)
    report = inspect_data(write_zip(tmp_path / "d.zip", members), tmp_path / "work")
    assert report.classes == {NFC: 5, "dog": 4}
    assert not any("look the same" in w for w in report.warnings)


def test_case_twins_are_warned_about_and_merged_into_one_class_on_request(tmp_path):
    members = images("Cat", 3, 10) | images("cat", 4, 60) | images("CAT", 1, 120) | images("dog", 5, 200)
    source = write_zip(tmp_path / "d.zip", members)
    report = inspect_data(source, tmp_path / "work")
    assert report.classes == {"CAT": 1, "Cat": 3, "cat": 4, "dog": 5}
    [warning] = [w for w in report.warnings if "look the same" in w]
    assert "'CAT', 'Cat', 'cat'" in warning and "Windows and macOS would put them in one folder" in warning
    store = DatasetStore(tmp_path / "store")
    imported = intake.import_labelled(store, source, "pets", tmp_path / "work")
    merged = store.merge_lookalikes(imported.version.dataset, imported.version.number)
    assert merged.counts() == {"dog": 5, "cat": 8} and merged.message == "merged lookalike classes"
    exported = checkout.export_zip(store, merged.dataset, merged.number)
    folders = {name.split("/")[0] for name in zipfile.ZipFile(exported).namelist()}
    assert folders == {"cat", "dog"}


def test_a_merge_keeps_the_name_without_hidden_characters(tmp_path):
    store = DatasetStore(tmp_path / "store")
    created = store.create("lookalikes", [])
    (store.root / created.dataset / "versions" / "000001.json").write_text(  # as an older store may hold them
        '{"name": "x", "parent": 0, "created": 1, "message": "created", "classes": ["ca\\u200bt", "cat"], '
        '"images": {}, "changes": {}}', encoding="utf-8")
    assert store.merge_lookalikes(created.dataset, 1).classes == ["cat"]


def test_a_zip_whose_folder_hides_characters_is_refused_by_the_store_with_a_sentence(tmp_path):
    source = write_zip(tmp_path / "d.zip", images("re\u202ed", 3, 10) | images("blue", 3, 200))
    assert inspect_data(source, tmp_path / "work").trainable  # training warns about it, the store keeps names clean
    with pytest.raises(StoreError) as refused:
        intake.import_labelled(DatasetStore(tmp_path / "store"), source, "colours", tmp_path / "work")
    assert str(refused.value) == ("The folder 're<U+202E>d' cannot become a class: it holds characters that are "
                                  "invisible or change the direction of text (RIGHT-TO-LEFT OVERRIDE); rename the "
                                  "folder and upload the zip again.")
    assert DatasetStore(tmp_path / "store").datasets() == []
