"""Images into the dataset store: a labelled zip as version 1, loose images or zips into the pool or a class,
camera shots. The same safety as the Data page: archives through `archive.extract`, every image decoded with
the decompression-bomb guard, junk skipped with a reason, exact duplicates reported instead of stored twice.

Nothing is read whole into memory: zips unpack to the store's scratch folder (non-images skipped by name unread),
each file is checked by its first bytes and then decoded under the decode budget, hashed and copied into the
store from disk. One budget covers every file of one call, and the workspace quota is checked before anything
is stored.
"""
from __future__ import annotations

import tempfile
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from core import quota
from core.data import answers, names
from core.data.archive import ArchiveLimits, Skipped, extract
from core.data.datasets import SYSTEM_FILES, file_sha256, image_problem, inspect_data
from core.data.preprocessing import is_image_name
from core.data.store import DatasetStore, Edit, StoreError, Version
from core.i18n import _, ngettext

MAX_IMAGE_BYTES = 64 << 20
MAX_IMAGES_PER_ADD = 20_000
# Everything one "Add" brings in, loose files and unpacked zips together (each zip no longer has its own).
INTAKE_LIMITS = ArchiveLimits(max_total_bytes=2 << 30)
_KEEP_PENDING_EVERY = 200  # images: a long import refreshes its pending mark so the clean-up leaves it alone

Upload = tuple[str, "bytes | Path"]  # a name as the user gave it, and the bytes (a browser upload) or a file


@dataclass
class IntakeResult:
    version: Version
    added: int = 0
    skipped: list[Skipped] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)  # names of images the dataset already held

    def summary(self) -> str:
        parts = [ngettext("{count} new image added", "{count} new images added", self.added).format(count=self.added)]
        if self.duplicates:
            parts.append(_("{count} already in the dataset (not added twice)").format(count=len(self.duplicates)))
        if self.skipped:
            parts.append(_("{count} skipped").format(count=len(self.skipped)))
        return _("{parts}.").format(parts=_(", ").join(parts))


def import_labelled(store: DatasetStore, source: Path, name: str, work_dir: Path) -> IntakeResult:
    """A zip or folder of class folders (or of images beside a metadata.csv: tags, values) becomes version 1 (created)
    and 2 (its images) of a new dataset, which keeps the task the data has.

    Goes through `datasets.inspect_data`, so its archive limits and image checks apply. The dataset is listed only
    once its images are committed: an import killed half-way leaves nothing in the list. Raises ArchiveRefused."""
    report = inspect_data(Path(source), work_dir)
    if not report.images:
        raise StoreError(report.error or _("No usable images were found in this archive."))
    refused = next((problem for label in report.labels if (problem := names.folder_refusal(label))), None)
    if refused:
        raise StoreError(refused)
    unique = {record.sha256: record for record in reversed(report.images)}  # the first of duplicates is kept
    _check_room(store, sum((report.root / r.path).stat().st_size for r in unique.values()
                           if not store.object_path(r.sha256).exists()))
    created = store.create(name, report.labels, pending=True, task=report.task)
    answer = answers.of(report.task)
    edit, duplicates = Edit(message=f"imported {name}"), []
    for count, record in enumerate(report.images, 1):
        if record.sha256 in edit.add:
            duplicates.append(record.path)
            continue
        store.put_file(report.root / record.path, record.sha256)
        edit.add[record.sha256] = {"label": answer.from_record(record), "name": Path(record.path).name}
        if count % _KEEP_PENDING_EVERY == 0:
            store.still_pending(created.dataset)
    version = store.commit(created.dataset, created.number, edit)
    store.publish(created.dataset)
    return IntakeResult(version, len(edit.add), list(report.skipped), duplicates)


def new_pool(store: DatasetStore, name: str, classes: list[str]) -> Version:
    """An empty dataset to fill with unlabelled images and camera shots."""
    return store.create(name.strip() or "My images", classes)


def add_uploads(store: DatasetStore, dataset: str, base: int, uploads: list[Upload], label: str | None,
                work_dir: Path | None = None, limits: ArchiveLimits = INTAKE_LIMITS) -> IntakeResult:
    """Loose images and zips of images (any folder layout) into the pool (label None) or one class.

    Each upload is (name, bytes) or (name, path of a file): a path is read from disk, never into memory.
    `limits.max_total_bytes` bounds the whole call. Files are unpacked in the store's scratch folder (work_dir is
    no longer used: kept so callers need not change)."""
    skipped: list[Skipped] = []
    _check_room(store, 0)  # a full workspace refuses before anything is unpacked
    with tempfile.TemporaryDirectory(dir=store.scratch()) as scratch:
        files = _gather(uploads, Path(scratch), limits, skipped)
        if len(files) > MAX_IMAGES_PER_ADD:
            raise StoreError(_("That is {count} files at once; please add at most {most}.").format(
                count=f"{len(files):,}", most=f"{MAX_IMAGES_PER_ADD:,}"))
        return _add_files(store, dataset, base, files, label, skipped)


