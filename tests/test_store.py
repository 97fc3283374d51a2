"""The dataset store: immutable versions, shared storage, diffs, export/re-import, crashes and stale writes."""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from PIL import Image

from core.data import checkout, intake
from core.data import store as store_module
from core.data.archive import ArchiveRefused
from core.data.store import DatasetStore, Edit, StaleVersion, StoreError
from core.runs import retrain
from core.training.config import TrainConfig
from tests.conftest import class_members, jpeg_bytes, write_zip

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def labelled(tmp_path) -> tuple[DatasetStore, intake.IntakeResult]:
    source = write_zip(tmp_path / "pets.zip", class_members("", {"cat": 6, "dog": 5}))
    store = DatasetStore(tmp_path / "datasets")
    return store, intake.import_labelled(store, source, "pets", tmp_path / "work")


def digests_of(store: DatasetStore, dataset: str, label: str) -> list[str]:
    return sorted(h for h, e in store.version(dataset).images.items() if e["label"] == label)


def test_labelled_zip_becomes_a_dataset_with_counts(labelled):
    store, result = labelled
    assert result.version.counts() == {"cat": 6, "dog": 5}
    assert result.added == 11 and not result.duplicates
    assert result.version.summary() == "+11 images"
    assert [v.number for v in store.log(result.version.dataset)] == [2, 1]


def test_every_change_is_a_new_version_and_old_ones_stay_readable(labelled):
    store, result = labelled
    dataset, cats = result.version.dataset, digests_of(store, result.version.dataset, "cat")
    v3 = store.commit(dataset, 2, Edit(set_label={cats[0]: "dog", cats[1]: "dog"}, message="fix"))
    v4 = store.commit(dataset, 3, Edit(rename={"dog": "puppy"}))
    v5 = store.commit(dataset, 4, Edit(remove={cats[2]}))
    assert v3.summary() == "2 relabelled" and v3.counts() == {"cat": 4, "dog": 7}
    assert v4.counts() == {"cat": 4, "puppy": 7}
    assert v5.summary() == "-1 images" and v5.counts() == {"cat": 3, "puppy": 7}
    assert store.version(dataset, 2).counts() == {"cat": 6, "dog": 5}  # immutable: the old version is untouched
    merged = store.commit(dataset, 5, Edit(rename={"cat": "puppy"}))  # rename onto an existing class = merge
    assert merged.counts() == {"puppy": 10}


def test_versions_share_the_image_files(labelled):
    store, result = labelled
    dataset = result.version.dataset
    store.commit(dataset, 2, Edit(set_label={digests_of(store, dataset, "cat")[0]: "dog"}))
    objects = [p for p in (store.root / "objects").rglob("*") if p.is_file()]
    assert len(objects) == 11  # two versions of 11 images, each image stored once
    for digest in store.version(dataset).images:
        assert hashlib.sha256(store.object_path(digest).read_bytes()).hexdigest() == digest


def test_diff_names_each_kind_of_change(labelled):
    store, result = labelled
    dataset = result.version.dataset
    cats, dogs = digests_of(store, dataset, "cat"), digests_of(store, dataset, "dog")
    store.commit(dataset, 2, Edit(set_label={cats[0]: "dog", dogs[0]: None}, remove={dogs[1]}))
    changes = store_module.diff(store.version(dataset, 2).images, store.version(dataset, 3).images)
    assert changes["relabelled"] == [cats[0]] and changes["unlabelled"] == [dogs[0]] and changes["removed"] == [dogs[1]]
    assert store.version(dataset, 3).summary() == "-1 images, 1 relabelled, 1 back to the pool"


def test_export_then_reimport_gives_identical_counts(labelled, tmp_path):
    store, result = labelled
    dataset = result.version.dataset
    store.commit(dataset, 2, Edit(set_label={digests_of(store, dataset, "cat")[0]: "dog"}))
    exported = checkout.export_zip(store, dataset, 3, tmp_path / "out.zip")
    with zipfile.ZipFile(exported) as archive:
        assert all(name.split("/")[0] in ("cat", "dog") for name in archive.namelist())
    again = intake.import_labelled(store, exported, "again", tmp_path / "work")
    assert again.version.counts() == store.version(dataset, 3).counts() == {"cat": 5, "dog": 6}


