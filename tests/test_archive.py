"""Hostile archives: nothing is written outside the dataset folder, and every refusal says why."""
from __future__ import annotations

import stat
import zipfile
from pathlib import Path

import pytest

from core.data import intake
from core.data.archive import ArchiveLimits, ArchiveRefused, extract
from core.data.datasets import inspect_data
from core.data.store import DatasetStore
from tests.conftest import class_members, jpeg_bytes, write_zip


def files_under(folder: Path) -> set[str]:
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}


def test_path_traversal_and_absolute_paths_are_skipped_and_nothing_escapes(tmp_path):
    archive = write_zip(tmp_path / "evil.zip", {
        "cats/ok.jpg": jpeg_bytes(),
        "../escaped.txt": b"x",
        "cats/../../escaped2.txt": b"x",
        "/tmp/absolute_escape.txt": b"x",
    })
    sandbox = tmp_path / "sandbox"
    sandbox.mkdir()
    skipped = extract(archive, sandbox / "data")
    assert files_under(sandbox) == {"data/cats/ok.jpg"}
    assert not (tmp_path / "escaped.txt").exists() and not (tmp_path / "escaped2.txt").exists()
    assert not Path("/tmp/absolute_escape.txt").exists()
    reasons = {s.path: s.reason for s in skipped}
    assert "outside the dataset folder" in reasons["../escaped.txt"]
    assert "outside the dataset folder" in reasons["cats/../../escaped2.txt"]
    assert "absolute path" in reasons["/tmp/absolute_escape.txt"]


def test_symlink_members_are_skipped(tmp_path):
    archive = tmp_path / "links.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        link = zipfile.ZipInfo("cats/link.jpg")
        link.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(link, "/etc/passwd")
        zf.writestr("cats/real.jpg", jpeg_bytes())
    skipped = extract(archive, tmp_path / "out")
    assert files_under(tmp_path / "out") == {"cats/real.jpg"}
    assert [s.reason for s in skipped] == ["symbolic link; skipped"]


def test_encrypted_members_are_skipped(tmp_path):
    archive = write_zip(tmp_path / "locked.zip", {"cats/real.jpg": jpeg_bytes(), "cats/secret.jpg": b"secret"})
    # zipfile cannot write encrypted members: set the 'encrypted' flag in both headers, as a real one has it.
    data = bytearray(archive.read_bytes())
    local = data.find(b"cats/secret.jpg") - 30
    central = data.find(b"cats/secret.jpg", local + 31) - 46
    data[local + 6] |= 0x1
    data[central + 8] |= 0x1
    archive.write_bytes(bytes(data))
    skipped = extract(archive, tmp_path / "out")
    assert files_under(tmp_path / "out") == {"cats/real.jpg"}
    assert "encrypted" in skipped[0].reason


def test_a_file_that_is_not_a_zip_is_refused(tmp_path):
    fake = tmp_path / "photos.zip"
    fake.write_bytes(jpeg_bytes())
    with pytest.raises(ArchiveRefused, match="not a zip archive"):
        extract(fake, tmp_path / "out")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("limits, message", [
    (ArchiveLimits(max_members=3), "entries; the limit is 3"),
    (ArchiveLimits(max_total_bytes=2000), "unpacks to"),
    (ArchiveLimits(max_member_bytes=1000), "one file may be at most"),
])
def test_archives_over_the_limits_are_refused_and_leave_nothing(tmp_path, limits, message):
    archive = write_zip(tmp_path / "big.zip", {f"c/{i}.bin": bytes(900) for i in range(4)} | {"c/x.jpg": bytes(1500)})
    with pytest.raises(ArchiveRefused, match=message):
        extract(archive, tmp_path / "out", limits)
    assert not (tmp_path / "out").exists()


