"""A training process started before anyone needs it, one per device, so a run does not wait for imports.

A fresh training process spends about 5 s on 2 CPU cores importing torch, torchvision and scikit-learn before it
reads a single image: for the short runs of a classroom that was half of the time from Start to Finished. The
job manager keeps one process per device that has done those imports and waits, asleep, for a run folder on its
stdin (`python -m core.runs.worker --standby`); the next run of that device takes it over, and a new one is
started behind it. When the server goes away its stdin closes and the waiting process ends.
"""
from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

from core.training import starts

ROOT = Path(__file__).resolve().parents[2]


class Standby:
    def __init__(self, work_dir: Path) -> None:
        self.work_dir = Path(work_dir)
        self._ready: dict[str, subprocess.Popen] = {}
        self._started: dict[str, tuple[float, Path]] = {}  # slot -> (when its process started, its ready marker)
        self._counted: set[Path] = set()  # markers whose start is remembered already
        self._lock = threading.Lock()

    def start(self, slot: str, env: dict[str, str]) -> None:
        """A waiting process for `slot` (e.g. "cpu", "cuda:0"), unless one is already waiting."""
        with self._lock:
            waiting = self._ready.get(slot)
            if waiting is not None and waiting.poll() is None:
                return
            marker = self.work_dir / "standby" / f"{slot.replace(':', '-')}-{time.time_ns()}.ready"
            marker.parent.mkdir(parents=True, exist_ok=True)
            _forget_others(marker.parent, {m for _, m in self._started.values()})
            self._started[slot] = (time.time(), marker)
            self._ready[slot] = subprocess.Popen(
                [sys.executable, "-m", "core.runs.worker", "--standby", "--work-dir", str(self.work_dir),
                 "--ready-file", str(marker)],
                cwd=ROOT, env=env, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                start_new_session=True)

    def start_delay(self, slot: str) -> float | None:
        """Seconds before a run of `slot` submitted now would start training: 0 when a process waits with its imports
        done, what is left of a typical start when one is still importing, None when none is there."""
        with self._lock:
            process, begun = self._ready.get(slot), self._started.get(slot)
        if process is None or process.poll() is not None or begun is None:
            return None
        if self._is_ready(*begun):
            return 0.0
        # Past the typical start it is nearly there, not there: a second more, not nothing.
        return max(1.0, starts.process_start_s() - (time.time() - begun[0]))

    def _is_ready(self, started: float, marker: Path) -> bool:
        """Whether the process behind `marker` has done its imports; the first time it is seen so, how long that
        took is remembered (core.training.starts), so a cold start is estimated from this machine's own."""
        try:
            done = marker.stat().st_mtime
        except OSError:
            return False
        with self._lock:
            first = marker not in self._counted
            self._counted.add(marker)
        if first:
            starts.remember_process_start(done - started)
        return True

    def hand_over(self, slot: str, run_dir: Path) -> subprocess.Popen | None:
        """The waiting process of `slot`, now training `run_dir`; None when none is waiting (start a fresh one)."""
        with self._lock:
            process, begun = self._ready.pop(slot, None), self._started.pop(slot, None)
        if begun is not None:  # none when two runs of one slot (a shared GPU) start together: the second starts anew
            self._is_ready(*begun)
            with self._lock:
                self._counted.discard(begun[1])
            begun[1].unlink(missing_ok=True)
        if process is None or process.poll() is not None:
            return None
        try:
            process.stdin.write(f"{run_dir}\n".encode())
            process.stdin.close()
        except OSError:  # it ended between the check and the write
            return None
        return process

    def close(self) -> None:
        """End every waiting process: their stdin closes, and each exits without training as soon as it reads it
        (one still importing on a busy machine does so when its imports are done; nothing is killed)."""
        with self._lock:
            waiting, self._ready = list(self._ready.values()), {}
            markers, self._started = [marker for _, marker in self._started.values()], {}
        for marker in markers:
            marker.unlink(missing_ok=True)
        for process in waiting:
            try:
                process.stdin.close()
            except OSError:
                pass


def _forget_others(folder: Path, current: set[Path]) -> None:
    """Markers of processes no longer waiting (one handed a run before its imports were done marks itself ready
    afterwards, and a killed server leaves its own): removed, so the folder holds only the waiting ones'."""
    for stale in folder.glob("*.ready"):
        if stale not in current:
            stale.unlink(missing_ok=True)