def test_a_crash_while_writing_leaves_the_previous_version(labelled, monkeypatch):
    store, result = labelled
    dataset = result.version.dataset

    def crash(src, dst):
        raise OSError("disk pulled out mid-write")

    monkeypatch.setattr(store_module.os, "replace", crash)
    with pytest.raises(OSError):
        store.commit(dataset, 2, Edit(set_label={digests_of(store, dataset, "cat")[0]: "dog"}))
    monkeypatch.undo()
    assert store.head(dataset) == 2 and store.version(dataset).counts() == {"cat": 6, "dog": 5}
    assert not list((store.root / dataset / "versions").glob(".*.tmp"))  # no debris either


def test_a_killed_writer_process_leaves_a_readable_store(labelled):
    """A real process killed after the manifest but before HEAD moves: the new file is an orphan, never read."""
    store, result = labelled
    dataset = result.version.dataset
    script = (f"import os, sys; from core.data import store as s\n"
              f"real = os.replace\n"
              f"def die(a, b):\n"
              f"    real(a, b)\n"
              f"    if str(b).endswith('000003.json'): os._exit(9)\n"
              f"s.os.replace = die\n"
              f"st = s.DatasetStore({str(store.root)!r}); v = st.version({dataset!r})\n"
              f"st.commit({dataset!r}, 2, s.Edit(remove=set(list(v.images)[:3])))\n")
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, timeout=120)
    assert done.returncode == 9, done.stderr
    assert (store.root / dataset / "versions" / "000003.json").exists()
    assert store.head(dataset) == 2 and len(store.version(dataset).images) == 11
    v3 = store.commit(dataset, 2, Edit(remove={digests_of(store, dataset, "dog")[0]}))  # the next write works
    assert v3.number == 3 and len(v3.images) == 10


def test_a_stale_write_on_the_same_images_is_refused(labelled):
    store, result = labelled
    dataset, cat = result.version.dataset, digests_of(store, result.version.dataset, "cat")[0]
    store.commit(dataset, 2, Edit(set_label={cat: "dog"}))  # tab A
    with pytest.raises(StaleVersion, match="Someone else saved version 3"):
        store.commit(dataset, 2, Edit(set_label={cat: None}))  # tab B still looks at version 2
    assert store.version(dataset).images[cat]["label"] == "dog"


def test_a_stale_write_on_other_images_is_rebased_and_keeps_both(labelled):
    store, result = labelled
    dataset = result.version.dataset
    cats = digests_of(store, dataset, "cat")
    store.commit(dataset, 2, Edit(set_label={cats[0]: "dog"}))  # tab A
    merged = store.commit(dataset, 2, Edit(set_label={cats[1]: "dog"}))  # tab B, other image
    assert merged.number == 4 and merged.counts() == {"cat": 4, "dog": 7}


def test_renaming_a_class_someone_just_edited_is_refused(labelled):
    store, result = labelled
    dataset = result.version.dataset
    store.commit(dataset, 2, Edit(set_label={digests_of(store, dataset, "cat")[0]: "dog"}))
    with pytest.raises(StaleVersion):
        store.commit(dataset, 2, Edit(rename={"cat": "kitten"}))


def test_bad_class_names_are_refused(labelled):
    store, result = labelled
    for name in ("../evil", ".hidden", "a/b", "", "x" * 200):
        with pytest.raises(StoreError):
            store.commit(result.version.dataset, 2, Edit(rename={"cat": name}))


