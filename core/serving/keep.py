"""Keeping served inputs (only with --keep-images): bounded by count and bytes, oldest dropped first.

Files are named by prediction id, never by the client's file name, so nothing a client sends becomes a path.
"""
from __future__ import annotations

import os
import threading
from collections import deque
from pathlib import Path
from typing import Any

from core.serving.predlog import PredictionLog

# MPO: what Pillow calls the JPEG of many phones (a second, preview picture inside); the Label page takes .jpg
SUFFIXES = {"JPEG": ".jpg", "MPO": ".jpg", "PNG": ".png", "GIF": ".gif", "BMP": ".bmp", "WEBP": ".webp", "TIFF": ".tif"}


class ImageKeeper:
    """Writes inputs to a folder and deletes the oldest beyond `max_count` files or `max_bytes` bytes."""

    def __init__(self, folder: Path, max_count: int = 1000, max_bytes: int = 500 * 2**20) -> None:
        if max_count < 1 or max_bytes < 1:
            raise ValueError("the retention limit for kept images must be at least one image and one byte")
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.max_count, self.max_bytes = max_count, max_bytes
        self._lock = threading.Lock()
        existing = sorted((p for p in self.folder.iterdir() if p.is_file()), key=lambda p: p.stat().st_mtime)
        self._files: deque[tuple[Path, int]] = deque((p, p.stat().st_size) for p in existing)
        self._bytes = sum(size for _, size in self._files)
        with self._lock:
            self._prune()

    def keep(self, prediction_id: str, data: bytes, image_format: str | None) -> str | None:
        """Store one input; returns its file name, or None when it alone is over the byte limit."""
        name = self.name_for(prediction_id, len(data), image_format)
        if name is not None:
            self.store(name, data)
        return name

    def name_for(self, prediction_id: str, size: int, image_format: str | None) -> str | None:
        """The file name an input will be kept under (None: over the byte limit alone), known before it is
        written: the service logs the row first, so a file never exists without its row."""
        return None if size > self.max_bytes else prediction_id + SUFFIXES.get(image_format or "", ".img")

    def store(self, name: str, data: bytes) -> None:
        path = self.folder / name
        tmp = path.with_name(f".{name}.tmp")
        tmp.write_bytes(data)
        os.replace(tmp, path)
        with self._lock:
            self._files.append((path, len(data)))
            self._bytes += len(data)
            self._prune()

    def _prune(self) -> None:
        while self._files and (len(self._files) > self.max_count or self._bytes > self.max_bytes):
            path, size = self._files.popleft()
            path.unlink(missing_ok=True)
            self._bytes -= size


def kept_images_for_review(log: PredictionLog, folder: Path, model: str | None = None,
                           max_confidence: float = 0.6, limit: int = 200) -> list[dict[str, Any]]:
    """Kept inputs worth a person's look: unknown, unsure or low-confidence answers, newest first.

    Each item: path (still on disk), prediction id, predicted label, confidence, unsure, unknown, feedback label.
    The labelling pool takes the paths; the id links a label given there back to the log.
    """
    folder = Path(folder)
    chosen = []
    for row in reversed(log.rows(model=model)):
        if not row["kept_file"]:
            continue
        doubtful = row["unknown"] or row["unsure"] or (row["confidence"] or 0.0) < max_confidence
        path = folder / Path(row["kept_file"]).name  # a name the keeper wrote, never a path the log could hold
        if doubtful and path.name == row["kept_file"] and path.is_file() and not path.is_symlink():
            chosen.append({"path": path, "id": row["id"], "label": row["label"], "confidence": row["confidence"],
                           "unsure": row["unsure"], "unknown": row["unknown"], "feedback": row["feedback_label"]})
            if len(chosen) >= limit:
                break
    return chosen
