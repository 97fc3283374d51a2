"""Extract an untrusted zip member by member, never with `extractall`.

Refused outright (a one-line reason): not a zip, too many members, too many bytes in all, a member too big,
a compression ratio that only a zip bomb has. Skipped with a reason: paths that would leave the target
folder, symlinks, encrypted members, names the file system cannot hold (a component over 255 bytes, a whole
path over 4,096 bytes once under the target folder, folders nested over 32 deep), members the caller does not
want (e.g. non-images, by name). Sizes are enforced while streaming, since a header can lie.
"""
from __future__ import annotations

import errno
import os
import shutil
import stat
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Callable

from core.i18n import _, number, quoted

_CHUNK = 1 << 20
_MAX_NAME_BYTES = 255  # one path component on Linux, macOS and Windows file systems
MAX_PATH_BYTES = 4096  # PATH_MAX on Linux, its terminating NUL included: a longer path cannot be opened
MAX_DEPTH = 32  # folders inside folders: nobody sorts images deeper, and walking such trees is slow


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


Unwanted = Callable[[str], "str | None"]  # a member's name -> why it is not wanted (skipped unread), or None


def extract(archive: Path, target: Path, limits: ArchiveLimits = ArchiveLimits(),
            unwanted: Unwanted | None = None) -> list[Skipped]:
    """Extract `archive` into the new folder `target`; on refusal `target` is removed and nothing is left.

    `unwanted` names members to skip by name (with its reason) before anything of them is read or written."""
    if not zipfile.is_zipfile(archive):
        raise ArchiveRefused(_("This file is not a zip archive. Please upload a .zip of class folders."))
    target.mkdir(parents=True, exist_ok=False)
    try:
        with zipfile.ZipFile(archive) as zf:
            members = zf.infolist()
            _check_limits(members, limits)
            root = target.resolve()
            return [s for info in members if (s := _extract_member(zf, info, root, limits, unwanted))]
    except zipfile.BadZipFile as error:
        shutil.rmtree(target, ignore_errors=True)
        raise ArchiveRefused(_("The zip archive is damaged and cannot be read ({error}).").format(error=error)) \
            from error
    except BaseException:
        shutil.rmtree(target, ignore_errors=True)
        raise


def _check_limits(members: list[zipfile.ZipInfo], limits: ArchiveLimits) -> None:
    if len(members) > limits.max_members:
        raise ArchiveRefused(_("The archive has {count} entries; the limit is {limit}.").format(
            count=number(len(members)), limit=number(limits.max_members)))
    total = sum(m.file_size for m in members)
    if total > limits.max_total_bytes:
        raise ArchiveRefused(_("The archive unpacks to {size}; the limit is {limit}.").format(
            size=_mib(total), limit=_mib(limits.max_total_bytes)))
    for m in members:
        _check_member_size(m.filename, m.file_size, m.compress_size, limits)


def _check_member_size(name: str, size: int, compressed: int, limits: ArchiveLimits) -> None:
    if size > limits.max_member_bytes:
        raise ArchiveRefused(_("{name} unpacks to {size}; one file may be at most {limit}.").format(
            name=quoted(name), size=_mib(size), limit=_mib(limits.max_member_bytes)))
    if size > limits.ratio_floor_bytes and size > limits.max_ratio * max(compressed, 1):
        raise ArchiveRefused(_("{name} is compressed {ratio}:1, a sign of a zip bomb; refused.").format(
            name=quoted(name), ratio=number(size / max(compressed, 1))))


def _extract_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, root: Path, limits: ArchiveLimits,
                    unwanted: Unwanted | None) -> Skipped | None:
    name = info.filename.replace("\\", "/")
    reason = _unsafe_reason(name, info) or _too_long_reason(name, root)
    if not reason and not info.is_dir() and unwanted is not None:
        reason = unwanted(name)
    if reason:
        return Skipped(name, reason)
    if info.is_dir():
        return None
    destination = Path(os.path.normpath(root / name))  # lexically: the file system may not hold the path
    if not destination.is_relative_to(root):  # cannot happen without '..' or an absolute path: defence in depth
        return Skipped(name, _("path leads outside the dataset folder; skipped"))
    written = False
    try:
        destination.parent.mkdir(parents=True, exist_ok=True)
        written = True  # from here a partial file may exist
        _copy_member(zf, info, name, destination, limits)
    except OSError as error:
        if written:
            _discard(destination)
        if error.errno == errno.ENOSPC:
            raise ArchiveRefused(_("The server ran out of disk space while unpacking this archive.")) from error
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
                raise ArchiveRefused(_("{name} holds more data than its header declares; the archive is refused.").format(
                    name=quoted(name)))
            sink.write(chunk)


def _discard(path: Path) -> None:
    try:
        if path.is_file():
            path.unlink()
    except OSError:
        pass  # nothing was written there after all (or it cannot be named): nothing to remove


def _too_long_reason(name: str, root: Path) -> str | None:
    """Paths the file system cannot hold, found before anything is written (the OS error would name our folder)."""
    parts = PurePosixPath(name).parts
    if len(parts) > MAX_DEPTH + 1:
        return _("inside folders nested more than {depth} deep; skipped").format(depth=MAX_DEPTH)
    if len(str(root).encode("utf-8", "surrogateescape")) + 1 + len(name.encode("utf-8", "surrogateescape")) \
            >= MAX_PATH_BYTES:
        return _("path too long for the file system (over {limit} bytes together with the folder it is unpacked "
                 "into); shorten its folder names; skipped").format(limit=number(MAX_PATH_BYTES))
    return None


def _unwritable_reason(error: OSError) -> str:
    """Why one member could not be written, in words (never the server's own path)."""
    if error.errno == errno.ENAMETOOLONG:
        return _("name too long for the file system; rename it shorter; skipped")
    if error.errno in (errno.EEXIST, errno.ENOTDIR, errno.EISDIR):
        return _("a file and a folder (or two files) have the same name here; skipped")
    return _("could not be unpacked ({why}); skipped").format(why=error.strerror or type(error).__name__)


def _unsafe_reason(name: str, info: zipfile.ZipInfo) -> str | None:
    path = PurePosixPath(name)
    if path.is_absolute() or (len(name) > 1 and name[1] == ":"):
        return _("absolute path in the archive; skipped")
    if ".." in path.parts:
        return _("path leads outside the dataset folder ('..'); skipped")
    if stat.S_ISLNK(info.external_attr >> 16):
        return _("symbolic link; skipped")
    if info.flag_bits & 0x1:
        return _("encrypted (password-protected) file; skipped")
    if any(len(part.encode("utf-8", "surrogateescape")) > _MAX_NAME_BYTES for part in path.parts):
        return _("name too long for the file system; rename it shorter; skipped")
    return None


def _mib(n: int) -> str:
    return f"{number(n / (1 << 20))} MiB"
