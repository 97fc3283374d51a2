"""Images beside a metadata.csv / metadata.jsonl, as Hugging Face's `imagefolder` reads them.

A `file_name` column (a path relative to that file) and one target column: `label` (one label), `labels` (several,
';'-separated in csv, a JSON list in jsonl; empty = none of them) or `value` (a number). The column names the task;
`--target COLUMN` picks another column and `--task` overrides what it implies. Every row or file that cannot be used
is listed with its reason, never raised.
"""
from __future__ import annotations

import csv
import io
import json
import math
import unicodedata
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath
from typing import Any

from core.data.archive import Skipped
from core.i18n import _, quoted

NAMES = ("metadata.csv", "metadata.jsonl")
TASK_OF_COLUMN = {"label": "single", "labels": "multi", "value": "regression"}
MAX_METADATA_BYTES = 64 << 20
MAX_ROWS = 200_000


class MetadataRefused(ValueError):
    """The metadata file as a whole cannot be used; the message is one sentence."""


@dataclass(frozen=True)
class Target:
    label: str | None = None
    labels: tuple[str, ...] = ()
    value: float | None = None


@dataclass
class Rows:
    """What one metadata file says: each image's target by its path relative to the data root."""
    task: str
    column: str
    targets: dict[str, Target] = field(default_factory=dict)
    skipped: list[Skipped] = field(default_factory=list)


def find(folder: Path) -> Path | None:
    for name in NAMES:
        if (folder / name).is_file():
            return folder / name
    return None


def read(path: Path, root: Path, task: str | None = None, column: str | None = None) -> Rows:
    """The rows of `path` (csv or jsonl), keyed by the image's path relative to `root`. Raises MetadataRefused."""
    records = _records(path)
    if not records:
        raise MetadataRefused(_("{file} holds no rows.").format(file=quoted(path.name)))
    columns = list(records[0])
    if "file_name" not in columns:
        raise MetadataRefused(_("{file} has no 'file_name' column (it has: {columns}).").format(
            file=quoted(path.name), columns=", ".join(columns[:8])))
    wanted = {t: c for c, t in TASK_OF_COLUMN.items()}.get(task or "")
    column = column or (wanted if wanted in columns else next((c for c in TASK_OF_COLUMN if c in columns), None))
    if column is None or column not in columns:
        raise MetadataRefused(_("{file} has no target column: add 'label', 'labels' or 'value' (or name another "
                                "column as the target).").format(file=quoted(path.name)))
    rows = Rows(task or TASK_OF_COLUMN.get(column, "single"), column)
    base = path.parent.relative_to(root)
    for number, record in enumerate(records, start=2):
        _add(rows, record, number, base, path.name)
    return rows


def _records(path: Path) -> list[dict[str, Any]]:
    if path.stat().st_size > MAX_METADATA_BYTES:
        raise MetadataRefused(_("{file} is larger than {size} MiB.").format(file=quoted(path.name),
                                                                              size=MAX_METADATA_BYTES >> 20))
    text = path.read_bytes().decode("utf-8-sig", errors="replace")
    if path.suffix == ".jsonl":
        records = []
        for number, line in enumerate(text.splitlines(), start=1):
            if line.strip():
                try:
                    value = json.loads(line)
                except ValueError:
                    raise MetadataRefused(_("Line {line} of {file} is not JSON.").format(line=number, file=quoted(path.name))) \
                        from None
                if not isinstance(value, dict):
                    raise MetadataRefused(_("Line {line} of {file} is not a JSON object.").format(line=number,
                                                                                          file=quoted(path.name)))
                records.append(value)
    else:
        try:
            records = list(csv.DictReader(io.StringIO(text)))
        except csv.Error as error:
            raise MetadataRefused(_("{file} is not a readable CSV file ({error}).").format(file=quoted(path.name),
                                                                                          error=error)) from None
    if len(records) > MAX_ROWS:
        raise MetadataRefused(_("{file} has {count} rows; the limit is {limit}.").format(
            file=quoted(path.name), count=f"{len(records):,}", limit=f"{MAX_ROWS:,}"))
    return records


