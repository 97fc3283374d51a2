"""Adding images to the labelling pool is bounded: junk is skipped by name and header before it is read, files are
hashed and stored from disk, one budget covers a whole 'Add', and the workspace quota refuses with a sentence."""
from __future__ import annotations

import io
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from core import paths, quota
from core.data import checkout, intake
from core.data.archive import ArchiveLimits
from core.data.store import DatasetStore, StoreError
from tests.conftest import class_members, jpeg_bytes, write_zip

ROOT = Path(__file__).resolve().parent.parent
MEMBER_BYTES = 40 << 20


def junk_zip(path: Path) -> Path:
    """Four 40 MiB .bin members and two 40 MiB 'photos' that are not images, compressed ~50:1 (no zip bomb ratio),
    plus one real image: 240 MiB unpacked, a few MiB as a zip."""
    rng = np.random.default_rng(0)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name in ("a.bin", "b.bin", "c.bin", "d.bin", "fake1.jpg", "fake2.jpg"):
            archive.writestr(f"junk/{name}", (rng.random(MEMBER_BYTES) < 0.01).astype(np.uint8).tobytes())
        archive.writestr("real/photo.jpg", jpeg_bytes((9, 90, 200)))
    return path


def test_junk_members_are_never_read_into_memory(tmp_path):
    """Peak memory of a real process adding that zip (VmHWM: the peak of its own image, never the test process's,
    which getrusage would report after fork and exec): reading every member first took it all into memory."""
    archive = junk_zip(tmp_path / "junk.zip")
    assert archive.stat().st_size < 20 << 20
    script = ("import sys; from pathlib import Path\n"
              "from core.data import intake; from core.data.store import DatasetStore\n"
              "peak = lambda: int(next(l for l in open('/proc/self/status') if l.startswith('VmHWM')).split()[1])\n"
              "store = DatasetStore(Path(sys.argv[1])); pool = intake.new_pool(store, 'pool', [])\n"
              "data = Path(sys.argv[2]).read_bytes()  # as a browser upload arrives\n"
              "before = peak()\n"
              "result = intake.add_uploads(store, pool.dataset, pool.number, [('junk.zip', data)], None, Path(sys.argv[1]))\n"
              "print(peak() - before, result.added, sorted(s.reason.split(' (')[0] for s in result.skipped))\n")
    done = subprocess.run([sys.executable, "-c", script, str(tmp_path / "store"), str(archive)], cwd=ROOT,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    grown_kib, added, reasons = done.stdout.split(" ", 2)
    assert int(added) == 1
    assert reasons.strip() == str(["not an image", "not an image", "not an image file", "not an image file",
                                   "not an image file", "not an image file"])
    assert int(grown_kib) < 64 * 1024, f"adding the zip took {int(grown_kib) >> 10} MiB"


def test_uploads_can_be_files_on_disk_and_are_stored_as_copies(tmp_path):
    store = DatasetStore(tmp_path / "store")
    pool = intake.new_pool(store, "pool", [])
    photo = tmp_path / "kept.jpg"
    photo.write_bytes(jpeg_bytes((1, 200, 3)))
    result = intake.add_uploads(store, pool.dataset, pool.number, [("served-kept.jpg", photo)], None,
                                tmp_path / "work")
    [digest] = result.version.pool()
    assert store.object_path(digest).read_bytes() == photo.read_bytes()
    assert os.stat(store.object_path(digest)).st_ino != os.stat(photo).st_ino  # a copy: the original may go
    assert not list((store.root / ".scratch").iterdir())  # nothing of the upload stays behind


def test_one_budget_covers_every_file_of_one_addition(tmp_path):
    """Two zips and a loose image that each fit the limit, but not together: refused before anything is stored."""
    store = DatasetStore(tmp_path / "store")
    pool = intake.new_pool(store, "pool", [])
    first = write_zip(tmp_path / "1.zip", class_members("a/", {"x": 4}))
    second = write_zip(tmp_path / "2.zip", class_members("b/", {"y": 4}))
    unpacked = sum(i.file_size for i in zipfile.ZipFile(first).infolist())
    limits = ArchiveLimits(max_total_bytes=int(unpacked * 1.5))
    uploads = [("1.zip", first.read_bytes()), ("2.zip", second.read_bytes())]
    with pytest.raises(StoreError, match=r"^These files unpack to more than \d+ KB together, the most one addition "
                                         r"takes; add them in smaller parts\.$"):
        intake.add_uploads(store, pool.dataset, pool.number, uploads, None, tmp_path / "w", limits)
    assert store.head(pool.dataset) == 1 and not list((store.root / "objects").rglob("*"))
    assert intake.add_uploads(store, pool.dataset, pool.number, uploads[:1], None, tmp_path / "w", limits).added == 4


@pytest.fixture
def workspace(monkeypatch) -> Path:
    folder = paths.home() / "workspaces" / paths.new_workspace_key()
    folder.mkdir(parents=True)
    return folder


def test_a_full_workspace_refuses_uploads_with_one_sentence(workspace, monkeypatch, tmp_path):
    monkeypatch.setenv("TRANSFERLAB_WORKSPACE_QUOTA_MB", "1")
    (workspace / "runs").mkdir()
    (workspace / "runs" / "model.pt").write_bytes(os.urandom(1 << 20))  # the workspace is full already
    store = DatasetStore(workspace / "datasets")
    pool = intake.new_pool(store, "pool", [])
    with pytest.raises(StoreError) as refused:
        intake.add_uploads(store, pool.dataset, pool.number, [("a.jpg", jpeg_bytes())], None, tmp_path / "w")
    assert str(refused.value) == "This workspace holds 1 MB, its limit; delete old runs or datasets to add more."
    source = write_zip(tmp_path / "pets.zip", class_members("", {"cat": 3, "dog": 3}))
    with pytest.raises(StoreError, match="^This workspace holds 1 MB, its limit"):
        intake.import_labelled(store, source, "pets", tmp_path / "work")
    assert [v.name for v in store.datasets()] == ["pool"] and not list((store.root / "objects").rglob("*"))
    (workspace / "runs" / "model.pt").unlink()  # deleting a run makes room at once (the count is refreshed)
    assert intake.add_uploads(store, pool.dataset, pool.number, [("a.jpg", jpeg_bytes())], None, tmp_path).added == 1


def test_an_upload_that_would_pass_the_limit_says_how_much_it_needs(workspace, monkeypatch, tmp_path):
    monkeypatch.setenv("TRANSFERLAB_WORKSPACE_QUOTA_MB", "1")
    store = DatasetStore(workspace / "datasets")
    pool = intake.new_pool(store, "pool", [])
    big = np.random.default_rng(1).integers(0, 255, (700, 700, 3), dtype=np.uint8)
    uploads = []
    for i in range(3):  # 1.4 MB each: noise does not compress
        buffer = io.BytesIO()
        Image.fromarray(np.roll(big, i, axis=0)).save(buffer, "PNG")
        uploads.append((f"big{i}.png", buffer.getvalue()))
    with pytest.raises(StoreError, match=r"^This workspace holds \d+ KB of its 1 MB limit and these files need "
                                         r"[\d.]+ MB more; delete old runs or datasets, or add fewer files\.$"):
        intake.add_uploads(store, pool.dataset, pool.number, uploads, None, tmp_path)
    assert store.head(pool.dataset) == 1


def test_the_quota_counts_hard_linked_versions_once_and_only_inside_workspaces(workspace, tmp_path):
    store = DatasetStore(workspace / "datasets")
    imported = intake.import_labelled(store, write_zip(tmp_path / "p.zip", class_members("", {"cat": 4, "dog": 4})),
                                      "pets", tmp_path / "work")
    before = quota.used_bytes(workspace, fresh=True)
    checkout.materialize(store, imported.version.dataset, imported.version.number)  # hard links, no new bytes
    assert quota.used_bytes(workspace, fresh=True) == before
    assert quota.workspace_of(store.root) == workspace.resolve() and quota.workspace_of(tmp_path) is None


def test_the_quota_is_configurable(monkeypatch):
    monkeypatch.setenv("TRANSFERLAB_WORKSPACE_QUOTA_MB", "500")
    assert quota.limit_bytes() == 500 << 20
    monkeypatch.setenv("TRANSFERLAB_WORKSPACE_QUOTA_MB", "0")
    assert quota.limit_bytes() is None
    monkeypatch.setenv("TRANSFERLAB_WORKSPACE_QUOTA_MB", "lots")
    assert quota.limit_bytes() == 2048 << 20
