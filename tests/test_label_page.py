"""The Label page headless: unlabelled uploads to a trained model, a relabel, a retrain, export and re-import."""
from __future__ import annotations

import hashlib
import json
import zipfile
from collections import Counter
from pathlib import Path

from core.data.store import DatasetStore
from core.runs import folder as runs
from tests.conftest import jpeg_bytes
from tests.test_app import finished, go, no_exception, open_page, start_training, wait_until
from ui.label_widgets import POOL


def metrics(at) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def said(messages) -> list[str]:
    """What the user reads (the page escapes every message as plain text)."""
    return [m.value.replace("\\", "") for m in messages]


def ticks(at, prefix: str) -> dict[str, object]:
    """The grid's tick boxes on screen, by the start of their image's content hash."""
    return {c.key.rsplit("_", 1)[1]: c for c in at.checkbox if c.key and c.key.startswith(f"tick_{prefix}")}


def label_ticked(at, where: str, label: str):
    at.text_input(key=f"new_{where}").set_value(label).run()  # a tick or a typed name reruns, as in a browser
    at.button(key=f"assign_{where}").click().run()
    no_exception(at)
    return at


def test_label_page_from_unlabelled_uploads_to_training_relabel_retrain_and_export(shapes_folder, tmp_path):
    images = sorted(Path(shapes_folder).rglob("*.jpg"))
    truth = {hashlib.sha256(p.read_bytes()).hexdigest()[:24]: p.parent.name for p in images}
    at = open_page("label")
    no_exception(at)
    at.button(key="create").click().run()
    uploads = [(p.name, p.read_bytes(), "image/jpeg") for p in images]
    uploads += [("broken.jpg", b"\xff\xd8 nope", "image/jpeg"), ("again.jpg", images[0].read_bytes(), "image/jpeg")]
    at.file_uploader(key="add_files").set_value(uploads).run()
    at.button(key="add").click().run()
    no_exception(at)
    assert any("36 new images added, 1 already in the dataset" in text for text in said(at.success))
    assert metrics(at)["Unlabelled"] == "36" and metrics(at)["Version"] == "2"

    # Group the pool, untick the strays, label the whole group at once.
    at.radio(key="mode").set_value("Groups of similar images").run()
    at.slider(key="groups").set_value(3).run()
    shown = ticks(at, "g")
    majority = Counter(truth[h] for h in shown).most_common(1)[0][0]
    for digest, box in shown.items():
        if truth[digest] != majority:
            box.uncheck()
    label_ticked(at, "group", majority)
    assert metrics(at)["Labelled"] == str(sum(truth[h] == majority for h in shown))

    # Three of each other class from the pool, so suggestions can start.
    at.radio(key="mode").set_value("Browse and relabel").run()
    at.selectbox(key="browse").set_value(POOL).run()
    for other in sorted(set(truth.values()) - {majority}):
        for box in [b for h, b in ticks(at, "b").items() if truth[h] == other][:3]:
            box.check()
        label_ticked(at, "browse", other)
        at.selectbox(key="browse").set_value(POOL).run()
    before = int(metrics(at)["Labelled"])

    at.radio(key="mode").set_value("Accept suggestions").run()
    at.slider(key="threshold").set_value(0.5).run()
    suggested = ticks(at, "s")
    assert suggested, "no suggestions shown"
    wrong = [h for h, box in suggested.items() if not box.label.startswith(truth[h])]
    for digest in wrong:
        suggested[digest].uncheck()  # review the grid: untick the wrong ones
    at.run()
    at.button(key="accept").click().run()
    no_exception(at)
    assert int(metrics(at)["Labelled"]) == before + len(suggested) - len(wrong)
    assert len(wrong) <= len(suggested) // 4  # the head is mostly right on shapes

    # The camera: a photo straight into a class.
    at.toggle(key="label_camera").set_value(True).run()  # off until asked for: no camera prompt on arrival
    at.selectbox(key="camera_class").set_value("circle").run()
    at.camera_input(key="camera").set_value(("shot.jpg", jpeg_bytes((250, 250, 250), (96, 96)), "image/jpeg")).run()
    no_exception(at)
    assert any("Photo added to circle" in text for text in said(at.success))

    # Train on the newest version (short).
    store = DatasetStore(_workspace(at) / "datasets")
    dataset = at.session_state["dataset_choice"]
    trained_version = store.head(dataset)
    at.selectbox(key="use_version").set_value(trained_version).run()
    at.button(key="train_on").click().run()
    no_exception(at)
    go(at, "train")
    start_training(at, epochs=1)
    wait_until(at, finished)

    # Relabel one image: a new version; the run can be retrained on it from Runs.
    go(at, "label")
    at.radio(key="mode").set_value("Browse and relabel").run()
    at.selectbox(key="browse").set_value("circle").run()
    next(iter(ticks(at, "b").values())).check()
    label_ticked(at, "browse", "square")
    relabelled = store.version(dataset)
    assert relabelled.number == trained_version + 1 and relabelled.summary() == "1 relabelled"
    go(at, "runs")
    no_exception(at)
    assert at.dataframe[0].value["data"].tolist() == [f"{relabelled.name}, version {trained_version}"]
    at.button(key="retrain").click().run()
    no_exception(at)
    retrained = [r for r in runs.list_runs(_workspace(at) / "runs") if r.config["dataset_version"]]
    assert [r.config["dataset_version"] for r in retrained] == [f"{dataset}@{relabelled.number}"]
    assert "retrain" not in [b.key for b in at.button]  # offered once per new version, not again
    wait_until(at, lambda _: runs.Run(retrained[0].path).status().get("state") == "finished")
    assert len(at.multiselect[0].value) == 2 and at.get("plotly_chart")  # Runs compares the two

    # Export the version and re-import it: identical counts.
    go(at, "label")
    at.selectbox(key="use_version").set_value(relabelled.number).run()
    at.button(key="export").click().run()
    no_exception(at)
    assert at.get("download_button"), [m.value for m in [*at.error, *at.warning, *at.info]]
    exported = Path(at.session_state["label_export"])
    with zipfile.ZipFile(exported) as archive:
        in_zip = Counter(name.split("/")[0] for name in archive.namelist())
    assert dict(in_zip) == {k: v for k, v in relabelled.counts().items() if v}
    at.file_uploader(key="labelled_zip").set_value((exported.name, exported.read_bytes(), "application/zip")).run()
    no_exception(at)
    copy = store.version(at.session_state["dataset_choice"])
    assert copy.dataset != dataset and copy.counts() == {k: v for k, v in relabelled.counts().items() if v}
    assert json.dumps(metrics(at))  # the page drew its numbers for the re-imported copy


