"""From a zip or folder a user gives us to labelled image records: layout, checks, the split."""
from __future__ import annotations

import copy
import dataclasses
import hashlib
import os
import random
import shutil
import tempfile
import uuid
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache
from pathlib import Path

from PIL import Image

from core.data import metadata, names
from core.data.archive import ArchiveLimits, Skipped, extract
from core.data.preprocessing import NOT_AN_IMAGE, ImageRejected, is_image_name, load_rgb, sniffed_format
from core.data.report import DataReport, ImageRecord, judge
from core.i18n import _, keeping_language, language

SPLIT_NAMES = {"train": "train", "training": "train", "val": "val", "valid": "val", "validation": "val",
               "test": "test", "testing": "test"}
SYSTEM_FILES = {"thumbs.db", "desktop.ini", ".ds_store"}
PARTIAL_PREFIX = ".partial-"  # extractions in progress (or left by a crash: the clean-up removes old ones)
_VERIFY_SIZE = 64  # decode JPEGs at a reduced scale when only checking that they open


def materialize(source: Path, work_dir: Path, limits: ArchiveLimits = ArchiveLimits()) -> Path:
    """A folder of the data: the folder itself, or the zip extracted once into work_dir (by content hash).

    Extraction happens in a private folder that is renamed into place in one step, so two requests for the
    same upload never see each other's half-written files: the second to finish uses the first one's folder.
    """
    if source.is_dir():
        return source
    stat = source.stat()
    digest = _zip_digest(str(source.resolve()), stat.st_size, stat.st_mtime_ns)
    target = work_dir / "datasets" / digest
    marker = _marker(target)
    if target.exists() and marker.exists():
        _touch(marker)  # its age is what the clean-up reads as "last used"
        return target
    if target.exists():  # left by an interrupted extraction of an older version: move it aside, then drop it
        _discard(target)
    private = Path(tempfile.mkdtemp(prefix=PARTIAL_PREFIX, dir=_made(target.parent)))
    try:
        skipped = extract(source, private / digest, limits)
        staged = _marker(private / digest)
        staged.write_text("\n".join(f"{s.path}\t{s.reason}" for s in skipped), encoding="utf-8")
        os.replace(staged, marker)  # same content whoever writes it; in place before the folder is
        try:
            os.rename(private / digest, target)
        except OSError:
            if not (target.exists() and marker.exists()):
                raise  # not a lost race: a real failure
    finally:
        shutil.rmtree(private, ignore_errors=True)
    return target


def previously_skipped(folder: Path) -> list[Skipped]:
    marker = _marker(folder)
    if not marker.exists():
        return []
    lines = [line.split("\t", 1) for line in marker.read_text(encoding="utf-8").splitlines() if "\t" in line]
    return [Skipped(path, reason) for path, reason in lines]


def inspect_data(source: Path, work_dir: Path | None = None, limits: ArchiveLimits = ArchiveLimits(),
                 task: str | None = None, target: str | None = None) -> DataReport:
    """Everything a user needs to know about their data before training. `task` ("single", "multi", "regression")
    and `target` (a metadata column) override what the data implies. Raises ArchiveRefused."""
    folder = materialize(Path(source), Path(work_dir or Path(source).parent / ".transferlab"), limits)
    report = scan(folder, task, target)
    report.skipped = previously_skipped(folder) + report.skipped
    return report


def scan(folder: Path, task: str | None = None, target: str | None = None) -> DataReport:
    """The report for a folder; remembered in-process until any file in it changes (a copy: callers edit it), per
    language, since its warnings are sentences in the reader's language."""
    return copy.deepcopy(_scan_version(_signature(folder), task, target, language()))


@lru_cache(maxsize=8)
def _scan_version(signature: tuple, task: str | None, target: str | None, lang: str) -> DataReport:
    return _scan(Path(signature[0]), task, target)


def _signature(folder: Path) -> tuple:
    """Every file's path, size and modification time: cheap to read, changes with any edit."""
    entries = []
    for directory, _folders, files in os.walk(folder):
        for name in files:
            stat = os.stat(os.path.join(directory, name), follow_symlinks=False)
            entries.append((os.path.join(directory, name), stat.st_size, stat.st_mtime_ns))
    return (str(folder.resolve()), tuple(sorted(entries)))


def _scan(folder: Path, task: str | None = None, target: str | None = None) -> DataReport:
    root = _unwrap(folder)
    split_dirs = _split_dirs(root)
    listed = metadata.listed_in(root, split_dirs, task, target)
    if listed is not None:
        return judge(_check_listed(root, listed))
    if task == "regression":
        report = DataReport(root, "empty", task="regression", target=target or "value")
        report.error = _("Numbers to predict come from a metadata.csv beside the images, with a file_name column "
                         "and a value column; class folders hold labels, not numbers.")
        return report
    candidates: list[tuple[Path, str, str | None]] = []
    skipped: list[Skipped] = []
    if split_dirs:
        layout = "split_folders"
        for split, directory in split_dirs.items():
            _collect(directory, root, split, candidates, skipped)
    else:
        layout = "class_folders"
        _collect(root, root, None, candidates, skipped)
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        checked = list(pool.map(keeping_language(lambda c: _check(c, root)), candidates))
    images = [item for item in checked if isinstance(item, ImageRecord)]
    skipped += [item for item in checked if isinstance(item, Skipped)]
    if task == "multi":  # one picture in several class folders carries all of their labels
        return judge(DataReport(root, layout if images else "empty", metadata.tags_from_folders(images), skipped,
                                task="multi"))
    return judge(DataReport(root, layout if images else "empty", images, skipped))


