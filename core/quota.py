"""The disk bound of one workspace: what its folder holds, and the refusal before an upload would pass the limit.

The limit is TRANSFERLAB_WORKSPACE_QUOTA_MB (default 2048; 0 turns it off). Only folders under
`$TRANSFERLAB_HOME/workspaces/<key>/` have one: a dataset store a command-line user keeps elsewhere has none.
Counting walks the folder once and is remembered for a short while (and raised by what this process adds), so
checking before every upload stays cheap; hard links (dataset versions link the store's images) count once.
"""
from __future__ import annotations

import os
import threading
import time
from pathlib import Path

from core import paths
from core.i18n import _, number

DEFAULT_QUOTA_MB = 2048
TRANSIENT = ".scratch"  # uploads being unpacked and checked (a dataset store's): gone when the check ends, not counted
_REMEMBER_S = 30.0
_counted: dict[str, tuple[float, int]] = {}
_lock = threading.Lock()


class QuotaExceeded(ValueError):
    """The workspace would hold more than its limit; the message is one plain sentence for the user."""


def limit_bytes() -> int | None:
    """TRANSFERLAB_WORKSPACE_QUOTA_MB in bytes; None when set to 0 (no limit); the default when not a number."""
    try:
        megabytes = float(os.environ.get("TRANSFERLAB_WORKSPACE_QUOTA_MB", DEFAULT_QUOTA_MB))
    except ValueError:
        megabytes = DEFAULT_QUOTA_MB
    if megabytes == 0:
        return None
    return int((megabytes if megabytes > 0 else DEFAULT_QUOTA_MB) * 2**20)


def workspace_of(path: Path) -> Path | None:
    """The workspace folder that `path` lies in, or None if it is in none."""
    root = (paths.home() / "workspaces").resolve()
    try:
        relative = Path(path).resolve().relative_to(root)
    except ValueError:
        return None
    return root / relative.parts[0] if relative.parts else None


def used_bytes(folder: Path, fresh: bool = False) -> int:
    """Bytes of the files under `folder` (each hard-linked file once), counted at most every 30 s."""
    key = str(folder)
    with _lock:
        counted = _counted.get(key)
    if counted and not fresh and time.monotonic() - counted[0] < _REMEMBER_S:
        return counted[1]
    total = _walk(Path(folder))
    with _lock:
        _counted[key] = (time.monotonic(), total)
    return total


def check(path: Path, incoming: int) -> None:
    """Raise QuotaExceeded if storing `incoming` more bytes at `path` would take its workspace past the limit."""
    workspace, limit = workspace_of(path), limit_bytes()
    if workspace is None or limit is None:
        return
    used = used_bytes(workspace)
    if used + incoming > limit:
        used = used_bytes(workspace, fresh=True)  # what was deleted since the last count is room again
    if used >= limit:
        raise QuotaExceeded(_("This workspace holds {used}, its limit; delete old runs or datasets to add more.")
                            .format(used=size_text(used)))
    if used + incoming > limit:
        raise QuotaExceeded(_("This workspace holds {used} of its {limit} limit and these files need {needed} more; "
                              "delete old runs or datasets, or add fewer files.").format(
            used=size_text(used), limit=size_text(limit), needed=size_text(incoming)))


def added(path: Path, count: int) -> None:
    """What this process just stored at `path`: counted at once, so the next check within 30 s sees it."""
    workspace = workspace_of(path)
    if workspace is None:
        return
    with _lock:
        counted = _counted.get(str(workspace))
        if counted:
            _counted[str(workspace)] = (counted[0], counted[1] + count)


def size_text(count: int) -> str:
    """A size as the reader's language writes numbers (the units are the same in every language we have)."""
    if count >= 2**30:
        return f"{number(count / 2**30, 1)} GB"
    return f"{number(count / 2**20)} MB" if count >= 2**20 else f"{number(max(count, 0) / 2**10)} KB"


def _walk(folder: Path) -> int:
    total, seen, pending = 0, set(), [folder]
    while pending:
        try:
            entries = list(os.scandir(pending.pop()))
        except OSError:
            continue  # gone meanwhile, or unreadable: nothing to count
        for entry in entries:
            try:
                if entry.is_dir(follow_symlinks=False):
                    if entry.name != TRANSIENT:
                        pending.append(entry.path)
                elif entry.is_file(follow_symlinks=False):
                    stat = entry.stat(follow_symlinks=False)
                    if stat.st_nlink > 1:
                        if (stat.st_dev, stat.st_ino) in seen:
                            continue
                        seen.add((stat.st_dev, stat.st_ino))
                    total += stat.st_size
            except OSError:
                continue
    return total
