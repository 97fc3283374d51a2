"""After a SIGKILL the dataset store shows whole versions or nothing, and the clean-up removes what was left:
unfinished imports, half-built folders, temporaries, old exports, images no version refers to (never young ones),
and prediction-log rows older than the retention."""
from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from core import maintenance
from core.data import checkout, intake
from core.data.store import DatasetStore, Edit, StoreError
from core.serving.predlog import PredictionLog
from tests.conftest import class_members, jpeg_bytes, write_zip

ROOT = Path(__file__).resolve().parent.parent
HOUR, DAY = 3600, 24 * 3600


def aged(path: Path, seconds: float) -> Path:
    when = time.time() - seconds
    for item in [path, *path.rglob("*")] if path.is_dir() else [path]:
        os.utime(item, (when, when), follow_symlinks=False)
    return path


@pytest.fixture
def home(tmp_path) -> Path:
    return tmp_path / "home"


@pytest.fixture
def store(home) -> DatasetStore:
    return DatasetStore(home / "workspaces" / ("a" * 64) / "datasets")


def removed_kinds(removals) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for removal in removals:
        out.setdefault(removal.kind, set()).add(Path(removal.path).name)
    return out


def test_a_killed_import_leaves_no_dataset_and_the_clean_up_takes_its_images(store, home, tmp_path):
    source = write_zip(tmp_path / "pets.zip", class_members("", {"cat": 10, "dog": 10}))
    script = ("import os, sys; from pathlib import Path\n"
              "from core.data import intake, store\n"
              "real, count = os.replace, [0]\n"
              "def replace_then_die(source, target):\n"
              "    real(source, target)\n"
              "    count[0] += '/objects/' in str(target)\n"
              "    if count[0] == 12: os._exit(9)  # SIGKILL-like after the 12th image: no clean-up code runs\n"
              "store.os.replace = replace_then_die\n"
              "intake.import_labelled(store.DatasetStore(Path(sys.argv[1])), Path(sys.argv[2]), 'pets', "
              "Path(sys.argv[3]))\n")
    done = subprocess.run([sys.executable, "-c", script, str(store.root), str(source), str(tmp_path / "work")],
                          cwd=ROOT, capture_output=True, timeout=300)
    assert done.returncode == 9, done.stderr
    assert store.datasets() == []  # not an empty 'pets' in the list
    [unfinished] = [p for p in store.root.iterdir() if re.fullmatch(r"[0-9a-f]{12}", p.name)]
    assert len(list(store.root.glob("objects/*/*"))) == 12
    assert removed_kinds(maintenance.collect(home, dry_run=True)) == {}  # all of it younger than an hour
    later = removed_kinds(maintenance.collect(home, now=time.time() + 2 * HOUR))
    assert later == {"unfinished import": {unfinished.name}} and not unfinished.exists()
    assert len(list(store.root.glob("objects/*/*"))) == 12  # unreferenced, but younger than a day
    next_day = removed_kinds(maintenance.collect(home, now=time.time() + 2 * DAY))
    assert len(next_day["unreferenced image"]) == 12 and not list(store.root.glob("objects/*/*"))
    again = intake.import_labelled(store, source, "pets", tmp_path / "work")  # the next import works
    assert [v.name for v in store.datasets()] == ["pets"] and again.added == 20


def test_half_built_folders_temporaries_and_old_exports_go_and_fresh_ones_stay(store, home, tmp_path):
    imported = intake.import_labelled(store, write_zip(tmp_path / "p.zip", class_members("", {"cat": 3, "dog": 3})),
                                      "pets", tmp_path / "work")
    dataset, folder = imported.version.dataset, store.root / imported.version.dataset
    half_built = _made(folder / "materialized" / ".v000002.1a2b3c4d")
    _file(half_built / "cat" / "img_0.jpg")
    debris = {
        "half version": aged(half_built, 2 * HOUR),
        "manifest tmp": aged(_file(folder / "versions" / ".000003.json.1a2b3c4d.tmp"), 2 * HOUR),
        "head tmp": aged(_file(folder / ".HEAD.json.1a2b3c4d.tmp"), 2 * HOUR),
        "object tmp": aged(_file(store.root / "objects" / "ab" / ".abcd.1a2b3c4d.tmp"), 2 * HOUR),
        "scratch": aged(_made(store.root / ".scratch" / "tmpkilled"), 2 * HOUR),
        "export": aged(checkout.export_zip(store, dataset, 2, store.root / "exports" / "old.zip"), 2 * DAY),
        "page export": aged(_file(store.root.parent / "uploads" / f"dataset-{dataset}-v2.zip"), 2 * DAY),
    }
    fresh = [_made(folder / "materialized" / ".v000003.5e6f7a8b"), _made(store.root / ".scratch" / "tmpnow"),
             checkout.export_zip(store, dataset, 1, store.root / "exports" / "fresh.zip"),
             checkout.materialize(store, dataset, 2)]
    removals = maintenance.collect(home)
    assert {Path(r.path) for r in removals} == set(debris.values())
    assert {r.kind for r in removals} == {"temporary file", "dataset export"}
    assert all(path.exists() for path in fresh) and not any(path.exists() for path in debris.values())
    assert [v.number for v in store.log(dataset)] == [2, 1] and store.version(dataset).counts() == {"cat": 3, "dog": 3}