def add_camera_shot(store: DatasetStore, dataset: str, base: int, data: bytes, label: str) -> IntakeResult:
    """What the camera button calls: one photo straight into a class."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return add_uploads(store, dataset, base, [(f"camera-{stamp}.jpg", data)], label)


def _gather(uploads: list[Upload], scratch: Path, limits: ArchiveLimits, skipped: list[Skipped]) -> list[tuple[str, Path]]:
    """Every candidate image of the uploads as (name, file on disk); what is not wanted goes to `skipped`."""
    files: list[tuple[str, Path]] = []
    left = limits.max_total_bytes
    for index, (name, data) in enumerate(uploads):
        if name.lower().endswith(".zip"):
            archive = _on_disk(data, scratch / f"{index}.zip")
            left -= _unpacked_size(archive, left, limits)
            target = scratch / str(index)
            skipped += extract(archive, target, limits, unwanted=_unwanted)
            files += _unpacked(target, skipped)
            continue
        size = len(data) if isinstance(data, (bytes, bytearray)) else Path(data).stat().st_size
        reason = _unwanted(name)
        if reason is None and size > MAX_IMAGE_BYTES:
            reason = f"larger than {MAX_IMAGE_BYTES >> 20} MiB; skipped"
        if reason:
            skipped.append(Skipped(name, reason))
            continue
        if size > left:
            raise StoreError(_over_budget(limits))
        left -= size
        files.append((name, _on_disk(data, scratch / f"{index}.upload")))
    return files


def _add_files(store: DatasetStore, dataset: str, base: int, files: list[tuple[str, Path]], label: str | None,
               skipped: list[Skipped]) -> IntakeResult:
    """Check and hash every file first, then (if the workspace has room for the new ones) store and commit."""
    current = store.version(dataset)
    edit = Edit(message="added images" if label is None else f"added images to {label}")
    if label is not None:
        edit.add_classes.append(label)
    duplicates, new = [], {}
    for name, path in files:
        problem = image_problem(path)
        if problem:
            skipped.append(Skipped(name, f"{problem}; skipped"))
            continue
        digest = file_sha256(path)
        if digest in current.images or digest in new:
            duplicates.append(name)
            continue
        new[digest] = path
        edit.add[digest] = {"label": label, "name": Path(name.replace("\\", "/")).name}
    _check_room(store, sum(p.stat().st_size for d, p in new.items() if not store.object_path(d).exists()))
    for digest, path in new.items():
        store.put_file(path, digest)
    version = store.commit(dataset, base, edit)
    return IntakeResult(version, len(edit.add), skipped, duplicates)


def _unwanted(name: str) -> str | None:
    """Why a file is not even looked at, from its name alone (None: it may be an image)."""
    parts = name.replace("\\", "/").split("/")
    base = parts[-1]
    if "__MACOSX" in parts or base.startswith(".") or base.lower() in SYSTEM_FILES:
        return _("hidden or system file; ignored")
    if not is_image_name(Path(base)):
        return _("not an image file ({suffix}); skipped").format(suffix=Path(base).suffix or _("no extension"))
    return None


def _unpacked(target: Path, skipped: list[Skipped]) -> list[tuple[str, Path]]:
    """The files an extraction left, by their names in the archive (extract writes no links, but one may hide)."""
    out = []
    for path in sorted(target.rglob("*")):
        relative = path.relative_to(target).as_posix()
        if path.is_symlink():
            skipped.append(Skipped(relative, _("symbolic link; skipped")))
        elif path.is_file():
            if path.stat().st_size > MAX_IMAGE_BYTES:
                skipped.append(Skipped(relative, _("larger than {size} MiB; skipped").format(size=MAX_IMAGE_BYTES >> 20)))
            else:
                out.append((relative, path))
    return out


def _unpacked_size(archive: Path, left: int, limits: ArchiveLimits) -> int:
    """What the zip declares it unpacks to (checked again while unpacking); refused past what the call has left."""
    try:
        with zipfile.ZipFile(archive) as zf:
            declared = sum(info.file_size for info in zf.infolist())
    except (zipfile.BadZipFile, OSError):
        return 0  # extract refuses it with its own sentence
    if declared > left:
        raise StoreError(_over_budget(limits))
    return declared


def _over_budget(limits: ArchiveLimits) -> str:
    return _("These files unpack to more than {size} together, the most one addition takes; add them in smaller "
             "parts.").format(size=quota.size_text(limits.max_total_bytes))


def _on_disk(data: bytes | Path, scratch_file: Path) -> Path:
    if isinstance(data, (bytes, bytearray)):
        scratch_file.write_bytes(data)
        return scratch_file
    return Path(data)


def _check_room(store: DatasetStore, incoming: int) -> None:
    try:
        quota.check(store.root, incoming)
    except quota.QuotaExceeded as error:
        raise StoreError(str(error)) from None
    quota.added(store.root, incoming)
