"""Images into the dataset store: a labelled zip as version 1, loose images or zips into the pool or a class,
camera shots. The same safety as the Data page: archives through `archive.extract`, every image decoded with
the decompression-bomb guard, junk skipped with a reason, exact duplicates reported instead of stored twice.
"""
from __future__ import annotations

import hashlib
import io
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from core.data.archive import ArchiveLimits, Skipped, extract
from core.data.datasets import SYSTEM_FILES, inspect_data
from core.data.preprocessing import ImageRejected, is_image_name, load_rgb
from core.data.store import DatasetStore, Edit, StoreError, Version

MAX_IMAGE_BYTES = 64 << 20
MAX_IMAGES_PER_ADD = 20_000
# Unlabelled zips are read into memory image by image before hashing: a tighter total than the Data page's.
INTAKE_LIMITS = ArchiveLimits(max_total_bytes=2 << 30)
_VERIFY_SIZE = 64


@dataclass
class IntakeResult:
    version: Version
    added: int = 0
    skipped: list[Skipped] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)  # names of images the dataset already held

    def summary(self) -> str:
        parts = [f"{self.added} new image{'s' if self.added != 1 else ''} added"]
        if self.duplicates:
            parts.append(f"{len(self.duplicates)} already in the dataset (not added twice)")
        if self.skipped:
            parts.append(f"{len(self.skipped)} skipped")
        return ", ".join(parts) + "."


def import_labelled(store: DatasetStore, source: Path, name: str, work_dir: Path) -> IntakeResult:
    """A zip or folder of class folders becomes version 1 (created) and 2 (its images) of a new dataset.

    Goes through `datasets.inspect_data`, so its archive limits and image checks apply. Raises ArchiveRefused."""
    report = inspect_data(Path(source), work_dir)
    if not report.images:
        raise StoreError(report.error or "No usable images were found in this archive.")
    created = store.create(name, report.labels)
    edit, duplicates = Edit(message=f"imported {name}"), []
    for record in report.images:
        if record.sha256 in edit.add:
            duplicates.append(record.path)
            continue
        store.put_object((report.root / record.path).read_bytes(), record.sha256)
        edit.add[record.sha256] = {"label": record.label, "name": Path(record.path).name}
    version = store.commit(created.dataset, created.number, edit)
    return IntakeResult(version, len(edit.add), list(report.skipped), duplicates)


def new_pool(store: DatasetStore, name: str, classes: list[str]) -> Version:
    """An empty dataset to fill with unlabelled images and camera shots."""
    return store.create(name.strip() or "My images", classes)


def add_uploads(store: DatasetStore, dataset: str, base: int, uploads: list[tuple[str, bytes]],
                label: str | None, work_dir: Path, limits: ArchiveLimits = INTAKE_LIMITS) -> IntakeResult:
    """Loose images and zips of images (any folder layout) into the pool (label None) or one class."""
    candidates: list[tuple[str, bytes]] = []
    skipped: list[Skipped] = []
    with tempfile.TemporaryDirectory(dir=_ensure(work_dir)) as scratch:
        for index, (name, data) in enumerate(uploads):
            if name.lower().endswith(".zip"):
                archive = Path(scratch) / f"{index}.zip"
                archive.write_bytes(data)
                skipped += _zip_members(archive, Path(scratch) / str(index), limits, candidates)
            else:
                candidates.append((name, data))
    if len(candidates) > MAX_IMAGES_PER_ADD:
        raise StoreError(f"That is {len(candidates):,} files at once; please add at most {MAX_IMAGES_PER_ADD:,}.")
    return _add_checked(store, dataset, base, candidates, label, skipped)


def add_camera_shot(store: DatasetStore, dataset: str, base: int, data: bytes, label: str) -> IntakeResult:
    """What the camera button calls: one photo straight into a class."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return _add_checked(store, dataset, base, [(f"camera-{stamp}.jpg", data)], label, [])


def _add_checked(store: DatasetStore, dataset: str, base: int, candidates: list[tuple[str, bytes]],
                 label: str | None, skipped: list[Skipped]) -> IntakeResult:
    current = store.version(dataset)
    edit = Edit(message="added images" if label is None else f"added images to {label}")
    if label is not None:
        edit.add_classes.append(label)
    duplicates = []
    for name, data in candidates:
        problem = _problem(name, data)
        if problem:
            skipped.append(Skipped(name, problem))
            continue
        digest = hashlib.sha256(data).hexdigest()
        if digest in current.images or digest in edit.add:
            duplicates.append(name)
            continue
        store.put_object(data, digest)
        edit.add[digest] = {"label": label, "name": Path(name.replace("\\", "/")).name}
    version = store.commit(dataset, base, edit)
    return IntakeResult(version, len(edit.add), skipped, duplicates)


def _problem(name: str, data: bytes) -> str | None:
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    if base.startswith(".") or base.lower() in SYSTEM_FILES:
        return "hidden or system file; ignored"
    if not is_image_name(Path(base)):
        return f"not an image file ({Path(base).suffix or 'no extension'}); skipped"
    if not data:
        return "empty file; skipped"
    if len(data) > MAX_IMAGE_BYTES:
        return f"larger than {MAX_IMAGE_BYTES >> 20} MiB; skipped"
    try:
        load_rgb(io.BytesIO(data), min_size=_VERIFY_SIZE)  # full decode: truncated, corrupt and bombs are caught
    except ImageRejected as error:
        return f"{error}; skipped"
    return None


def _zip_members(archive: Path, target: Path, limits: ArchiveLimits, out: list[tuple[str, bytes]]) -> list[Skipped]:
    skipped = extract(archive, target, limits)
    for path in sorted(target.rglob("*")):
        relative = path.relative_to(target).as_posix()
        if "__MACOSX" in path.relative_to(target).parts:
            continue
        if path.is_symlink():
            skipped.append(Skipped(relative, "symbolic link; skipped"))
        elif path.is_file():
            out.append((relative, path.read_bytes()))
    shutil.rmtree(target, ignore_errors=True)
    return skipped


def _ensure(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    return folder