def test_only_old_images_that_no_version_refers_to_are_collected(store, home, tmp_path):
    kept = intake.import_labelled(store, write_zip(tmp_path / "a.zip", class_members("", {"cat": 3, "dog": 3})),
                                  "kept", tmp_path / "work")
    shared = next(iter(kept.version.images))
    members = {"owl/a.jpg": jpeg_bytes((250, 1, 1)), "owl/b.jpg": jpeg_bytes((1, 250, 1)),
               "cat/shared.jpg": store.object_path(shared).read_bytes()}
    doomed = intake.import_labelled(store, write_zip(tmp_path / "b.zip", members), "doomed", tmp_path / "work")
    removed_from_kept = sorted(kept.version.images)[-1]  # only in version 2 once version 3 drops it
    store.commit(kept.version.dataset, 2, Edit(remove={removed_from_kept}))
    shutil.rmtree(store.root / doomed.version.dataset)  # a dataset deleted (its images stay until collected)
    for image in store.root.glob("objects/*/*"):
        aged(image, 2 * DAY)
    young = jpeg_bytes((7, 7, 7))
    store.put_object(young, hashlib.sha256(young).hexdigest())  # a writer's, not committed yet
    removals = maintenance.collect(home)
    owls = {h for h, e in doomed.version.images.items() if e["label"] == "owl"}
    assert removed_kinds(removals) == {"unreferenced image": owls}
    assert {p.name for p in store.root.glob("objects/*/*")} == set(kept.version.images) | {
        hashlib.sha256(young).hexdigest()}
    assert [v.name for v in store.datasets()] == ["kept"]


def test_a_deleted_dataset_leaves_the_list_and_an_export_is_built_in_the_stores_exports(store, tmp_path):
    one = intake.import_labelled(store, write_zip(tmp_path / "a.zip", class_members("", {"cat": 2, "dog": 2})),
                                 "one", tmp_path / "work")
    exported = checkout.export_zip(store, one.version.dataset, 2)
    assert exported == store.root / "exports" / f"dataset-{one.version.dataset}-v2.zip" and exported.is_file()
    store.delete(one.version.dataset)
    assert store.datasets() == [] and not (store.root / one.version.dataset).exists()
    with pytest.raises(StoreError):
        store.delete(one.version.dataset)


def test_an_image_put_again_is_young_again_so_a_writer_never_loses_it(store):
    data = jpeg_bytes((3, 3, 3))
    digest = hashlib.sha256(data).hexdigest()
    store.put_object(data, digest)
    aged(store.object_path(digest), 3 * DAY)
    store.put_object(data, digest)  # someone adds the same picture again: about to be committed
    assert time.time() - store.object_path(digest).stat().st_mtime < HOUR


def test_the_command_line_store_in_the_home_datasets_folder_is_not_taken_for_old_extractions(home, tmp_path):
    store = DatasetStore(home / "datasets")  # `python -m core dataset` without --root
    imported = intake.import_labelled(store, write_zip(tmp_path / "a.zip", class_members("", {"cat": 2, "dog": 2})),
                                      "cli", tmp_path / "work")
    aged(store.root, 60 * DAY)
    assert maintenance.collect(home) == []
    assert store.version(imported.version.dataset).counts() == {"cat": 2, "dog": 2}


def test_prediction_log_rows_older_than_the_retention_are_removed(home, monkeypatch):
    monkeypatch.setenv("TRANSFERLAB_RETENTION_DAYS", "30")
    logs = [home / "serving" / "run1.sqlite", home / "workspaces" / ("b" * 64) / "serving" / "run2.sqlite"]
    now = time.time()
    for log_path in logs:
        log_path.parent.mkdir(parents=True)
        log = PredictionLog(f"sqlite:///{log_path}")
        log.write([_row(f"old{i}", now - 40 * DAY) for i in range(3)] + [_row("new", now - DAY)])
        log.close()
    planned = maintenance.collect(home, dry_run=True)
    assert [(r.kind, r.rows) for r in planned] == [("prediction log rows", 3)] * 2
    maintenance.collect(home)
    for log_path in logs:
        log = PredictionLog(f"sqlite:///{log_path}", create=False)
        assert [row["id"] for row in log.rows()] == ["new"]
        log.close()


def _row(identifier: str, when: float) -> dict:
    return {"id": identifier, "time": when, "model": "run", "content_hash": "0" * 64, "width": 1, "height": 1,
            "top_k": [{"label": "a", "probability": 1.0}], "label": "a", "confidence": 1.0, "unsure": False,
            "unknown": False, "ood_score": None, "latency_ms": 1.0, "client": "", "kept_file": None}


def _made(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _file(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"partial")
    return path
