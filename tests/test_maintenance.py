"""The clean-up removes what nobody used for the retention time, keeps the rest, and `gc` reports it as JSON."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from core import maintenance
from core.data.datasets import materialize
from tests.conftest import class_members, write_zip

DAY = 24 * 3600


def aged(path: Path, days: float) -> Path:
    """Every file and folder under path last modified `days` ago."""
    when = time.time() - days * DAY
    for item in [path, *path.rglob("*")] if path.is_dir() else [path]:
        os.utime(item, (when, when))
    return path


def populated_home(home: Path) -> dict[str, Path]:
    upload = write_zip(home / "up.zip", class_members("", {"a": 2, "b": 2}))
    dataset = materialize(upload, home)
    aged(dataset, 40)
    aged(dataset.with_name(dataset.name + ".skipped.tsv"), 40)
    fresh_dataset = home / "datasets" / "fresh"
    (fresh_dataset / "a").mkdir(parents=True)
    (home / "datasets" / "fresh.skipped.tsv").write_text("")
    partial = home / "datasets" / ".partial-x"
    partial.mkdir()
    aged(partial, 2)
    cache = home / "feature-cache"
    cache.mkdir()
    (cache / "old.safetensors").write_bytes(b"x")
    old_entry = aged(cache / "old.safetensors", 31)
    (cache / "old.json").write_text("[]")
    new_entry = cache / "new.safetensors"
    new_entry.write_bytes(b"x")
    stale_ws, live_ws, running_ws = (home / "workspaces" / name for name in ("stale", "live", "running"))
    for workspace in (stale_ws, live_ws, running_ws):
        (workspace / "runs" / "r1").mkdir(parents=True)
        (workspace / "runs" / "r1" / "export.zip").write_bytes(b"zip")
        (workspace / "runs" / "r1" / "status.json").write_text(json.dumps({"state": "finished"}))
    (running_ws / "runs" / "r1" / "status.json").write_text(json.dumps({"state": "running"}))
    aged(stale_ws, 60)
    aged(running_ws, 60)
    aged(live_ws / "runs" / "r1" / "export.zip", 45)
    return {"dataset": dataset, "fresh_dataset": fresh_dataset, "partial": partial, "old_entry": old_entry,
            "new_entry": new_entry, "stale_ws": stale_ws, "live_ws": live_ws, "running_ws": running_ws}


def test_collect_removes_only_what_is_unused_for_the_retention_time(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    items = populated_home(home)
    planned = maintenance.collect(home, dry_run=True)
    assert items["dataset"].exists() and items["stale_ws"].exists()  # a dry run removes nothing
    removed = maintenance.collect(home)
    assert {(r.kind, Path(r.path).name) for r in removed} == {(r.kind, Path(r.path).name) for r in planned} == {
        ("dataset", items["dataset"].name), ("dataset", items["dataset"].name + ".skipped.tsv"),
        ("partial extraction", ".partial-x"), ("feature cache", "old.safetensors"), ("feature cache", "old.json"),
        ("workspace", "stale"), ("export", "export.zip")}
    for gone in ("dataset", "partial", "old_entry", "stale_ws"):
        assert not items[gone].exists()
    for kept in ("fresh_dataset", "new_entry", "running_ws"):
        assert items[kept].exists()
    assert (items["live_ws"] / "runs" / "r1" / "status.json").exists()
    assert not (items["live_ws"] / "runs" / "r1" / "export.zip").exists()


def test_retention_comes_from_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("TRANSFERLAB_RETENTION_DAYS", "90")
    assert maintenance.retention_days() == 90
    home = tmp_path / "home"
    home.mkdir()
    populated_home(home)
    assert {r.kind for r in maintenance.collect(home, dry_run=True)} == {"partial extraction"}
    monkeypatch.setenv("TRANSFERLAB_RETENTION_DAYS", "soon")
    assert maintenance.retention_days() == 30


def test_gc_command_prints_json_and_dry_run_keeps_everything(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    items = populated_home(home)
    env = os.environ | {"TRANSFERLAB_HOME": str(home)}
    command = [sys.executable, "-m", "core", "gc"]
    dry = subprocess.run([*command, "--dry-run"], capture_output=True, text=True, env=env, timeout=120)
    planned = json.loads(dry.stdout)
    assert dry.returncode == 0 and planned["dry_run"] and len(planned["would_remove"]) == 8
    assert items["stale_ws"].exists()
    real = subprocess.run(command, capture_output=True, text=True, env=env, timeout=120)
    done = json.loads(real.stdout)
    assert real.returncode == 0 and sorted(r["path"] for r in done["removed"]) == sorted(
        r["path"] for r in planned["would_remove"])
    assert not items["stale_ws"].exists() and done["bytes"] > 0
