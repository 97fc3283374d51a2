"""A run's status as stored and as it really is: a stored "running" whose process is gone is an interrupted run.
Also the run's stop request, the one control a user has over a running run."""
from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

ACTIVE_STATES = frozenset({"queued", "running"})
FINAL_STATES = frozenset({"finished", "failed", "cancelled"})
GONE_MESSAGE = "This run stopped without finishing: the process training it is gone (the server or the computer stopped)."


def process_start(pid: int) -> str | None:
    """When process `pid` started (clock ticks since boot, from /proc), or None when it is not there.
    A pid with another start time is another process that reused the number."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (OSError, ValueError):
        return None
    return stat.rsplit(")", 1)[1].split()[19]  # field 22, counted after the command name in parentheses


def process_alive(pid: Any, started: Any) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    if Path("/proc/self/stat").exists():
        return process_start(pid) is not None and (started is None or process_start(pid) == started)
    try:  # no /proc (macOS): only the pid can be checked
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def stamped(status: dict[str, Any], state: str, pid: int) -> dict[str, Any]:
    """The status with its new state, the time, and the process that now answers for the run."""
    return status | {"state": state, "updated": time.time(), "pid": pid, "pid_start": process_start(pid)}


def live_status(stored: dict[str, Any]) -> dict[str, Any]:
    if stored["state"] in ACTIVE_STATES and not process_alive(stored.get("pid"), stored.get("pid_start")):
        return stored | {"state": "interrupted", "message": GONE_MESSAGE}
    return stored


class StopFile:
    """A stop request every process of a run can see (a torchrun launch has several): the run's STOP file. The app's
    Cancel and Ctrl-C both `set()` it; `is_set()` is one stat call, cheap enough to ask every batch."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def set(self) -> None:
        self.path.touch()

    def is_set(self) -> bool:
        return self.path.exists()