def test_unlabelled_uploads_skip_junk_report_duplicates_and_refuse_bombs(labelled, tmp_path):
    store, result = labelled
    dataset = result.version.dataset
    existing = next(iter(store.version(dataset).images))
    bomb = tmp_path / "bomb.png"
    Image.new("L", (12000, 12000)).save(bomb)  # 144 Mpx: over Pillow's bomb limit
    pool_zip = write_zip(tmp_path / "pool.zip", {"a/new1.jpg": jpeg_bytes((1, 2, 3)), "notes.txt": b"hello",
                                                 "__MACOSX/._new1.jpg": b"junk"})
    uploads = [("new2.png", _png((9, 9, 9))), ("same.jpg", store.object_path(existing).read_bytes()),
               ("broken.jpg", b"\xff\xd8 not really"), ("bomb.png", bomb.read_bytes()), ("pool.zip", pool_zip.read_bytes())]
    added = intake.add_uploads(store, dataset, 2, uploads, None, tmp_path / "work")
    assert added.added == 2 and len(added.version.pool()) == 2
    assert added.duplicates == ["same.jpg"]
    reasons = {s.path: s.reason for s in added.skipped}
    assert "decompression-bomb" in reasons["bomb.png"] and "not an image" in reasons["broken.jpg"]
    assert "not an image file" in reasons["notes.txt"]
    assert added.version.counts() == {"cat": 6, "dog": 5}


def test_a_zip_bomb_upload_is_refused_whole(labelled, tmp_path):
    store, result = labelled
    bomb = tmp_path / "zipbomb.zip"
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("zeros.jpg", b"\0" * (40 << 20))
    with pytest.raises(ArchiveRefused):
        intake.add_uploads(store, result.version.dataset, 2, [("b.zip", bomb.read_bytes())], None, tmp_path / "w")
    assert store.head(result.version.dataset) == 2


def test_camera_shot_goes_straight_into_a_class(labelled):
    store, result = labelled
    shot = intake.add_camera_shot(store, result.version.dataset, 2, jpeg_bytes((250, 250, 0)), "banana")
    assert shot.version.counts() == {"cat": 6, "dog": 5, "banana": 1} and shot.version.summary() == "+1 images, +1 classes"


def test_training_config_points_at_a_materialised_version(labelled):
    store, result = labelled
    dataset = result.version.dataset
    config = retrain.train_on(store, dataset, 2, TrainConfig(data="x", epochs=2))
    folder = Path(config.data)
    assert config.dataset_version == f"{dataset}@2" and config.epochs == 2
    assert {p.name: len(list(p.iterdir())) for p in folder.iterdir()} == {"cat": 6, "dog": 5}
    image = next(folder.rglob("*.jpg"))
    assert os.stat(image).st_nlink >= 2  # a hard link into the objects, not a copy
    assert retrain.retrain_config(config, store) is None  # nothing newer yet
    store.commit(dataset, 2, Edit(set_label={digests_of(store, dataset, "cat")[0]: "dog"}))
    newer = retrain.retrain_config(config, store)
    assert newer.dataset_version == f"{dataset}@3" and newer.epochs == 2 and newer.data != config.data


def test_cli_list_label_log_export(labelled, tmp_path):
    """Four real `python -m core dataset` processes (each imports torch: kept to four)."""
    store, result = labelled
    dataset = result.version.dataset

    def cli(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "core", "dataset", "--root", str(store.root), *args], cwd=ROOT,
                              capture_output=True, text=True, timeout=120, env={**os.environ})

    listed = json.loads(cli("list").stdout)
    assert [(d["id"], d["version"], d["classes"]) for d in listed] == [(dataset, 2, {"cat": 6, "dog": 5})]
    cat = digests_of(store, dataset, "cat")[0]
    store.commit(dataset, 2, Edit(set_label={digests_of(store, dataset, "dog")[0]: "cat"}))  # another tab
    labelled_out = cli("label", f"{dataset}@2", "dog", cat)  # based on 2, other image: rebased onto 3
    assert json.loads(labelled_out.stdout)["summary"] == "1 relabelled"
    log = json.loads(cli("log", dataset).stdout)
    assert [v["version"] for v in log] == [4, 3, 2, 1] and log[0]["classes"] == {"cat": 6, "dog": 5}
    exported = json.loads(cli("export", f"{dataset}@4", str(tmp_path / "v4.zip")).stdout)
    again = intake.import_labelled(store, Path(exported["path"]), "copy", tmp_path / "work")
    assert again.version.counts() == exported["classes"] == store.version(dataset, 4).counts()


def _png(colour) -> bytes:
    import io

    buffer = io.BytesIO()
    Image.new("RGB", (40, 40), colour).save(buffer, "PNG")
    return buffer.getvalue()
