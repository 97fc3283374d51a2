"""How long a new training process takes here before it can train (importing torch, torchvision, scikit-learn):
measured on each start, remembered in the home folder, and added to the time estimate when no process waits
ready (core.runs.standby). Free of torch itself, so the job manager asks it without importing the engine."""
from __future__ import annotations

import statistics

from core import paths
from core.files import read_json, write_json

START_FILE = "process-start.json"
COLD_START_S = 10.0  # until this machine has measured its own: 5-15 s on 2 CPU cores
RECENT_STARTS = 5


def remember_process_start(seconds: float) -> None:
    """How long a training process took from its start to being ready to train (its imports), measured here."""
    if not 0 < seconds < 3600:
        return
    known = _stored()
    recent = known.get("process_start_s")
    recent = [float(s) for s in recent if isinstance(s, (int, float))] if isinstance(recent, list) else []
    known["process_start_s"] = [*recent, round(seconds, 2)][-RECENT_STARTS:]
    write_json(paths.home() / START_FILE, known)


def process_start_s() -> float:
    """A typical start of a new training process on this machine: the median of the last few measured."""
    recent = _stored().get("process_start_s")
    starts = [float(s) for s in recent if isinstance(s, (int, float))] if isinstance(recent, list) else []
    return statistics.median(starts) if starts else COLD_START_S


def _stored() -> dict:
    known = read_json(paths.home() / START_FILE, {})
    return known if isinstance(known, dict) else {}