def test_zip_bomb_compression_ratio_is_refused(tmp_path):
    archive = tmp_path / "bomb.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("cats/bomb.jpg", bytes(8 << 20))  # 8 MiB of zeros compresses about 1000:1
    with pytest.raises(ArchiveRefused, match="zip bomb"):
        extract(archive, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_names_too_long_for_the_file_system_are_skipped_with_a_plain_reason(tmp_path):
    long_folder, long_file = "c" * 300, "f" * 260 + ".jpg"
    archive = write_zip(tmp_path / "long.zip", {"cats/ok.jpg": jpeg_bytes(), f"{long_folder}/a.jpg": jpeg_bytes(),
                                                f"cats/{long_file}": jpeg_bytes()})
    skipped = extract(archive, tmp_path / "data")
    assert files_under(tmp_path / "data") == {"cats/ok.jpg"}
    assert {s.path for s in skipped} == {f"{long_folder}/a.jpg", f"cats/{long_file}"}
    for entry in skipped:
        assert "too long" in entry.reason and "Errno" not in entry.reason and str(tmp_path) not in entry.reason


def test_a_file_and_a_folder_with_the_same_name_keep_the_rest(tmp_path):
    archive = write_zip(tmp_path / "clash.zip", {"cats": b"not a folder", "cats/one.jpg": jpeg_bytes(),
                                                 "dogs/two.jpg": jpeg_bytes(), "dogs/two.jpg/three.jpg": jpeg_bytes()})
    skipped = extract(archive, tmp_path / "data")
    assert files_under(tmp_path / "data") == {"cats", "dogs/two.jpg"}
    assert {s.path: s.reason for s in skipped} == {
        "cats/one.jpg": "a file and a folder (or two files) have the same name here; skipped",
        "dogs/two.jpg/three.jpg": "a file and a folder (or two files) have the same name here; skipped"}


def long_and_deep_members() -> dict[str, bytes]:
    """Good images, one member whose whole path is 5,000 bytes (each folder name fits), one 40 folders deep."""
    members = class_members("", {"cats": 5, "dogs": 5})
    members["cats/" + "/".join(["d" * 200] * 25) + "/long.jpg"] = jpeg_bytes((1, 2, 3))
    members["dogs/" + "e/" * 40 + "deep.jpg"] = jpeg_bytes((4, 5, 6))
    return members


def assert_long_and_deep_skipped(skipped, where: Path) -> None:
    reasons = {s.path.rsplit("/", 1)[-1]: s.reason for s in skipped}
    assert reasons["long.jpg"].startswith("path too long for the file system (over 4,096 bytes together with the ")
    assert reasons["deep.jpg"] == "inside folders nested more than 32 deep; skipped"
    assert all("Errno" not in r and str(where) not in r for r in reasons.values())


def test_a_whole_path_too_long_or_too_deep_is_skipped_and_the_rest_unpacked(tmp_path):
    archive = write_zip(tmp_path / "long.zip", long_and_deep_members())
    skipped = extract(archive, tmp_path / "data")
    assert len(files_under(tmp_path / "data")) == 10
    assert_long_and_deep_skipped(skipped, tmp_path)


def test_the_folder_unpacked_into_counts_towards_the_path_length(tmp_path):
    name = "cats/" + "/".join(["p" * 200] * 19) + "/fits.jpg"  # 3,828 bytes: fits under a short folder only
    archive = write_zip(tmp_path / "near.zip", {"cats/ok.jpg": jpeg_bytes(), name: jpeg_bytes()})
    assert extract(archive, tmp_path / "a") == [] and len(files_under(tmp_path / "a")) == 2
    deep_root = tmp_path / ("r" * 250) / ("s" * 250)
    [skipped] = extract(archive, deep_root)
    assert skipped.path == name and skipped.reason.startswith("path too long")
    assert files_under(deep_root) == {"cats/ok.jpg"}


def test_every_upload_route_skips_an_over_long_path_instead_of_failing(tmp_path):
    """The Data page (inspect), the Label page's import and its 'add images' all unpack through extract."""
    archive = write_zip(tmp_path / "long.zip", long_and_deep_members())
    report = inspect_data(archive, tmp_path / "work")
    assert report.classes == {"cats": 5, "dogs": 5}
    assert_long_and_deep_skipped(report.skipped, tmp_path)
    store = DatasetStore(tmp_path / "store")
    imported = intake.import_labelled(store, archive, "pets", tmp_path / "work2")
    assert imported.added == 10
    assert_long_and_deep_skipped(imported.skipped, tmp_path)
    pool = intake.new_pool(store, "pool", [])
    added = intake.add_uploads(store, pool.dataset, pool.number, [("long.zip", archive.read_bytes())], None,
                               tmp_path / "work3")
    assert added.added == 10
    assert_long_and_deep_skipped(added.skipped, tmp_path)
