"""Extract an untrusted zip member by member, never with `extractall`.

Refused outright (a one-line reason): not a zip, too many members, too many bytes in all, a member too big,
a compression ratio that only a zip bomb has. Skipped with a reason: paths that would leave the target
folder, symlinks, encrypted members. Sizes are enforced while streaming, since a header can lie.
"""
from __future__ import annotations

import errno
import shutil
import stat
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

_CHUNK = 1 << 20
_MAX_NAME_BYTES = 255  # one path component on Linux, macOS and Windows file systems


class ArchiveRefused(ValueError):
    """The whole archive is unusable; the message is one plain sentence for the user."""


@dataclass(frozen=True)
class ArchiveLimits:
    max_members: int = 50_000
    max_total_bytes: int = 8 << 30
    max_member_bytes: int = 256 << 20
    max_ratio: float = 200.0  # uncompressed / compressed, checked on members over 1 MiB
    ratio_floor_bytes: int = 1 << 20


@dataclass(frozen=True)
class Skipped:
    path: str
    reason: str


def extract(archive: Path, target: Path, limits: ArchiveLimits = ArchiveLimits()) -> list[Skipped]:
    """Extract `archive` into the new folder `target`; on refusal `target` is removed and nothing is left."""
    if not zipfile.is_zipfile(archive):
        raise ArchiveRefused("This file is not a zip archive. Please upload a .zip of class folders.")
    target.mkdir(parents=True, exist_ok=False)
    try:
        with zipfile.ZipFile(archive) as zf:
            members = zf.infolist()
            _check_limits(members, limits)
            return [s for info in members if (s := _extract_member(zf, info, target.resolve(), limits))]
    except zipfile.BadZipFile as error:
        shutil.rmtree(target, ignore_errors=True)
        raise ArchiveRefused(f"The zip archive is damaged and cannot be read ({error}).") from error
    except BaseException:
        shutil.rmtree(target, ignore_errors=True)
        raise


def _check_limits(members: list[zipfile.ZipInfo], limits: ArchiveLimits) -> None:
    if len(members) > limits.max_members:
        raise ArchiveRefused(f"The archive has {len(members):,} entries; the limit is {limits.max_members:,}.")
    total = sum(m.file_size for m in members)
    if total > limits.max_total_bytes:
        raise ArchiveRefused(f"The archive unpacks to {_mib(total)}; the limit is {_mib(limits.max_total_bytes)}.")
    for m in members:
        _check_member_size(m.filename, m.file_size, m.compress_size, limits)


def _check_member_size(name: str, size: int, compressed: int, limits: ArchiveLimits) -> None:
    if size > limits.max_member_bytes:
        raise ArchiveRefused(f"'{name}' unpacks to {_mib(size)}; one file may be at most {_mib(limits.max_member_bytes)}.")
    if size > limits.ratio_floor_bytes and size > limits.max_ratio * max(compressed, 1):
        raise ArchiveRefused(f"'{name}' is compressed {size / max(compressed, 1):.0f}:1, a sign of a zip bomb; refused.")


def _extract_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, root: Path, limits: ArchiveLimits) -> Skipped | None:
    name = info.filename.replace("\\", "/")
    reason = _unsafe_reason(name, info)
    if reason:
        return Skipped(name, reason)
    if info.is_dir():
        return None
    destination = (root / name).resolve()
    if not destination.is_relative_to(root):
        return Skipped(name, "path leads outside the dataset folder; skipped")
    try:
        destination.parent.mkdir(parents=True, exist_ok=True)
        _copy_member(zf, info, name, destination, limits)
    except OSError as error:
        if destination.is_file():
            destination.unlink(missing_ok=True)
        if error.errno == errno.ENOSPC:
            raise ArchiveRefused("The server ran out of disk space while unpacking this archive.") from error
        return Skipped(name, _unwritable_reason(error))
    return None


def _copy_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, name: str, destination: Path,
                 limits: ArchiveLimits) -> None:
    written = 0
    with zf.open(info) as source, destination.open("xb") as sink:
        while chunk := source.read(_CHUNK):
            written += len(chunk)
            _check_member_size(name, max(written, info.file_size), info.compress_size, limits)
            if written > info.file_size:
                raise ArchiveRefused(f"'{name}' holds more data than its header declares; the archive is refused.")
            sink.write(chunk)


def _unwritable_reason(error: OSError) -> str:
    """Why one member could not be written, in words (never the server's own path)."""
    if error.errno == errno.ENAMETOOLONG:
        return "name too long for the file system; rename it shorter; skipped"
    if error.errno in (errno.EEXIST, errno.ENOTDIR, errno.EISDIR):
        return "a file and a folder (or two files) have the same name here; skipped"
    return f"could not be unpacked ({error.strerror or type(error).__name__}); skipped"


def _unsafe_reason(name: str, info: zipfile.ZipInfo) -> str | None:
    path = PurePosixPath(name)
    if path.is_absolute() or (len(name) > 1 and name[1] == ":"):
        return "absolute path in the archive; skipped"
    if ".." in path.parts:
        return "path leads outside the dataset folder ('..'); skipped"
    if stat.S_ISLNK(info.external_attr >> 16):
        return "symbolic link; skipped"
    if info.flag_bits & 0x1:
        return "encrypted (password-protected) file; skipped"
    if any(len(part.encode("utf-8", "surrogateescape")) > _MAX_NAME_BYTES for part in path.parts):
        return "name too long for the file system; rename it shorter; skipped"
    return None


def _mib(n: int) -> str:
    return f"{n / (1 << 20):,.0f} MiB"
