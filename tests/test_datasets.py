"""From a user's zip or folder to a data report: layouts, junk, warnings, the split, the `inspect` command."""
from __future__ import annotations

import io
import json
import subprocess
import sys
import threading

import pytest
from PIL import Image

from core.data.datasets import _marker, inspect_data, materialize, scan, split
from tests.conftest import class_members, jpeg_bytes, write_zip


@pytest.mark.parametrize("prefix", ["", "my photos/"])
def test_class_folders_at_the_root_or_inside_one_wrapping_folder(tmp_path, prefix):
    archive = write_zip(tmp_path / "d.zip", class_members(prefix, {"cats": 6, "dogs": 7}))
    report = inspect_data(archive, tmp_path / "work")
    assert report.trainable and report.layout == "class_folders"
    assert report.classes == {"cats": 6, "dogs": 7} and report.splits is None


def test_train_val_test_layout_keeps_the_given_split(tmp_path):
    members = class_members("hymenoptera/train/", {"ants": 6, "bees": 6})
    members |= {k.replace("c/", ""): v for k, v in class_members("hymenoptera/val/", {"ants": 2, "bees": 3}).items()}
    members |= class_members("hymenoptera/test/", {"ants": 1, "bees": 1})
    members = {k: v if "/val/" not in k else jpeg_bytes((1, 2, len(k))) for k, v in members.items()}
    report = inspect_data(write_zip(tmp_path / "d.zip", members), tmp_path / "work")
    assert report.layout == "split_folders"
    assert report.splits["train"] == {"ants": 6, "bees": 6} and report.splits["val"] == {"ants": 2, "bees": 3}
    assert report.classes == {"ants": 9, "bees": 10}
    train, val = split(report)
    assert len(train) == 12 and len(val) == 5 and {r.split for r in val} == {"val"}


def test_unicode_class_names(tmp_path):
    report = inspect_data(write_zip(tmp_path / "d.zip", class_members("", {"chats 🐱": 5, "чай": 5, "狗": 5})),
                     tmp_path / "work")
    assert set(report.classes) == {"chats 🐱", "чай", "狗"}