def _add(rows: Rows, record: dict[str, Any], number: int, base: Path, source: str) -> None:
    name = str(record.get("file_name") or "").strip().replace("\\", "/")
    where = _("{file} row {row}").format(file=source, row=number)
    relative = (PurePosixPath(base.as_posix()) / name).as_posix() if name else ""
    if not name or PurePosixPath(name).is_absolute() or ".." in PurePosixPath(name).parts:
        rows.skipped.append(Skipped(name or where, _("{where}: no usable file_name; skipped").format(where=where)))
        return
    if relative in rows.targets:
        rows.skipped.append(Skipped(relative, _("{where}: the same file is listed twice; the first row counts").format(
            where=where)))
        return
    target, problem = parse_target(record.get(rows.column), rows.task)
    if problem:
        rows.skipped.append(Skipped(relative, _("{where}: {problem}; skipped").format(where=where, problem=problem)))
        return
    rows.targets[relative] = target


def parse_target(raw: Any, task: str) -> tuple[Target, str | None]:
    """One cell as the task's target, or a reason it cannot be one."""
    if task == "regression":
        try:
            value = float(str(raw).strip().replace(",", ".")) if not isinstance(raw, (int, float)) else float(raw)
        except ValueError:
            return Target(), _("{value} is not a number").format(value=quoted(str(raw)[:40]))
        return (Target(value=value), None) if math.isfinite(value) else (Target(), _("the value is not a finite number"))
    if task == "multi":
        parts = raw if isinstance(raw, list) else [] if raw in (None, "") else str(raw).split(";")
        labels = tuple(sorted({clean_label(str(p)) for p in parts if str(p).strip()}))
        return Target(labels=labels), None
    label = clean_label(str(raw or ""))
    return (Target(label=label), None) if label else (Target(), _("no label"))


def clean_label(text: str) -> str:
    """A label as the user meant it: trimmed and in one Unicode form (NFC), so 'café' typed two ways is one."""
    return unicodedata.normalize("NFC", text.strip())


@dataclass
class Listed:
    """Every image the metadata files of a dataset name, with its target and its split (train/ val/ folders)."""
    task: str
    column: str
    targets: dict[str, tuple[Target, str | None]] = field(default_factory=dict)
    skipped: list[Skipped] = field(default_factory=list)


def listed_in(root: Path, split_dirs: dict[str, Path], task: str | None, column: str | None) -> Listed | None:
    """The dataset's metadata (at its root, or one file in each split folder), or None when it has none. A file that
    cannot be used at all becomes one skipped entry with its reason, so the report says why nothing was found."""
    places = {split: found for split, folder in split_dirs.items() if (found := find(folder))} if split_dirs else {}
    if not places and (found := find(root)):
        places = {None: found}
    if not places:
        return None
    listed = None
    for split, path in places.items():
        try:
            rows = read(path, root, task, column)
        except MetadataRefused as error:
            listed = listed or Listed(task or "single", column or "label")
            listed.skipped.append(Skipped(path.relative_to(root).as_posix(), str(error)))
            continue
        listed = listed or Listed(rows.task, rows.column)
        listed.targets.update({p: (t, split) for p, t in rows.targets.items()})
        listed.skipped += rows.skipped
    listed.skipped += _unlisted(root, places, listed)
    return listed


def _unlisted(root: Path, places: dict[str | None, Path], listed: Listed) -> list[Skipped]:
    """Image files beside the metadata that no row names; and rows whose file is not there."""
    from core.data.preprocessing import is_image_name

    found = {p.relative_to(root).as_posix() for folder in {path.parent for path in places.values()}
             for p in folder.rglob("*") if p.is_file() and is_image_name(p) and not p.name.startswith(".")}
    missing = [p for p in listed.targets if p not in found]
    for path in missing:
        del listed.targets[path]
    return ([Skipped(p, _("listed in the metadata, but there is no such file; skipped")) for p in missing]
            + [Skipped(p, _("no row in the metadata names this file; skipped")) for p in sorted(found - set(listed.targets))])


def tags_from_folders(images: list) -> list:
    """Class folders read as tags: the same picture (same content) in several class folders is one image carrying
    every one of their labels; the first path names it."""
    merged: dict[str, Any] = {}
    for record in images:
        first = merged.get(record.sha256)
        tags = tuple(sorted({record.label, *(first.labels if first else ())}))
        base = first or record
        merged[record.sha256] = replace(base, label=";".join(tags), labels=tags)
    return list(merged.values())
