"""The closed set of training events and the thread-safe, append-only log they go to.

The log is *state* (pages read it while training runs); the stop `threading.Event` held by a job is
*control*. A log optionally mirrors every event as one JSON line in the run's `metrics.jsonl`, so a run
folder alone replays its curves after a restart.
"""
from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

EVENT_KINDS: tuple[str, ...] = (
    "run_started",
    "batch_end",
    "epoch_end",
    "run_finished",
    "run_failed",
    "run_cancelled",
)
TERMINAL_KINDS: frozenset[str] = frozenset({"run_finished", "run_failed", "run_cancelled"})


@dataclass(frozen=True)
class Event:
    kind: str
    data: dict[str, Any]
    time: float = field(default_factory=time.time)

    def as_record(self) -> dict[str, Any]:
        return {"event": self.kind, "time": round(self.time, 3), **self.data}


class EventLog:
    """Append-only list of events behind a lock; readers keep a cursor and ask for what is new."""

    def __init__(self, jsonl_path: Path | None = None) -> None:
        self._lock = threading.Lock()
        self._events: list[Event] = []
        self._jsonl_path = jsonl_path

    def emit(self, kind: str, **data: Any) -> Event:
        if kind not in EVENT_KINDS:
            raise ValueError(f"unknown event kind {kind!r}; expected one of {EVENT_KINDS}")
        event = Event(kind, data)
        with self._lock:
            self._events.append(event)
            if self._jsonl_path is not None:
                with self._jsonl_path.open("a", encoding="utf-8") as sink:
                    sink.write(json.dumps(event.as_record(), ensure_ascii=False) + "\n")
        return event

    def since(self, cursor: int = 0) -> tuple[list[Event], int]:
        """Events from position `cursor` on, and the cursor to pass next time."""
        with self._lock:
            new = self._events[cursor:]
            return new, cursor + len(new)

    def of_kind(self, kind: str) -> list[Event]:
        with self._lock:
            return [e for e in self._events if e.kind == kind]

    def __len__(self) -> int:
        with self._lock:
            return len(self._events)


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Records of a run's metrics.jsonl; a torn last line (the process died mid-write) is ignored."""
    if not path.exists():
        return []
    records = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return records
