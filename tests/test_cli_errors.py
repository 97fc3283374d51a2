"""The command line fails the way a user can act on: one line on stderr, exit status 2, never a traceback."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from tests.conftest import class_members, jpeg_bytes, write_zip

ROOT = Path(__file__).resolve().parent.parent


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "core", *args], capture_output=True, text=True, cwd=ROOT, timeout=300)


def assert_one_line_error(result: subprocess.CompletedProcess, *phrases: str) -> None:
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.stderr
    for phrase in phrases:
        assert phrase in lines[0]


def test_predict_with_a_missing_run_folder(tmp_path):
    assert_one_line_error(run_cli("predict", "--run", str(tmp_path / "nope"), "x.jpg"), "no run folder at")


def test_top_k_below_one_is_refused(trained_run, tmp_path):
    assert_one_line_error(run_cli("predict", "--run", str(trained_run), "--top-k", "0", "x.jpg"), "--top-k")


def test_train_on_missing_data_leaves_no_run_folder(tmp_path):
    out = tmp_path / "runs"
    assert_one_line_error(run_cli("train", "--data", str(tmp_path / "missing"), "--out", str(out)), "no file or folder")
    assert not out.exists()


def test_train_on_data_without_images_leaves_no_run_folder(tmp_path):
    (tmp_path / "empty" / "cats").mkdir(parents=True)
    out = tmp_path / "runs"
    assert_one_line_error(run_cli("train", "--data", str(tmp_path / "empty"), "--out", str(out)), "No images were found")
    assert not out.exists()


def test_train_with_too_many_augmented_views_is_refused_before_a_run_exists(tmp_path, shapes_folder):
    out = tmp_path / "runs"
    result = run_cli("train", "--data", str(shapes_folder), "--augmented-views", "99", "--out", str(out))
    assert_one_line_error(result, "augmented views must be between 0 and 16")
    assert not out.exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_train_on_cuda_without_a_gpu(tmp_path, shapes_folder):
    out = tmp_path / "runs"
    result = run_cli("train", "--data", str(shapes_folder), "--device", "cuda", "--out", str(out))
    assert_one_line_error(result, "no usable NVIDIA GPU")
    assert not out.exists()


def test_names_too_long_for_the_file_system(tmp_path):
    assert_one_line_error(run_cli("inspect", str(tmp_path / ("x" * 300 + ".zip"))), "File name too long")
    members = class_members("", {"a": 5, "b": 5}) | {"a/" + "n" * 300 + ".jpg": jpeg_bytes()}
    result = run_cli("inspect", str(write_zip(tmp_path / "long.zip", members)))
    report = json.loads(result.stdout)
    assert result.returncode == 0 and report["classes"] == {"a": 5, "b": 5}
    assert [s["reason"] for s in report["skipped"]] == ["name too long for the file system; rename it shorter; skipped"]


def test_a_file_and_a_folder_with_the_same_name_in_a_zip(tmp_path):
    members = {"a": b"a file named like the class folder"} | class_members("", {"a": 5, "b": 5, "c": 5})
    result = run_cli("inspect", str(write_zip(tmp_path / "clash.zip", members)))
    report = json.loads(result.stdout)
    assert result.returncode == 0 and report["classes"] == {"b": 5, "c": 5}, result.stderr
    assert len(report["skipped"]) >= 5 and "Traceback" not in result.stderr


def test_predict_goes_on_after_a_bad_image_and_names_it(trained_run, tmp_path):
    good, bad = tmp_path / "good.jpg", tmp_path / "bad.png"
    good.write_bytes(jpeg_bytes())
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)
    result = run_cli("predict", "--run", str(trained_run), str(bad), str(good))
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert lines[0]["error"].startswith("'bad.png': ") and len(lines[1]["top_k"]) == 3


def test_predict_on_a_huge_sixteen_bit_png_stays_under_one_gigabyte(trained_run, tmp_path):
    """9400x9400 16-bit: 200 KB on disk, 3 GB in memory when decoded and converted naively."""
    big = tmp_path / "big.png"
    Image.fromarray(np.zeros((9400, 9400), dtype=np.uint16)).save(big)
    measure = ("import resource, subprocess, sys; "
               "result = subprocess.run([sys.executable, '-m', 'core', 'predict', '--run', sys.argv[1], sys.argv[2]], "
               "capture_output=True, text=True); "
               "print(result.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); "
               "print(result.stdout + result.stderr)")
    result = subprocess.run([sys.executable, "-c", measure, str(trained_run), str(big)], capture_output=True, text=True,
                            cwd=ROOT, timeout=300)
    status, peak_kib = map(int, result.stdout.splitlines()[0].split())
    print(f"peak RSS of predict on a 9400x9400 16-bit PNG: {peak_kib / 1024:.0f} MiB")
    assert peak_kib < 1 << 20, f"peak RSS {peak_kib / 1024:.0f} MiB"
    assert status == 1 and "'big.png': too large (9400x9400 pixels" in result.stdout and "Traceback" not in result.stdout
