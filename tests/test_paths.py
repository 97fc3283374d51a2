"""Workspace keys: only keys this server issued open a workspace."""
from __future__ import annotations

import stat
import threading

from core import paths


def test_issued_keys_verify_and_made_up_ones_do_not(tmp_path):
    key = paths.new_workspace_key(tmp_path)
    assert paths.is_workspace_key(key, tmp_path)
    assert not paths.is_workspace_key("0" * 64, tmp_path)
    assert not paths.is_workspace_key(key[:32] + "f" * 32, tmp_path)  # chosen id, forged signature
    assert not paths.is_workspace_key(key[:32], tmp_path)  # an old-style unsigned key
    assert not paths.is_workspace_key("../" + key, tmp_path) and not paths.is_workspace_key(None, tmp_path)


def test_another_server_secret_refuses_the_key(tmp_path):
    key = paths.new_workspace_key(tmp_path / "a")
    assert not paths.is_workspace_key(key, tmp_path / "b")


def test_the_secret_is_private_and_the_same_for_every_thread(tmp_path):
    found: list[bytes] = []
    threads = [threading.Thread(target=lambda: found.append(paths.server_secret(tmp_path))) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(found)) == 1 and len(found[0]) == 32
    assert stat.S_IMODE((tmp_path / paths.SECRET_FILE).stat().st_mode) == 0o600
