"""The audit's marks applied to a copy of the data: one label per image as renamed class folders; tags and values
as the dataset's own metadata.csv / metadata.jsonl with the changed rows rewritten and the removed ones left out.

The original is never touched: the copy links its images (no extra space) and writes new metadata files.
"""
from __future__ import annotations

import csv
import io
import json
import os
import shutil
import uuid
import zipfile
from pathlib import Path, PurePosixPath
from typing import Any

from core.data import metadata
from core.data.report import DataReport, ImageRecord

Marks = dict[str, dict[str, Any]]


def corrected_path(record: ImageRecord, new_label: str) -> str:
    """The record's path with its class folder renamed: [split/]label/... -> [split/]new_label/..."""
    parts = list(PurePosixPath(record.path).parts)
    position = 1 if record.split is not None and len(parts) > 2 else 0
    parts[position] = new_label
    return "/".join(parts)


def corrected_zip(root: Path, records: list[ImageRecord], marks: Marks, destination: Path) -> Path:
    """A zip of class-folder data with the marks applied: removed images left out, relabelled ones in their new
    folder."""
    taken: set[str] = set()
    tmp = destination.with_name(destination.name + ".tmp")
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED) as archive:  # images are compressed already
        for record in records:
            mark = marks.get(record.path, {})
            if mark.get("action") == "remove":
                continue
            name = corrected_path(record, mark["label"]) if mark.get("action") == "relabel" and mark.get(
                "label") else record.path
            name = _unique(name, taken)
            archive.write(root / record.path, name)
    tmp.replace(destination)
    return destination


def _unique(name: str, taken: set[str]) -> str:
    path, n = PurePosixPath(name), 1
    while name in taken:
        name = str(path.with_name(f"{path.stem}_{n}{path.suffix}"))
        n += 1
    taken.add(name)
    return name


def corrected_metadata_zip(report: DataReport, marks: Marks, destination: Path) -> Path:
    """A zip of metadata data (tags, values) with the marks applied, in the layout it came in."""
    kept, rewritten = corrected_files(report, marks)
    tmp = destination.with_name(destination.name + ".tmp")
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED) as archive:
        for relative in kept:
            archive.write(report.root / relative, relative)
        for relative, text in rewritten.items():
            archive.writestr(relative, text)
    tmp.replace(destination)
    return destination


def corrected_copy(report: DataReport, marks: Marks, destination: Path) -> Path:
    """A folder of metadata data (tags, values) with the marks applied: images hard-linked (copied where links
    fail), metadata files rewritten. Built aside and renamed: whole or absent."""
    kept, rewritten = corrected_files(report, marks)
    tmp = destination.with_name(f".{destination.name}.{uuid.uuid4().hex[:8]}")
    tmp.mkdir(parents=True)
    try:
        for relative in kept:
            target = tmp / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.link(report.root / relative, target)
            except OSError:
                shutil.copyfile(report.root / relative, target)
        for relative, text in rewritten.items():
            (tmp / relative).parent.mkdir(parents=True, exist_ok=True)
            (tmp / relative).write_text(text, encoding="utf-8")
        os.rename(tmp, destination)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return destination


def corrected_files(report: DataReport, marks: Marks) -> tuple[list[str], dict[str, str]]:
    """(the files kept as they are, the metadata files rewritten: their path -> new text), relative to the root.
    The metadata files are those the scan reads: at the root and in its first-level (split) folders."""
    removed = {path for path, mark in marks.items() if mark.get("action") == "remove"}
    kept, rewritten = [], {}
    for path in sorted(report.root.rglob("*")):
        if not path.is_file() or path.is_symlink():
            continue
        relative = path.relative_to(report.root).as_posix()
        if path.name in metadata.NAMES and len(PurePosixPath(relative).parts) <= 2:
            base = PurePosixPath(relative).parent
            text = path.read_bytes().decode("utf-8-sig", errors="replace")
            rewrite = _rewrite_jsonl if path.suffix == ".jsonl" else _rewrite_csv
            rewritten[relative] = rewrite(text, base, report.target, marks)
        elif relative not in removed:
            kept.append(relative)
    return kept, rewritten


def _mark(row: dict[str, Any], base: PurePosixPath, marks: Marks) -> dict[str, Any]:
    """The mark of the image a row names (its path as core.data.metadata reads it), or {}."""
    name = str(row.get("file_name") or "").strip().replace("\\", "/")
    return marks.get((base / name).as_posix(), {}) if name else {}


def _corrected(mark: dict[str, Any]) -> tuple[bool, Any]:
    """(whether the row changes, the new target: a list of tags or a value)."""
    if mark.get("action") != "relabel":
        return False, None
    if "labels" in mark:
        return True, sorted(str(tag) for tag in mark["labels"] or ())
    if mark.get("value") is not None:
        return True, float(mark["value"])
    return False, None


def _rewrite_csv(text: str, base: PurePosixPath, column: str, marks: Marks) -> str:
    reader = csv.DictReader(io.StringIO(text))
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=reader.fieldnames or ["file_name", column], extrasaction="ignore",
                            lineterminator="\n")
    writer.writeheader()
    for row in reader:
        mark = _mark(row, base, marks)
        if mark.get("action") == "remove":
            continue
        changed, target = _corrected(mark)
        if changed:
            row[column] = ";".join(target) if isinstance(target, list) else repr(target)
        writer.writerow(row)
    return out.getvalue()


def _rewrite_jsonl(text: str, base: PurePosixPath, column: str, marks: Marks) -> str:
    lines = []
    for line in text.splitlines():
        try:
            row = json.loads(line) if line.strip() else None
        except ValueError:
            row = None
        if not isinstance(row, dict):  # what the scan skipped stays as it was
            lines.append(line)
            continue
        mark = _mark(row, base, marks)
        if mark.get("action") == "remove":
            continue
        changed, target = _corrected(mark)
        if changed:
            row[column] = target
        lines.append(json.dumps(row, ensure_ascii=False))
    return "\n".join(lines) + "\n"
