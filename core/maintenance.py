"""The clean-up: what TransferLab keeps under $TRANSFERLAB_HOME, and for how long.

Kept while used, removed once nothing has used them for the retention time (default 30 days, environment
variable TRANSFERLAB_RETENTION_DAYS):
- extracted datasets (`datasets/<hash>`): "used" = inspected or trained on (each use refreshes its marker);
- feature-cache entries (`feature-cache/<key>.safetensors`): "used" = read or written by a training;
- export zips (`workspaces/*/runs/*/export.zip`): "used" = made;
- whole workspaces (`workspaces/<key>`: uploads, runs, settings): "used" = opened in a browser or anything in it
  written, e.g. by a running training. A workspace with a job still running is never removed.
Leftovers of interrupted extractions (`datasets/.partial-*`) go after a day. The app runs this at start-up and
daily; `python -m core gc [--dry-run]` runs it by hand.
"""
from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path

DEFAULT_RETENTION_DAYS = 30.0
PARTIAL_MAX_AGE_S = 24 * 3600
_DAY_S = 24 * 3600


@dataclass(frozen=True)
class Removal:
    kind: str  # "dataset" | "partial extraction" | "feature cache" | "export" | "workspace"
    path: str
    last_used: str  # ISO 8601, UTC
    bytes: int


def retention_days() -> float:
    """TRANSFERLAB_RETENTION_DAYS if it is a positive number, else 30."""
    try:
        days = float(os.environ.get("TRANSFERLAB_RETENTION_DAYS", DEFAULT_RETENTION_DAYS))
    except ValueError:
        return DEFAULT_RETENTION_DAYS
    return days if days > 0 else DEFAULT_RETENTION_DAYS


def collect(home: Path, days: float | None = None, dry_run: bool = False, now: float | None = None) -> list[Removal]:
    """Remove (or with dry_run only list) everything unused for `days`; returns what was (or would be) removed."""
    now = time.time() if now is None else now
    cutoff = now - _DAY_S * (retention_days() if days is None else days)
    found = (_datasets(home / "datasets", cutoff, now) + _cache_entries(home / "feature-cache", cutoff)
             + _workspaces_and_exports(home / "workspaces", cutoff))
    if not dry_run:
        for removal in found:
            _remove(Path(removal.path))
    return found


def to_json(removals: list[Removal], dry_run: bool) -> dict:
    return {"dry_run": dry_run, "removed" if not dry_run else "would_remove": [asdict(r) for r in removals],
            "bytes": sum(r.bytes for r in removals)}


def _datasets(folder: Path, cutoff: float, now: float) -> list[Removal]:
    found = []
    for entry in _children(folder):
        if entry.name.startswith(".partial-"):
            if entry.stat().st_mtime < now - PARTIAL_MAX_AGE_S:
                found.append(_removal("partial extraction", entry, entry.stat().st_mtime))
        elif entry.is_dir():
            marker = entry.with_name(entry.name + ".skipped.tsv")
            used = marker.stat().st_mtime if marker.exists() else _newest(entry)
            if used < cutoff:
                found.append(_removal("dataset", entry, used))
                if marker.exists():
                    found.append(_removal("dataset", marker, used))
    return found


def _cache_entries(folder: Path, cutoff: float) -> list[Removal]:
    found = []
    for entry in _children(folder):
        if entry.suffix == ".safetensors" and entry.stat().st_mtime < cutoff:
            found.append(_removal("feature cache", entry, entry.stat().st_mtime))
            if entry.with_suffix(".json").exists():
                found.append(_removal("feature cache", entry.with_suffix(".json"), entry.stat().st_mtime))
    return found


def _workspaces_and_exports(folder: Path, cutoff: float) -> list[Removal]:
    found = []
    for workspace in _children(folder):
        if not workspace.is_dir():
            continue
        used = _newest(workspace)
        if used < cutoff and not _has_live_job(workspace):
            found.append(_removal("workspace", workspace, used))
            continue
        for export in workspace.glob("runs/*/export.zip"):
            if export.stat().st_mtime < cutoff:
                found.append(_removal("export", export, export.stat().st_mtime))
    return found


def _has_live_job(workspace: Path) -> bool:
    for status in workspace.glob("runs/*/status.json"):
        try:
            if json.loads(status.read_text(encoding="utf-8")).get("state") in ("queued", "running"):
                return True
        except (OSError, ValueError, AttributeError):
            continue
    return False


def _children(folder: Path) -> list[Path]:
    try:
        return sorted(folder.iterdir())
    except OSError:
        return []


def _newest(folder: Path) -> float:
    """The latest modification of the folder or anything in it: its last use."""
    newest = folder.stat().st_mtime
    for directory, _, files in os.walk(folder):
        for name in files:
            try:
                newest = max(newest, os.stat(os.path.join(directory, name), follow_symlinks=False).st_mtime)
            except OSError:
                continue
        newest = max(newest, os.stat(directory).st_mtime)
    return newest


def _size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def _removal(kind: str, path: Path, used: float) -> Removal:
    return Removal(kind, str(path), time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(used)), _size(path))


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)
