"""The teacher's view of the class, built to be redrawn every few seconds for thirty students, cheaply.

Per refresh: one small JSON file per student (their dataset choice), and per run one stat() of its status file.
A run whose status did not change since the last refresh is not read again; a running run's event log is read
only where it grew (a JsonlTail per run, as the live view does); each dataset is inspected once per file version,
in a background thread, so a student's new upload never stalls the dashboard (it says "checking" meanwhile).
`Dashboard` keeps those readers: the page holds one per teacher session. bench/classroom_load.py measures a refresh.
"""
from __future__ import annotations

import threading
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from core import paths
from core.classroom import roster
from core.classroom.roster import Classroom, Student
from core.data.archive import ArchiveRefused
from core.data.datasets import inspect_data
from core.runs.folder import ACTIVE_STATES, FINAL_STATES, STATUS, Run
from core.runs.jobs import JobManager
from core.runs.waiting import estimate
from core.training.events import JsonlTail
from core.training.progress import RunProgress

MAX_SUMMARIES = 512


@dataclass(frozen=True)
class DataSummary:
    name: str
    classes: dict[str, int] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()
    error: str | None = None
    checking: bool = False

    @property
    def images(self) -> int:
        return sum(self.classes.values())


@dataclass(frozen=True)
class RunRow:
    id: str
    state: str  # queued, running, finished, failed, cancelled, interrupted
    created: float
    backbone: str
    data_name: str
    accuracy: float | None = None
    fraction: float = 0.0
    progress: str = ""  # "Epoch 3 of 10 · about 20 s left", or where a queued run stands


@dataclass(frozen=True)
class StudentRow:
    student: Student
    data: DataSummary | None
    runs: tuple[RunRow, ...]

    @property
    def best(self) -> RunRow | None:
        scored = [r for r in self.runs if r.state == "finished" and r.accuracy is not None]
        return max(scored, key=lambda r: (r.accuracy, -r.created), default=None)


class _Summaries:
    """Dataset reports, one per (path, size, modification time), computed in one background thread."""

    def __init__(self) -> None:
        self._done: OrderedDict[tuple, DataSummary] = OrderedDict()
        self._pending: set[tuple] = set()
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="transferlab-dashboard")

    def get(self, path: Path, name: str) -> DataSummary:
        try:
            stat = path.stat()
        except OSError:
            return DataSummary(name, error="The dataset file is gone.")
        key = (str(path), stat.st_size, stat.st_mtime_ns)
        with self._lock:
            if key in self._done:
                self._done.move_to_end(key)
                return self._done[key]
            if key not in self._pending:
                self._pending.add(key)
                self._pool.submit(self._inspect, key, path, name)
        return DataSummary(name, checking=True)

    def _inspect(self, key: tuple, path: Path, name: str) -> None:
        try:
            report = inspect_data(path, paths.home())
            summary = DataSummary(name, report.classes, tuple(report.warnings), report.error)
        except (ArchiveRefused, OSError) as error:
            summary = DataSummary(name, error=str(error))
        except Exception:  # noqa: BLE001 - one bad dataset must not stop the dashboard's thread
            summary = DataSummary(name, error="This dataset could not be checked.")
        with self._lock:
            self._done[key] = summary
            self._pending.discard(key)
            while len(self._done) > MAX_SUMMARIES:
                self._done.popitem(last=False)

    def wait_idle(self, timeout: float = 60.0) -> None:
        """For tests and the bench: let the background checks finish."""
        self._pool.submit(lambda: None).result(timeout)


SUMMARIES = _Summaries()  # one per server process: every teacher's dashboard shares the dataset checks


class Dashboard:
    """One teacher session's readers: the last row of each run, and the event-log reader of each active run."""

    def __init__(self) -> None:
        self._rows: dict[Path, tuple[int, RunRow]] = {}
        self._live: dict[Path, tuple[JsonlTail, RunProgress]] = {}

    def snapshot(self, classroom: Classroom, manager: JobManager) -> list[StudentRow]:
        rows = []
        for student in roster.students(classroom):
            workspace = student.workspace
            chosen = workspace.dataset()
            data = SUMMARIES.get(Path(chosen["path"]), str(chosen.get("name", ""))) if chosen else None
            rows.append(StudentRow(student, data, tuple(self.runs(workspace.runs, manager))))
        return rows

    def runs(self, folder: Path, manager: JobManager) -> list[RunRow]:
        """One workspace's runs, newest first."""
        rows = []
        for config in folder.glob("*/config.json"):
            path = config.parent
            try:
                changed = (path / STATUS).stat().st_mtime_ns
            except OSError:
                changed = 0
            known = self._rows.get(path)
            if known and known[0] == changed and known[1].state in FINAL_STATES:
                rows.append(known[1])  # a finished run never changes: nothing read
                continue
            row = self._row(Run(path), manager)
            self._rows[path] = (changed, row)
            rows.append(row)
        return sorted(rows, key=lambda r: -r.created)

    def _row(self, run: Run, manager: JobManager) -> RunRow:
        status, config = run.status(), run.config()
        state = status.get("state", "unknown")
        base = dict(id=run.id, state=state, created=float(status.get("created", 0.0)),
                    backbone=str(config.get("backbone", "")), data_name=str(config.get("data_name", "")))
        if state == "finished":
            accuracy = status.get("val_accuracy")
            self._live.pop(run.path, None)
            return RunRow(**base, accuracy=accuracy if isinstance(accuracy, (int, float)) else None, fraction=1.0)
        if state == "queued":
            wait = estimate(manager, run.id)
            return RunRow(**base, progress=wait.full() if wait else "Queued.")
        if state not in ACTIVE_STATES:
            self._live.pop(run.path, None)
            return RunRow(**base, progress=str(status.get("message", "")))
        tail, progress = self._live.setdefault(run.path, (run.tail(), RunProgress()))
        progress.add(tail.read())
        summary = progress.summary(state)
        return RunRow(**base, fraction=summary.fraction, progress=summary.text() if summary.state == "training"
                      else "Preparing: reading images and loading the backbone...")


def leaderboard(rows: list[StudentRow]) -> list[tuple[str, float, RunRow]]:
    """(nickname, accuracy, run) of each student's best finished run, best first."""
    board = [(row.student.nickname, row.best.accuracy, row.best) for row in rows if row.best is not None]
    return sorted(board, key=lambda item: (-item[1], item[2].created))