def test_junk_is_skipped_with_reasons(tmp_path):
    good = class_members("", {"cats": 5, "dogs": 5})
    truncated = jpeg_bytes(size=(200, 200))
    junk = {
        "__MACOSX/cats/._img_0.jpg": b"\x00\x05",
        "cats/._img_1.jpg": b"\x00\x05",
        "cats/.DS_Store": b"x",
        "dogs/Thumbs.db": b"x",
        "dogs/.hidden.jpg": jpeg_bytes(),
        "dogs/notes.txt": b"hello",
        "dogs/empty.jpg": b"",
        "dogs/truncated.jpg": truncated[: len(truncated) // 3],
        "dogs/corrupt.png": b"\x89PNG\r\n\x1a\n garbage",
        "readme.jpg": jpeg_bytes(),
    }
    report = inspect_data(write_zip(tmp_path / "d.zip", good | junk), tmp_path / "work")
    reasons = {s.path: s.reason for s in report.skipped}
    assert report.classes == {"cats": 5, "dogs": 5}
    for hidden in ("__MACOSX/cats/._img_0.jpg", "cats/._img_1.jpg", "cats/.DS_Store", "dogs/.hidden.jpg"):
        assert "hidden or system" in reasons[hidden]
    assert "system file" in reasons["dogs/Thumbs.db"]
    assert "not an image file (.txt)" in reasons["dogs/notes.txt"]
    assert "empty file" in reasons["dogs/empty.jpg"]
    assert "not a readable image" in reasons["dogs/truncated.jpg"]
    assert "not a readable image" in reasons["dogs/corrupt.png"]
    assert "not inside a class folder" in reasons["readme.jpg"]


def test_odd_extensions_and_modes_are_accepted(tmp_path):
    def encoded(mode, fmt, colour):
        buffer = io.BytesIO()
        Image.new(mode, (40, 40), colour).save(buffer, fmt)
        return buffer.getvalue()
    members = {"a/one.JPG": jpeg_bytes(), "a/two.Png": encoded("LA", "PNG", (10, 128)),
               "a/three.tif": encoded("CMYK", "TIFF", (1, 2, 3, 4)), "a/four.gif": encoded("P", "GIF", 3),
               "a/five.webp": encoded("RGB", "WEBP", (3, 3, 3)), "b/six.bmp": encoded("1", "BMP", 1)}
    report = inspect_data(write_zip(tmp_path / "d.zip", members), tmp_path / "work")
    assert report.classes == {"a": 5, "b": 1} and not report.skipped


def test_warnings_in_plain_words(tmp_path):
    members = class_members("", {"big": 30, "small": 3})
    members["small/copy.jpg"] = members["small/img_0.jpg"]  # duplicate inside a class
    members["big/conflict.jpg"] = members["small/img_1.jpg"]  # same picture, two labels
    tiny = io.BytesIO()
    Image.new("RGB", (16, 16)).save(tiny, "PNG")
    members["big/tiny.png"] = tiny.getvalue()
    warnings = " ".join(inspect_data(write_zip(tmp_path / "d.zip", members), tmp_path / "work").warnings)
    assert "Very few images in 'small'" in warnings
    assert "unbalanced" in warnings
    assert "more than once in the same class" in warnings
    assert "filed under different classes" in warnings
    assert "tiny" in warnings


def test_train_val_leakage_is_warned(tmp_path):
    members = class_members("train/", {"a": 5, "b": 5}) | class_members("val/", {"a": 2, "b": 2})
    warnings = " ".join(inspect_data(write_zip(tmp_path / "d.zip", members), tmp_path / "work").warnings)
    assert "in both train/ and val/" in warnings


def test_one_class_is_not_trainable_and_says_why(tmp_path):
    report = inspect_data(write_zip(tmp_path / "d.zip", class_members("", {"cats": 8})), tmp_path / "work")
    assert not report.trainable and "at least two" in report.error


def test_stratified_split_puts_every_class_in_both_parts_and_is_seeded(tmp_path):
    report = inspect_data(write_zip(tmp_path / "d.zip", class_members("", {"a": 10, "b": 3, "c": 2})), tmp_path / "w")
    train, val = split(report, 0.2, seed=7)
    assert {r.label for r in train} == {r.label for r in val} == {"a", "b", "c"}
    assert len(val) == 4 and not {r.path for r in train} & {r.path for r in val}
    assert [r.path for r in split(report, 0.2, seed=7)[1]] == [r.path for r in val]


def run_cli(*args, env=None):
    return subprocess.run([sys.executable, "-m", "core", *args], capture_output=True, text=True, env=env)


def test_inspect_command_prints_json_and_exits_by_trainability(tmp_path):
    good = run_cli("inspect", str(write_zip(tmp_path / "good.zip", class_members("", {"a": 5, "b": 5}))))
    assert good.returncode == 0
    assert json.loads(good.stdout)["classes"] == {"a": 5, "b": 5}
    one = run_cli("inspect", str(write_zip(tmp_path / "one.zip", class_members("", {"a": 5}))))
    assert one.returncode == 2 and "at least two" in one.stderr.strip().splitlines()[-1]
    (tmp_path / "notzip.zip").write_text("hello")
    bad = run_cli("inspect", str(tmp_path / "notzip.zip"))
    assert bad.returncode == 2 and "not a zip archive" in bad.stderr


def test_five_simultaneous_extractions_of_one_upload_all_see_every_image(tmp_path):
    """Uploads are extracted into a shared folder named by content: the race must lose no image and raise nothing."""
    upload = write_zip(tmp_path / "same.zip", class_members("", {"cats": 40, "dogs": 40}))
    start, results, errors = threading.Barrier(5), [], []

    def extract_once() -> None:
        start.wait()
        try:
            results.append(materialize(upload, tmp_path / "work"))
        except Exception as error:  # noqa: BLE001 - the assertion below shows what went wrong
            errors.append(error)

    threads = [threading.Thread(target=extract_once) for _ in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == [] and len(set(results)) == 1
    assert len(list(results[0].rglob("*.jpg"))) == 80
    assert sorted(p.name for p in (tmp_path / "work" / "datasets").iterdir()) == [results[0].name,
                                                                                  results[0].name + ".skipped.tsv"]
    assert scan(results[0]).classes == {"cats": 40, "dogs": 40}


def test_an_interrupted_extraction_is_replaced_by_a_complete_one(tmp_path):
    upload = write_zip(tmp_path / "data.zip", class_members("", {"a": 3, "b": 3}))
    first = materialize(upload, tmp_path / "work")
    _marker(first).unlink()  # as an older version left it when the server stopped mid-extraction
    (first / "a" / "img_0.jpg").unlink()
    again = materialize(upload, tmp_path / "work")
    assert again == first and len(list(again.rglob("*.jpg"))) == 6


def test_class_names_differing_only_by_invisible_characters_or_holding_overrides_are_warned(tmp_path):
    members = class_members("", {"cat": 5, "ca\u200bt": 5, "dog\u202egod": 5, "bird": 5})
    report = inspect_data(write_zip(tmp_path / "lookalike.zip", members))
    text = " ".join(report.warnings)
    assert "'cat'" in text and "'ca<U+200B>t'" in text and "ZERO WIDTH SPACE" in text and "look the same" in text
    assert "'dog<U+202E>god'" in text and "RIGHT-TO-LEFT OVERRIDE" in text
    assert "bird" not in text