def _workspace(at) -> Path:
    from core import paths

    return paths.home() / "workspaces" / at.query_params["ws"]


def picker(at, label: str):
    return [s for s in at.selectbox if s.label == label][0]


def test_a_group_starts_on_its_suggested_class_and_training_defaults_to_the_newest_version(shapes_folder, tmp_path):
    by_class = {c: sorted((Path(shapes_folder) / c).glob("*.jpg")) for c in ("circle", "square", "triangle")}
    labelled = tmp_path / "shapes.zip"
    with zipfile.ZipFile(labelled, "w") as archive:
        for label, files in by_class.items():
            for path in files[:4]:
                archive.write(path, f"{label}/{path.name}")
    at = open_page("label")
    at.file_uploader(key="labelled_zip").set_value(("shapes.zip", labelled.read_bytes(), "application/zip")).run()
    no_exception(at)
    assert at.selectbox(key="use_version").value == 2
    unlabelled = [(p.name, p.read_bytes(), "image/jpeg") for p in by_class["triangle"][4:]]
    at.file_uploader(key="add_files").set_value(unlabelled).run()
    at.button(key="add").click().run()
    no_exception(at)
    assert metrics(at)["Version"] == "3" and metrics(at)["Unlabelled"] == "8"
    assert at.selectbox(key="use_version").value == 3  # the version just saved, not the one first shown
    assert picker(at, "Dataset").value == at.session_state["dataset_choice"]
    assert "(version 3)" in picker(at, "Dataset").options[picker(at, "Dataset").index]
    # Groups of the pool (all triangles): the class picker starts on the suggestion, not on "circle"
    at.radio(key="mode").set_value("Groups of similar images").run()
    assert picker(at, "Give the ticked images the class").value == "triangle"
    at.button(key="assign_group").click().run()
    no_exception(at)
    assert metrics(at)["Version"] == "4" and at.selectbox(key="use_version").value == 4


