"""The clean-up: what TransferLab keeps under $TRANSFERLAB_HOME, and for how long.

Kept while used, removed once nothing has used them for the retention time (default 30 days, environment
variable TRANSFERLAB_RETENTION_DAYS):
- extracted datasets (`datasets/<hash>`): "used" = inspected or trained on (each use refreshes its marker);
- feature-cache entries (`feature-cache/<key>.safetensors`): "used" = read or written by a training;
- export zips (`workspaces/*/runs/*/export.zip`): "used" = made;
- whole workspaces (`workspaces/<key>`: uploads, runs, settings): "used" = opened in a browser or anything in it
  written, e.g. by a running training. A workspace with a job still running is never removed;
- prediction-log rows (`serving/*.sqlite`, also inside workspaces) older than the retention time.
Leftovers of interrupted extractions (`datasets/.partial-*`) go after a day. In every dataset store (a workspace's
`datasets/`): what a killed writer left (an import that never committed, half-built version folders, scratch
uploads, temporary files) goes after an hour; dataset exports (zips) after a day, as the page builds them again on
demand; images no version of that store refers to after a day (never younger: a writer may be about to commit one).
The app runs this at start-up and daily; `python -m core gc [--dry-run]` runs it by hand.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import sqlite3
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from core.data.store import EXPORTS, PENDING, SCRATCH

DEFAULT_RETENTION_DAYS = 30.0
PARTIAL_MAX_AGE_S = 24 * 3600
TEMP_MAX_AGE_S = 3600  # a write in progress refreshes its files far more often: older ones were left by a crash
EXPORT_MAX_AGE_S = 24 * 3600
OBJECT_MIN_AGE_S = 24 * 3600
_DAY_S = 24 * 3600
# What the Label page's "Export as a zip" writes into a workspace's uploads/ (and its temporary while writing).
_EXPORT_NAME = re.compile(r"\.?dataset-[0-9a-f]{12}-v\d+\.zip(\.[0-9a-f]{8}\.tmp)?")


@dataclass(frozen=True)
class Removal:
    kind: str  # "dataset" | "partial extraction" | "feature cache" | "export" | "workspace" | "unfinished import"
    #          | "temporary file" | "dataset export" | "unreferenced image" | "prediction log rows"
    path: str
    last_used: str  # ISO 8601, UTC
    bytes: int
    rows: int = 0  # prediction log rows only


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
    gone = {Path(r.path) for r in found if r.kind == "workspace"}
    for store in _stores(home):
        if not any(store.is_relative_to(workspace) for workspace in gone):
            found += sweep_store(store, now)
    if not dry_run:
        for removal in found:
            _remove(Path(removal.path))
    return found + prune_logs(home, cutoff, dry_run)


def to_json(removals: list[Removal], dry_run: bool) -> dict:
    return {"dry_run": dry_run, "removed" if not dry_run else "would_remove": [asdict(r) for r in removals],
            "bytes": sum(r.bytes for r in removals)}


def _datasets(folder: Path, cutoff: float, now: float) -> list[Removal]:
    found = []
    for entry in _children(folder):
        if _in_store(entry):
            continue  # the command line's dataset store may share this folder: swept by sweep_store
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


def _stores(home: Path) -> list[Path]:
    """Every dataset store: a workspace's `datasets/`, and the command line's default `$TRANSFERLAB_HOME/datasets`."""
    candidates = [home / "datasets", *(workspace / "datasets" for workspace in _children(home / "workspaces"))]
    return [folder for folder in candidates if (folder / "objects").is_dir() or any(folder.glob("*/HEAD.json"))]


def _in_store(entry: Path) -> bool:
    """Part of a dataset store (extractions are named by 16 hex digits and hold only the user's files)."""
    return (entry.name in ("objects", SCRATCH, EXPORTS) or entry.name.startswith(".deleted-")
            or bool(re.fullmatch(r"[0-9a-f]{12}", entry.name) and (entry / "versions").is_dir()))


def sweep_store(root: Path, now: float | None = None) -> list[Removal]:
    """What a killed writer left in one dataset store, old exports, and images no version refers to."""
    now = time.time() if now is None else now
    young = now - TEMP_MAX_AGE_S
    found = [_removal("unfinished import", d, _mtime(d / PENDING)) for d in _children(root)
             if (d / PENDING).exists() and _mtime(d / PENDING) < young]
    found += [_removal("unfinished import", d, _mtime(d)) for d in _children(root) if d.name.startswith(".deleted-")]
    temporaries = [*_children(root / SCRATCH), *root.glob("*/materialized/.*"), *root.glob("*/.*.tmp"),
                   *root.glob("*/versions/.*.tmp"), *root.glob("objects/*/.*.tmp")]
    found += [_removal("temporary file", t, _mtime(t)) for t in temporaries if _mtime(t) < young]
    found += [_removal("dataset export", e, _mtime(e)) for e in _children(root / EXPORTS)
              if _mtime(e) < now - EXPORT_MAX_AGE_S]
    found += [_removal("dataset export", e, _mtime(e)) for e in _children(root.parent / "uploads")
              if _EXPORT_NAME.fullmatch(e.name) and _mtime(e) < now - EXPORT_MAX_AGE_S]
    pending = {Path(r.path) for r in found if r.kind == "unfinished import"}
    return found + _unreferenced(root, now - OBJECT_MIN_AGE_S, pending)


def _unreferenced(root: Path, cutoff: float, dropped: set[Path]) -> list[Removal]:
    """Mark (every version's manifest of this store, but those being removed now) and sweep (images older than cutoff)."""
    referenced: set[str] = set()
    for manifest in root.glob("*/versions/*.json"):
        if manifest.parent.parent in dropped:
            continue
        try:
            referenced.update(json.loads(manifest.read_text(encoding="utf-8"))["images"])
        except (OSError, ValueError, KeyError, TypeError):
            return []  # a manifest we cannot read may refer to anything: collect nothing rather than guess
    found = []
    for image in root.glob("objects/*/*"):
        if re.fullmatch(r"[0-9a-f]{64}", image.name) and image.name not in referenced and _mtime(image) < cutoff:
            found.append(_removal("unreferenced image", image, _mtime(image)))
    return found


def prune_logs(home: Path, cutoff: float, dry_run: bool = False) -> list[Removal]:
    """Prediction-log rows older than `cutoff` in the SQLite logs under `serving/` (the home's and each workspace's).
    The rows' space is reused by later rows (no VACUUM: that would lock out a service writing to the log)."""
    found = []
    folders = [home / "serving", *(workspace / "serving" for workspace in _children(home / "workspaces"))]
    for log in (path for folder in folders if folder.is_dir() for path in sorted(folder.rglob("*.sqlite"))):
        try:
            rows = _old_rows(log, cutoff, dry_run)
        except sqlite3.Error:
            continue  # not a prediction log, or locked for longer than the timeout: next time
        if rows:
            found.append(Removal("prediction log rows", str(log), _iso(cutoff), 0, rows))
    return found


def _old_rows(log: Path, cutoff: float, dry_run: bool) -> int:
    with open(log, "rb") as handle:
        if handle.read(16) != b"SQLite format 3\x00":
            return 0
    connection = sqlite3.connect(log, timeout=30)
    try:
        columns = {row[1] for row in connection.execute("PRAGMA table_info(predictions)")}
        if "time" not in columns:
            return 0
        if dry_run:
            return connection.execute("SELECT COUNT(*) FROM predictions WHERE time < ?", (cutoff,)).fetchone()[0]
        with connection:
            return connection.execute("DELETE FROM predictions WHERE time < ?", (cutoff,)).rowcount
    finally:
        connection.close()


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
    return Removal(kind, str(path), _iso(used), _size(path))


def _iso(when: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(when))


def _mtime(path: Path) -> float:
    try:
        return path.stat(follow_symlinks=False).st_mtime
    except OSError:
        return float("inf")  # gone meanwhile: never "old"


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)
