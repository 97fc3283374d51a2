"""A dataset version leaves the store: as class folders for training, as a zip to take away. Tags and values are
written as Hugging Face's imagefolder layout instead: the images beside a metadata.csv (file_name and the task's
column, core.data.answers), which core.data.metadata reads back."""
from __future__ import annotations

import csv
import io
import os
import re
import shutil
import uuid
import zipfile
from pathlib import Path

from core.data.store import EXPORTS, UNSAFE_NAME, DatasetStore, Version

METADATA = "metadata.csv"


def layout(version: Version) -> dict[str, str]:
    """'<class>/<file name>' (tags and values: '<file name>') -> hash for every labelled image; clashing names get
    the hash's start."""
    out: dict[str, str] = {}
    folders = version.answer.folders
    for digest, entry in sorted(version.images.items(), key=lambda item: (str(item[1]["label"]), item[1]["name"])):
        if entry["label"] is None:
            continue
        name = safe_file_name(entry["name"], digest)
        folder = f"{entry['label']}/" if folders else ""
        relative = f"{folder}{name}"
        if relative in out or relative == METADATA:
            relative = f"{folder}{digest[:10]}_{name}"
        out[relative] = digest
    return out


def metadata_text(version: Version, files: dict[str, str]) -> str | None:
    """The metadata.csv beside the images of `files` (a layout) for tags and values; None for class folders."""
    answer = version.answer
    if answer.folders:
        return None
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["file_name", answer.column])
    for relative, digest in files.items():
        writer.writerow([relative, answer.cell(version.images[digest]["label"])])
    return out.getvalue()


def safe_file_name(name: str, digest: str) -> str:
    """The original base name, made safe for every file system; falls back on the hash."""
    base = UNSAFE_NAME.sub("_", name.replace("\\", "/").rsplit("/", 1)[-1]).lstrip(".").strip()[:120]
    return base or f"{digest[:16]}.jpg"


def materialize(store: DatasetStore, dataset: str, number: int) -> Path:
    """The labelled images of a version as `<class>/<name>`: hard links into the objects (no extra space),
    copies where links fail (another file system). Built aside and renamed: whole or absent."""
    version = store.version(dataset, number)
    target = store.root / dataset / "materialized" / f"v{number:06d}"
    if target.exists():
        return target
    tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}")
    tmp.mkdir(parents=True)
    files = layout(version)
    for relative, digest in files.items():
        destination = tmp / relative
        destination.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(store.object_path(digest), destination)
        except OSError:
            shutil.copyfile(store.object_path(digest), destination)
    text = metadata_text(version, files)
    if text is not None:
        (tmp / METADATA).write_text(text, encoding="utf-8")
    try:
        os.rename(tmp, target)
    except OSError:  # a concurrent twin finished first; its folder is identical
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def export_zip(store: DatasetStore, dataset: str, number: int, destination: Path | None = None) -> Path:
    """A plain zip of class folders (the layout the Data page accepts), written atomically, built anew each time.

    Without a destination it goes to the store's exports/ folder, which the clean-up empties of zips older than a
    day: a download is rebuilt on demand rather than kept as a full copy of the images."""
    version = store.version(dataset, number)
    destination = destination or store.root / EXPORTS / f"dataset-{dataset}-v{number}.zip"
    destination.parent.mkdir(parents=True, exist_ok=True)
    tmp = destination.with_name(f".{destination.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED) as archive:  # images are compressed already
            files = layout(version)
            for relative, digest in files.items():
                archive.write(store.object_path(digest), relative)
            text = metadata_text(version, files)
            if text is not None:
                archive.writestr(METADATA, text)
        os.replace(tmp, destination)
    finally:
        tmp.unlink(missing_ok=True)
    return destination


def version_of_folder(folder: str | Path, store: DatasetStore) -> str:
    """'<id>@<n>' when `folder` is a materialised version of this store (how a run trained from the Label
    page's "Train on this version" is traced back to its dataset), else ''."""
    path = Path(folder).resolve()
    match = re.fullmatch(r"v(\d{6})", path.name)
    if not match or path.parent.name != "materialized" or path.parent.parent.parent != store.root.resolve():
        return ""
    return f"{path.parent.parent.name}@{int(match.group(1))}"


def run_version(config: dict, store: DatasetStore) -> str:
    """The dataset version a run (its saved config) trained on, or '' for a plain zip or folder."""
    return config.get("dataset_version") or version_of_folder(config.get("data", ""), store)


def apply_review_marks(store: DatasetStore, data_folder: str | Path, records: list, marks: dict[str, dict],
                       name: str, work_dir: Path) -> Version:
    """The label audit's marks ({path: {"action": keep|relabel|remove, "label"}}) as a new dataset version.

    Data trained from a store version gets a new version of that dataset (based on the version it was, so a
    concurrent edit is rebased or refused as usual); a plain zip or folder first becomes a dataset of its own.
    """
    from core.data import intake
    from core.data.store import Edit

    ref = version_of_folder(data_folder, store)
    if ref:
        dataset, _, number = ref.partition("@")
        base = int(number)
    else:
        imported = intake.import_labelled(store, Path(data_folder), name, work_dir)
        dataset, base = imported.version.dataset, imported.version.number
    by_path = {record.path: record for record in records}
    edit = Edit(message="label review")
    for path, mark in marks.items():
        record = by_path.get(path)
        if record is None or mark.get("action") == "keep":
            continue
        if mark["action"] == "remove":
            edit.remove.add(record.sha256)
        elif mark["action"] == "relabel" and mark.get("label"):
            edit.set_label[record.sha256] = mark["label"]
    return store.commit(dataset, base, edit)