def test_classes_named_like_the_pool_or_removal_stay_classes():
    at = open_page("label")
    at.text_input(key="new_classes").set_value("(remove from the dataset), (unlabelled pool)").run()
    at.button(key="create").click().run()
    images = [(f"img{i}.jpg", jpeg_bytes((40 * i, 200 - 30 * i, 90), (96, 96)), "image/jpeg") for i in range(4)]
    at.file_uploader(key="add_files").set_value(images).run()
    at.button(key="add").click().run()
    at.radio(key="mode").set_value("Browse and relabel").run()
    at.selectbox(key="browse").set_value(POOL).run()
    for box in list(ticks(at, "b").values())[:2]:
        box.check()
    label_ticked(at, "browse", "(remove from the dataset)")  # typed: a class name, never a command
    assert metrics(at)["Labelled"] == "2" and metrics(at)["Unlabelled"] == "2"
    at.selectbox(key="browse").set_value(POOL).run()
    for box in ticks(at, "b").values():
        box.check()
    picker(at, "Give the ticked images the class").set_value("(unlabelled pool)").run()  # chosen from the list
    at.button(key="assign_browse").click().run()
    no_exception(at)
    assert metrics(at)["Labelled"] == "4" and metrics(at)["Unlabelled"] == "0"
    counts = " ".join(c.value.replace("\\", "") for c in at.caption)
    assert "(remove from the dataset): 2" in counts and "(unlabelled pool): 2" in counts


def _shape_files(shapes_folder) -> tuple[dict[str, list[Path]], dict[str, str]]:
    by_class = {c: sorted((Path(shapes_folder) / c).glob("*.jpg")) for c in ("circle", "square", "triangle")}
    truth = {hashlib.sha256(p.read_bytes()).hexdigest()[:24]: c for c, files in by_class.items() for p in files}
    return by_class, truth


def test_label_next_says_why_and_how_far_then_lookalike_classes_merge_and_the_dataset_is_deleted(shapes_folder,
                                                                                                 tmp_path):
    by_class, truth = _shape_files(shapes_folder)
    labelled = tmp_path / "shapes.zip"
    with zipfile.ZipFile(labelled, "w") as archive:  # 'Circle' and 'circle': one class to a reader
        for folder, files in (("circle", by_class["circle"][:3]), ("Circle", by_class["circle"][3:5]),
                              ("square", by_class["square"][:4])):
            for path in files:
                archive.write(path, f"{folder}/{path.name}")
    at = open_page("label")
    at.file_uploader(key="labelled_zip").set_value(("shapes.zip", labelled.read_bytes(), "application/zip")).run()
    pool = by_class["circle"][5:] + by_class["square"][4:] + by_class["triangle"]
    at.file_uploader(key="add_files").set_value([(p.name, p.read_bytes(), "image/jpeg") for p in pool]).run()
    at.button(key="add").click().run()
    no_exception(at)
    assert metrics(at)["Unlabelled"] == "27" and at.radio(key="mode").value.startswith("Label next")

    # Cold start: typical images of the group nobody labelled, each with its reason; too few labels for a curve.
    assert any(s.startswith("Cannot tell yet how many more labels") for s in said(at.info))
    assert any("Few labels yet" in s for s in said(at.markdown))
    proposed = ticks(at, "n")
    reasons = [d.value for d in at.dataframe if "why" in d.value.columns][0]
    assert len(reasons) == len(proposed) == 12
    assert all(r.startswith(("Typical of a group of", "Unlike every other image")) for r in reasons["why"])
    triangles = [h for h in proposed if truth[h] == "triangle"]
    assert len(triangles) >= 3  # triangles are the only unlabelled shape: the proposal goes there first
    for digest in triangles:
        proposed[digest].check()
    label_ticked(at, "next", "triangle")
    assert metrics(at)["Labelled"] == str(9 + len(triangles))

    # The look-alike names: said, and merged into one class on request.
    [warning] = [w for w in said(at.warning) if "look alike" in w]
    assert "'circle'" in warning and "'Circle'" in warning
    at.button(key="merge_lookalikes").click().run()
    no_exception(at)
    assert any("Merged look-alike class names" in s for s in said(at.success))
    assert not any("look alike" in w for w in said(at.warning)) and metrics(at)["Classes"] == "3"
    counts = " ".join(c.value.replace("\\", "") for c in at.caption)
    assert "circle: 5" in counts and "Circle" not in counts

    # Three labels a class and twelve in all: unsure, varied images next, and a learning-curve sentence.
    assert any(s.startswith(f"Cross-validated accuracy with these {9 + len(triangles)} labels") for s in said(at.info))
    assert any("least sure" in s for s in said(at.markdown))
    reasons = [d.value for d in at.dataframe if "why" in d.value.columns][0]
    assert len(reasons) and all(r.startswith("The model") for r in reasons["why"])

    # Deleting asks first, then takes the dataset and every version of it.
    store = DatasetStore(_workspace(at) / "datasets")
    dataset = at.session_state["dataset_choice"]
    assert at.button(key="delete_dataset").disabled
    at.checkbox(key=f"delete_sure_{dataset}").check().run()
    at.button(key="delete_dataset").click().run()
    no_exception(at)
    assert store.datasets() == [] and any("Deleted the dataset 'shapes'" in s for s in said(at.success))


