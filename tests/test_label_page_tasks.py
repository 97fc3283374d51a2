"""The Label page headless on workspaces whose data has tags or values: tags and values given on the page come back
from the version it trains on, exactly, through core's metadata reader."""
from __future__ import annotations

import csv
import io
import zipfile
from pathlib import Path

from core.data import metadata
from core.data.datasets import inspect_data
from core.workspace import Workspace
from tests.conftest import jpeg_bytes
from tests.test_app import go, no_exception, open_page, upload
from tests.test_label_page import metrics, ticks
from ui.label_widgets import POOL


def images(prefix: str, count: int, shade: int = 0) -> list[tuple[str, bytes]]:
    return [(f"{prefix}{i}.jpg", jpeg_bytes((30 * i + shade, 220 - 25 * i, 60 + shade), (64, 64))) for i in range(count)]


def metadata_zip(column: str, rows: dict[str, str]) -> bytes:
    """Images beside a metadata.csv, as a user would zip them for the Data page."""
    text = io.StringIO()
    writer = csv.writer(text)
    writer.writerow(["file_name", column])
    writer.writerows(rows.items())
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in images("known", len(rows)):
            archive.writestr(name, data)
        archive.writestr("metadata.csv", text.getvalue())
    return buffer.getvalue()


def widget(at, kind: str, label: str):
    return next(w for w in getattr(at, kind) if w.label.startswith(label))


def trained_folder(at) -> Path:
    """The version the user chose to train on, as the Train page reads it."""
    at.button(key="train_on").click().run()
    no_exception(at)
    return Path(Workspace.of(at.query_params["ws"]).dataset()["path"])


def add_to_pool(at, files: list[tuple[str, bytes]]) -> None:
    at.file_uploader(key="add_files").set_value([(n, d, "image/jpeg") for n, d in files]).run()
    at.button(key="add").click().run()
    no_exception(at)


def test_tags_given_on_the_page_are_the_tags_the_version_trains_on():
    known = {f"known{i}.jpg": tags for i, tags in enumerate(["sky;tree", "tree", "sky", "", "water;sky", "tree"])}
    at = open_page("data")
    upload(at, "tagged.zip", metadata_zip("labels", known))
    go(at, "label")
    at.button(key="import_current").click().run()  # the Data page's tagged images: a dataset of tags
    no_exception(at)
    assert metrics(at)["Tags"] == "3" and metrics(at)["Labelled"] == "6"
    add_to_pool(at, images("new", 2, shade=100))
    assert metrics(at)["Unlabelled"] == "2"

    # Label next (the first tab): tick one proposed image, give it two tags at once.
    proposed = ticks(at, "n")
    assert len(proposed) == 2
    first, second = sorted(proposed)
    proposed[first].check().run()
    widget(at, "multiselect", "Tags for the ticked images").set_value(["sky", "water"]).run()
    at.button(key="assign_next").click().run()
    no_exception(at)
    # Browse the pool: the other image gets a known tag and a new one typed in.
    at.radio(key="mode").set_value("Browse and relabel").run()
    at.selectbox(key="browse").set_value(POOL).run()
    [box] = ticks(at, "b").values()
    box.check().run()
    widget(at, "multiselect", "Tags for the ticked images").set_value(["tree"]).run()
    at.text_input(key="new_tags_browse").set_value("cloud").run()
    at.button(key="assign_browse").click().run()
    no_exception(at)
    assert metrics(at)["Tags"] == "4" and metrics(at)["Unlabelled"] == "0"

    folder = trained_folder(at)
    rows = metadata.read(folder / "metadata.csv", folder)
    assert rows.task == "multi" and not rows.skipped
    by_name = {path: target.labels for path, target in rows.targets.items()}
    new = {name: tags for name, tags in by_name.items() if name.endswith(("new0.jpg", "new1.jpg"))}
    assert sorted(new.values()) == [("cloud", "tree"), ("sky", "water")]
    assert {n: t for n, t in by_name.items() if n not in new} == {n: tuple(sorted(filter(None, t.split(";"))))
                                                                  for n, t in known.items()}
    report = inspect_data(folder, folder.parent)
    assert report.trainable and report.task == "multi" and len(report.images) == 8
    go(at, "train")
    no_exception(at)
    assert any("several labels per image (tags)" in c.value for c in at.caption)


def test_a_value_typed_or_given_to_a_group_is_the_value_the_version_trains_on():
    at = open_page("data")
    upload(at, "scores.zip", metadata_zip("value", {"known0.jpg": "1.5", "known1.jpg": "4"}))
    go(at, "label")
    assert at.radio(key="new_task").value == "regression"  # the workspace's data has values: so does a new dataset
    at.button(key="create").click().run()
    add_to_pool(at, images("new", 3, shade=100))
    assert metrics(at)["Values"] == "none yet" and metrics(at)["Unlabelled"] == "3"

    # Label next: one image, its value typed.
    proposed = ticks(at, "n")
    first = sorted(proposed)[0]
    proposed[first].check().run()
    widget(at, "number_input", "Value (a score)").set_value(6.25).run()
    at.button(key="assign_next").click().run()
    no_exception(at)
    assert metrics(at)["Values"] == "6.25 to 6.25"
    # Browse the pool: the two others at once, one value for both, slid (the slider spans the values so far).
    at.radio(key="mode").set_value("Browse and relabel").run()
    at.selectbox(key="browse").set_value(POOL).run()
    next(b for b in at.button if b.key.startswith("all_b")).click().run()  # "Tick all"
    slider = widget(at, "slider", "...or slide it")
    assert slider.min < 6.25 < slider.max <= 10
    slider.set_value(6.0).run()
    assert widget(at, "number_input", "Value (a score)").value == 6.0  # the slid value is the one saved
    at.button(key="assign_browse").click().run()
    no_exception(at)
    assert metrics(at)["Unlabelled"] == "0" and metrics(at)["Values"] == "6 to 6.25"

    folder = trained_folder(at)
    rows = metadata.read(folder / "metadata.csv", folder)
    assert rows.task == "regression" and sorted(t.value for t in rows.targets.values()) == [6.0, 6.0, 6.25]
