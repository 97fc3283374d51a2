"""Data everyone may know about: the shipped sample and classroom sets, and a class's starter data.

The feature cache is scoped per workspace, so nobody learns from a run's speed that someone else trained on the same
images. For data that is public by nature that scoping only costs time: thirty students training on the shipped
sample would compute its features thirty times. `shared_scope` names a namespace that may be shared:
- a shipped file (assets/sample_shapes.zip, assets/classroom/*.zip), recognised by its exact content (sha256), not
  its name or path: an upload byte-for-byte equal to it holds nothing private, and one byte more makes it private;
- a file in a folder under $TRANSFERLAB_HOME/classes/ that holds a SHARED_MARKER naming a namespace (a class's
  starter data, which every student of that class was given by the teacher).
Anything else (every upload, dataset store version or folder of a user's own) has no shared scope: None.
"""
from __future__ import annotations

import hashlib
from functools import lru_cache
from pathlib import Path

from core import paths

ASSETS = Path(__file__).resolve().parents[2] / "assets"
SHARED_MARKER = ".shared-features"


def shipped_files() -> list[Path]:
    return sorted([ASSETS / "sample_shapes.zip", *(ASSETS / "classroom").glob("*.zip")])


@lru_cache(maxsize=32)
def _digest(path: str, size: int, modified: int) -> str:
    sha = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            sha.update(block)
    return sha.hexdigest()


def digest(path: Path) -> str:
    stat = Path(path).stat()
    return _digest(str(Path(path).resolve()), stat.st_size, stat.st_mtime_ns)


def _shipped() -> dict[int, set[str]]:
    """Size -> content hashes of the shipped files (a file of another size is never hashed)."""
    found: dict[int, set[str]] = {}
    for path in shipped_files():
        if path.is_file():
            found.setdefault(path.stat().st_size, set()).add(digest(path))
    return found


def public_digest(data: str | Path) -> str | None:
    """The content hash of `data` when it is byte-for-byte one of the shipped datasets, else None."""
    path = Path(data)
    try:
        if not path.is_file():
            return None
        hashes = _shipped().get(path.stat().st_size)
        found = digest(path) if hashes else None
    except OSError:
        return None
    return found if found in (hashes or ()) else None


def shared_scope(data: str | Path) -> str | None:
    """The feature-cache namespace runs on this data may share, or None (the workspace's own scope applies)."""
    public = public_digest(data)
    if public:
        return f"public:{public}"
    path = Path(data)
    try:
        path.resolve().relative_to((paths.home() / "classes").resolve())
        marker = path.parent / SHARED_MARKER
        namespace = marker.read_text(encoding="ascii").strip() if marker.is_file() and path.is_file() else ""
    except (OSError, ValueError, UnicodeDecodeError):
        return None
    return f"shared:{namespace}" if namespace else None