def _check_listed(root: Path, listed: metadata.Listed) -> DataReport:
    """The images a metadata file names, checked like any other, each with the target its row gives."""
    candidates = [(root / path, target, split) for path, (target, split) in listed.targets.items()]
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        checked = list(pool.map(keeping_language(lambda c: _check((c[0], c[1].label or ";".join(c[1].labels), c[2]),
                                                                   root)), candidates))
    images, skipped = [], list(listed.skipped)
    for (_path, target, _split), item in zip(candidates, checked):
        if isinstance(item, ImageRecord):
            images.append(dataclasses.replace(item, labels=target.labels, value=target.value))
        else:
            skipped.append(item)
    return DataReport(root, "metadata" if images else "empty", images, skipped, task=listed.task, target=listed.column)


def split(report: DataReport, val_fraction: float = 0.2, seed: int = 0) -> tuple[list[ImageRecord], list[ImageRecord]]:
    """Train and validation records: the given val/ folder, else a seeded split, stratified per class for one
    label per image (tags and values: one seeded random draw)."""
    if any(r.split == "val" for r in report.images):
        return ([r for r in report.images if r.split == "train"], [r for r in report.images if r.split == "val"])
    rng = random.Random(seed)
    train, val = [], []
    groups = report.labels if report.task == "single" else [None]
    for label in groups:
        members = sorted((r for r in report.images if label is None or r.label == label), key=lambda r: r.path)
        rng.shuffle(members)
        n_val = max(1, round(val_fraction * len(members))) if len(members) >= 2 else 0
        val += members[:n_val]
        train += members[n_val:]
    return train, val


def _marker(folder: Path) -> Path:
    """Written beside the extracted folder once extraction completed; lists what was skipped."""
    return folder.with_name(folder.name + ".skipped.tsv")


def _touch(path: Path) -> None:
    try:
        os.utime(path)
    except OSError:
        pass  # a read-only store still serves; only the clean-up's age estimate suffers


def _made(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _discard(folder: Path) -> None:
    aside = folder.with_name(f"{PARTIAL_PREFIX}{uuid.uuid4().hex}")
    try:
        os.rename(folder, aside)
    except OSError:
        return  # another request moved it first
    shutil.rmtree(aside, ignore_errors=True)


def _unwrap(folder: Path) -> Path:
    """Step into lone wrapping folders (my_photos.zip -> my_photos/ -> classes)."""
    while True:
        entries = [e for e in folder.iterdir() if not _is_junk(e.name)]
        dirs = [e for e in entries if e.is_dir() and not e.is_symlink()]
        if len(dirs) == 1 and len(entries) == 1 and any(
                e.is_dir() and not _is_junk(e.name) for e in dirs[0].iterdir()):
            folder = dirs[0]  # a lone folder of folders wraps the data; a lone folder of images is one class
        else:
            return folder


def _split_dirs(root: Path) -> dict[str, Path]:
    found = {SPLIT_NAMES[d.name.lower()]: d for d in root.iterdir()
             if d.is_dir() and d.name.lower() in SPLIT_NAMES}
    return found if "train" in found else {}


def _collect(directory: Path, root: Path, split: str | None, out: list, skipped: list[Skipped]) -> None:
    for path in sorted(directory.rglob("*")):
        relative = path.relative_to(root).as_posix()
        depth_parts = path.relative_to(directory).parts
        if any(_is_junk(part) for part in path.relative_to(root).parts):
            if path.is_file() or path.is_symlink():
                skipped.append(Skipped(relative, _("hidden or system file; ignored")))
            continue
        if path.is_symlink():
            skipped.append(Skipped(relative, _("symbolic link; skipped")))
        elif path.is_dir():
            continue
        elif len(depth_parts) < 2:
            skipped.append(Skipped(relative, _("not inside a class folder; skipped")))
        elif not is_image_name(path):
            skipped.append(Skipped(relative, _("not an image file ({suffix}); skipped").format(
                suffix=path.suffix or _("no extension"))))
        else:
            out.append((path, names.normalize(depth_parts[0]), split))  # café from a Mac and from Windows: one class


def _check(candidate: tuple[Path, str, str | None], root: Path) -> ImageRecord | Skipped:
    path, label, split_name = candidate
    relative = path.relative_to(root).as_posix()
    problem = image_problem(path)
    if problem:
        return Skipped(relative, _("{problem}; skipped").format(problem=problem))
    with Image.open(path) as header:  # the stored size, not the reduced-scale decode's
        width, height = header.size
    return ImageRecord(relative, label, split_name, file_sha256(path), width, height)


def image_problem(path: Path) -> str | None:
    """Why the file at `path` is no usable image, or None. Read from disk (never whole into memory): its first
    bytes must announce an image format, then it must decode fully (truncated, corrupt, bombs, strips refused)."""
    with open(path, "rb") as handle:
        head = handle.read(12)
    if not head:
        return _("empty file")
    if sniffed_format(head) is None:
        return _(NOT_AN_IMAGE)
    try:
        load_rgb(path, min_size=_VERIFY_SIZE, name="")  # the reason names no file: the caller lists its own name
    except ImageRejected as error:
        return str(error)
    return None


def file_sha256(path: Path) -> str:
    """The content hash, read from disk in chunks."""
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def _is_junk(name: str) -> bool:
    return name.startswith(".") or name == "__MACOSX" or name.lower() in SYSTEM_FILES


@lru_cache(maxsize=64)
def _zip_digest(path: str, size: int, modified_ns: int) -> str:
    """Hashing a large upload takes seconds, and every training start inspects its data: once per version."""
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()[:16]