def test_a_labelled_zip_over_the_workspace_limit_is_refused_before_it_is_stored(shapes_folder, tmp_path, monkeypatch):
    by_class, _ = _shape_files(shapes_folder)
    labelled = tmp_path / "shapes.zip"
    with zipfile.ZipFile(labelled, "w") as archive:
        for label, files in by_class.items():
            for path in files[:3]:
                archive.write(path, f"{label}/{path.name}")
    monkeypatch.setenv("TRANSFERLAB_WORKSPACE_QUOTA_MB", "0.01")  # 10 KB: less than the zip
    at = open_page("label")
    at.file_uploader(key="labelled_zip").set_value(("shapes.zip", labelled.read_bytes(), "application/zip")).run()
    no_exception(at)
    assert any("'shapes.zip' was not stored" in s and "limit" in s for s in said(at.error))
    uploads = _workspace(at) / "uploads"
    assert not (uploads.exists() and any(uploads.iterdir()))  # nothing of it written
    assert DatasetStore(_workspace(at) / "datasets").datasets() == []


def test_with_many_labels_the_learning_curve_is_measured_when_asked(shapes_folder, tmp_path, monkeypatch):
    from ui import label_widgets

    monkeypatch.setattr(label_widgets, "CURVE_AUTO", 5)  # as if the dataset held hundreds of labels
    by_class, _ = _shape_files(shapes_folder)
    labelled = tmp_path / "shapes.zip"
    with zipfile.ZipFile(labelled, "w") as archive:
        for label, files in by_class.items():
            for path in files[:4]:
                archive.write(path, f"{label}/{path.name}")
    at = open_page("label")
    at.file_uploader(key="labelled_zip").set_value(("shapes.zip", labelled.read_bytes(), "application/zip")).run()
    pool = [(p.name, p.read_bytes(), "image/jpeg") for files in by_class.values() for p in files[4:6]]
    at.file_uploader(key="add_files").set_value(pool).run()
    at.button(key="add").click().run()
    no_exception(at)
    assert not any("accuracy" in s for s in said(at.info)) and ticks(at, "n")  # the proposal comes at once
    at.button(key="curve").click().run()
    no_exception(at)
    assert any(s.startswith("Cross-validated accuracy with these 12 labels") for s in said(at.info))
    at.run()
    assert any(s.startswith("Cross-validated accuracy with these 12 labels") for s in said(at.info))  # stays


def test_the_label_page_speaks_chinese_and_keeps_the_user_s_class_names():
    at = open_page("label", lang="zh-CN")
    no_exception(at)
    assert at.title[0].value == "标注你的图片"
    at.text_input(key="new_classes").set_value("猫, dog's").run()
    at.button(key="create").click().run()
    images = [(f"img{i}.jpg", jpeg_bytes((50 * i, 180 - 40 * i, 90), (64, 64)), "image/jpeg") for i in range(4)]
    at.file_uploader(key="add_files").set_value(images).run()
    at.button(key="add").click().run()
    no_exception(at)
    assert any(s.startswith("第 2 版：新添加了 4 张图片") for s in said(at.success)), said(at.success)
    assert metrics(at)["版本"] == "2" and metrics(at)["未标注"] == "4" and metrics(at)["类别"] == "2"
    counts = " ".join(c.value.replace("\\", "") for c in at.caption)
    assert "猫：0" in counts and "dog's：0" in counts  # the user's names, as typed, never translated
    # Label next: the cold start's sentences, the curve's refusal and the reasons table, all in Chinese
    assert any(s.startswith("现在还说不准模型还需要多少个标注") for s in said(at.info))
    assert any("标注还很少" in s for s in said(at.markdown))
    reasons = [d.value for d in at.dataframe if "原因" in d.value.columns][0]
    assert len(reasons) == 4 and all(r.startswith(("一组", "和这里的其他图片都不像")) for r in reasons["原因"])
    assert at.button(key="assign_next").label == "标注勾选的 0 张" and at.button(key="export").label == "导出为 zip 压缩包"
    assert at.radio(key="mode").value == "Label next (recommended)"  # the option stays English: only its text changes
